"""Where prompts come from: a fixed text, synthetic prompts of an exact token length, or a file.

Synthetic prompts are sequences of common English words chosen so that each word is one
token for the server's tokenizer (checked with the server's /tokenize, where it has one),
so N words make N prompt tokens. Each request gets its own random sequence unless a shared
prefix is asked for, so prefix caches do not flatter the server.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.bench.client import Prompt
from llmops.errors import LlmopsError

WORDS = (
    "the of and to in is was for that with as on by at from his her are were this be have had not but which "
    "one all their there been has when who will more no if out so said what up its about into than them can "
    "only other new some could time these two may then do first any my now such like our over man me even "
    "most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three states himself few house use during without again "
    "place around however home small found thought went say part once general high upon school every don "
    "does got united left number course war until always away something fact though water less public put "
    "think almost hand enough far took head yet government system better set told nothing night end why "
    "called didn eyes find going look asked later knew point next program city business give group toward "
    "young days let room president side social given present several order national possible rather second "
    "face per among form important often things looked early white case john become large big need four "
    "within felt along children saw best church ever least power development light thing seemed family "
    "interest want members mind country area others done turned although open god service problem certain"
).split()


@dataclass
class PromptSpec:
    text: str | None = None
    input_tokens: int | None = None
    file: str | None = None
    max_tokens: int = 512
    unique: bool | None = None  # default: unique for synthetic and file prompts, fixed text repeated
    shared_prefix_tokens: int = 0
    seed: int = 0


class PromptSource:
    """Hands out prompts, one per request, as the spec says."""

    def __init__(self, spec: PromptSpec, single_token_words: list[str] | None = None,
                 reported_tokens: int | None = None):
        """`reported_tokens`: the prompt length the server will count (content plus chat
        template), when calibration measured it; None when it is not known exactly."""
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.words = single_token_words or list(WORDS)
        self.reported_tokens = reported_tokens
        self.file_prompts = load_prompt_file(spec.file) if spec.file else None
        self._prefix = self._words(spec.shared_prefix_tokens) if spec.shared_prefix_tokens else []
        self._fixed_synthetic: list[str] | None = None
        self.counter = 0

    @property
    def unique(self) -> bool:
        if self.spec.unique is not None:
            return self.spec.unique
        return self.spec.text is None or self.spec.input_tokens is not None

    def _words(self, n: int) -> list[str]:
        return [self.rng.choice(self.words) for _ in range(n)]

    def next(self) -> Prompt:
        self.counter += 1
        spec = self.spec
        if self.file_prompts is not None:
            item = self.file_prompts[(self.counter - 1) % len(self.file_prompts)]
            return Prompt(messages=item["messages"], max_tokens=item.get("max_tokens") or spec.max_tokens)
        if spec.input_tokens:
            n = max(spec.input_tokens - len(self._prefix), 0)
            if self.unique:
                words = self._prefix + self._words(n)
            else:
                if self._fixed_synthetic is None:
                    self._fixed_synthetic = self._prefix + self._words(n)
                words = self._fixed_synthetic
            return Prompt(messages=[{"role": "user", "content": " ".join(words)}], max_tokens=spec.max_tokens,
                          expected_prompt_tokens=self.reported_tokens)
        text = spec.text or ""
        if self.unique:
            text = f"[{self.counter}-{self.rng.getrandbits(32):08x}] {text}"
        return Prompt(messages=[{"role": "user", "content": text}], max_tokens=spec.max_tokens)


def load_prompt_file(path: str) -> list[dict[str, Any]]:
    """JSONL of {"prompt"} / {"messages"} / ShareGPT {"conversations"}, or a JSON list of those."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LlmopsError(f"{path}: cannot read prompt file: {exc.strerror}") from None
    items: list[Any]
    stripped = raw.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(raw)
        except ValueError as exc:
            raise LlmopsError(f"{path}: not valid JSON: {exc}") from None
    else:
        items = []
        for lineno, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as exc:
                raise LlmopsError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None
    prompts = []
    for i, item in enumerate(items, 1):
        prompt = _to_prompt(item)
        if prompt is None:
            raise LlmopsError(f"{path}: entry {i} has no prompt (expected 'prompt', 'messages' or "
                              "ShareGPT 'conversations')")
        prompts.append(prompt)
    if not prompts:
        raise LlmopsError(f"{path}: no prompts in file")
    return prompts


def _to_prompt(item: Any) -> dict[str, Any] | None:
    if isinstance(item, str):
        return {"messages": [{"role": "user", "content": item}]}
    if not isinstance(item, dict):
        return None
    max_tokens = item.get("max_tokens") if isinstance(item.get("max_tokens"), int) else None
    if isinstance(item.get("messages"), list):
        return {"messages": item["messages"], "max_tokens": max_tokens}
    if isinstance(item.get("prompt"), str):
        return {"messages": [{"role": "user", "content": item["prompt"]}], "max_tokens": max_tokens}
    conv = item.get("conversations") or item.get("conversation")
    if isinstance(conv, list):
        for turn in conv:
            if isinstance(turn, dict) and turn.get("from") in ("human", "user") and isinstance(turn.get("value"), str):
                return {"messages": [{"role": "user", "content": turn["value"]}], "max_tokens": max_tokens}
    return None


def iter_forever(source: PromptSource) -> Iterator[Prompt]:
    while True:
        yield source.next()
