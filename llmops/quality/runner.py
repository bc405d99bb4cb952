"""Ask one server for greedy completions (temperature 0) of the prompt set and of the tasks, with
log-probabilities where it gives them, and read its settings. Talks to the OpenAI-compatible API
(`/v1/completions`, `/v1/models`) plus llama-server's `/props`.

Requests go one at a time, on purpose: batched decoding may round differently with the batch's
make-up, so concurrency would make a variant disagree with itself. Quality is not timed here.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from llmops.quality.agreement import Completion, TokenScores
from llmops.quality.tasks import Task

TOP_K = 5  # alternatives asked per position (vLLM `logprobs`, llama-server `n_probs` through the same field)
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q[0-9]_[A-Z0-9_]+|Q[0-9]_[0-9K]|BF16|F16|F32|FP8)(?![A-Za-z0-9])", re.I)


class QualityError(Exception):
    """The server did not answer a quality request as the API says."""


@dataclass
class ServerAnswers:
    url: str
    model: str
    settings: dict[str, Any]
    completions: list[Completion] = field(default_factory=list)
    task_texts: list[str] = field(default_factory=list)


def parse_logprobs(choice: dict) -> TokenScores | None:
    """Tokens, their log-probabilities and top alternatives from a completions choice.

    Two shapes exist: the legacy completions one (vLLM: `tokens`, `token_logprobs`,
    `top_logprobs` as {token: logprob}) and the chat one that llama-server also uses on
    /v1/completions (`content`: [{id, token, logprob, top_logprobs: [{id, token, logprob}]}]).

    Tokens are named by id ("id:123") where the server gives one: the same token's text is
    " the" on llama-server and "the" on vLLM (which decodes pieces alone), so text would make the
    two disagree where they agree. vLLM gives ids when asked (`return_tokens_as_token_ids`)."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    if isinstance(lp.get("tokens"), list):
        tops = [{_vllm_token(k): v for k, v in t.items()} if isinstance(t, dict) else {}
                for t in (lp.get("top_logprobs") or [])]
        return TokenScores([_vllm_token(t) for t in lp["tokens"]], [_num(x) for x in lp.get("token_logprobs") or []],
                           tops)
    if isinstance(lp.get("content"), list):
        tokens, lps, tops = [], [], []
        for entry in lp["content"]:
            tokens.append(_llama_token(entry))
            lps.append(_num(entry.get("logprob")))
            tops.append({_llama_token(t): float(t["logprob"]) for t in entry.get("top_logprobs") or []
                         if _num(t.get("logprob")) is not None})
        return TokenScores(tokens, lps, tops)
    return None


def _vllm_token(token: Any) -> str:
    text = str(token)
    return "id:" + text[len("token_id:"):] if text.startswith("token_id:") else text


def _llama_token(entry: dict) -> str:
    tid = entry.get("id")
    return f"id:{tid}" if isinstance(tid, int) and not isinstance(tid, bool) else str(entry.get("token", ""))


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def quantisation_of(path: str) -> str | None:
    """The quantisation a model file's name states (tiny-Q4_0.gguf -> Q4_0), if it states one."""
    found = _QUANT.findall(path.rsplit("/", 1)[-1])
    return found[-1].upper() if found else None


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any | None:
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                return None
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, json.JSONDecodeError, asyncio.TimeoutError):
        return None


async def read_settings(session: aiohttp.ClientSession, base: str) -> tuple[str, dict[str, Any]]:
    """The model name to ask for, and the settings that change answers: chat template, sampling
    defaults, quantisation, context. Each from what the server itself reports."""
    models = await _get_json(session, base + "/v1/models")
    data = (models or {}).get("data") or [{}]
    first = data[0] if isinstance(data[0], dict) else {}
    model = str(first.get("id") or "default")
    settings: dict[str, Any] = {}
    root = first.get("root") or first.get("id")
    if first.get("max_model_len"):
        settings["context"] = first["max_model_len"]
    props = await _get_json(session, base + "/props")
    if isinstance(props, dict):
        settings["backend"] = "llama.cpp"
        root = props.get("model_path") or root
        gen = props.get("default_generation_settings") or {}
        if gen.get("n_ctx"):
            settings["context"] = gen["n_ctx"]
        params = gen.get("params") or {}
        for key in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty"):
            if key in params:
                settings[f"default {key}"] = params[key]
        if props.get("chat_template") is not None:
            settings["chat template"] = props["chat_template"]
    else:
        settings["backend"] = "vllm" if first.get("owned_by") == "vllm" else (first.get("owned_by") or "unknown")
    if root:
        settings["model file"] = str(root)
        settings["quantisation"] = quantisation_of(str(root)) or "as stored"
    return model, settings


async def complete(session: aiohttp.ClientSession, base: str, model: str, prompt: str, max_tokens: int,
                   logprobs: bool) -> Completion:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0,
                            "top_p": 1.0, "seed": 0, "stream": False}
    if logprobs:
        body["logprobs"] = TOP_K
        body["return_tokens_as_token_ids"] = True  # vLLM; llama-server ignores it and sends ids anyway
    async with session.post(base + "/v1/completions", json=body) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise QualityError(f"{base}/v1/completions answered {resp.status}: {text[:300]}")
    try:
        choice = json.loads(text)["choices"][0]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        raise QualityError(f"{base}/v1/completions: not a completions response: {text[:300]}") from None
    scores = parse_logprobs(choice) if logprobs else None
    if scores is None:
        # No log-probabilities: agreement is still measured, on characters (documented).
        scores = TokenScores(list(choice.get("text") or ""))
    return Completion(prompt, choice.get("text") or "", scores, choice.get("finish_reason"))


async def ask(url: str, prompts: list[str], tasks: list[Task], max_tokens: int, *, task_tokens: int = 24,
              timeout_s: float = 120.0) -> ServerAnswers:
    base = url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        model, settings = await read_settings(session, base)
        answers = ServerAnswers(url, model, settings)
        for prompt in prompts:
            answers.completions.append(await complete(session, base, model, prompt, max_tokens, True))
        for task in tasks:
            answers.task_texts.append((await complete(session, base, model, task.prompt, task_tokens, False)).text)
    return answers
