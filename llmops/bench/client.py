"""One streaming chat-completion request, timed, with everything that went wrong kept.

Times come from time.perf_counter() and are stored as offsets on one wall clock
(`Clock`), so records from one run line up with each other and with telemetry samples.
Chunks that arrive in one read share one arrival time: that is when the client saw them.
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from llmops.bench import sse


class Clock:
    """perf_counter precision, anchored to wall-clock time once."""

    def __init__(self) -> None:
        self.wall0 = time.time()
        self.perf0 = time.perf_counter()

    def now(self) -> float:
        return self.wall0 + (time.perf_counter() - self.perf0)


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    max_tokens: int
    expected_prompt_tokens: int | None = None  # what the prompt source measured, when it could


@dataclass
class RequestRecord:
    level: int
    concurrency: int
    index: int
    phase: str  # warmup | measure
    t_scheduled: float | None = None
    t_send: float = 0.0
    t_headers: float | None = None
    t_first_chunk: float | None = None
    t_first_token: float | None = None
    t_first_content: float | None = None
    t_first_reasoning: float | None = None
    t_last_token: float | None = None
    t_end: float | None = None
    status: int | None = None
    ok: bool = False
    error_kind: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    tokens_source: str | None = None  # usage | timings | estimate
    token_chunks: int = 0
    content_chunks: int = 0
    reasoning_chunks: int = 0
    max_tokens: int = 0
    expected_prompt_tokens: int | None = None
    server_timings: dict[str, float] = field(default_factory=dict)
    # per token-carrying chunk: arrival time and tokens it delivered (not written to JSONL)
    chunk_times: array = field(default_factory=lambda: array("d"), repr=False)
    chunk_tokens: array = field(default_factory=lambda: array("I"), repr=False)

    @property
    def ttft(self) -> float | None:
        return None if self.t_first_token is None else self.t_first_token - self.t_send

    @property
    def ttfc(self) -> float | None:
        return None if self.t_first_content is None else self.t_first_content - self.t_send

    @property
    def e2e(self) -> float | None:
        return None if self.t_end is None else self.t_end - self.t_send

    @property
    def tpot(self) -> float | None:
        if self.t_first_token is None or self.t_last_token is None or not self.completion_tokens:
            return None
        if self.completion_tokens < 2:
            return None
        return (self.t_last_token - self.t_first_token) / (self.completion_tokens - 1)

    @property
    def queue_s(self) -> float | None:
        return None if self.t_scheduled is None else max(0.0, self.t_send - self.t_scheduled)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("chunk_times", "chunk_tokens")}
        for key in ("ttft", "ttfc", "e2e", "tpot", "queue_s"):
            value = getattr(self, key)
            out[key] = None if value is None else round(value, 6)
        return out


@dataclass
class RequestOptions:
    url: str  # full chat completions URL
    model: str
    api_key: str | None = None
    ignore_eos: bool = False
    temperature: float | None = None
    seed: int | None = None
    timeout: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)


def request_body(opts: RequestOptions, prompt: Prompt) -> bytes:
    body: dict[str, Any] = {
        "model": opts.model,
        "messages": prompt.messages,
        "max_tokens": prompt.max_tokens,
        "stream": True,
        # usage in a final chunk, and per-chunk cumulative counts where the server offers them
        # (vLLM: continuous_usage_stats; llama.cpp: timings_per_token), so ITL is per token.
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "timings_per_token": True,
    }
    if opts.ignore_eos:
        body["ignore_eos"] = True
    if opts.temperature is not None:
        body["temperature"] = opts.temperature
    if opts.seed is not None:
        body["seed"] = opts.seed
    body.update(opts.extra_body)
    return json.dumps(body).encode()


async def send(session: aiohttp.ClientSession, opts: RequestOptions, prompt: Prompt, record: RequestRecord,
               clock: Clock) -> RequestRecord:
    """Run one request into `record`; never raises (except cancellation)."""
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if opts.api_key:
        headers["Authorization"] = f"Bearer {opts.api_key}"
    body = request_body(opts, prompt)
    record.max_tokens = prompt.max_tokens
    record.expected_prompt_tokens = prompt.expected_prompt_tokens
    record.t_send = clock.now()
    try:
        if opts.timeout:
            await asyncio.wait_for(_stream(session, opts, body, headers, record, clock), opts.timeout)
        else:
            await _stream(session, opts, body, headers, record, clock)
    except asyncio.TimeoutError:
        _fail(record, "timeout", f"no complete response within --timeout {opts.timeout:g} s", clock)
    except aiohttp.ClientConnectorError as exc:
        _fail(record, "connect", f"cannot connect: {exc}", clock)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError) as exc:
        _fail(record, "reset", f"connection closed mid-response: {type(exc).__name__}: {exc}", clock)
    except aiohttp.ClientError as exc:
        _fail(record, "client_error", f"{type(exc).__name__}: {exc}", clock)
    except OSError as exc:
        _fail(record, "os_error", f"{type(exc).__name__}: {exc}", clock)
    return record


def _fail(record: RequestRecord, kind: str, message: str, clock: Clock) -> None:
    record.ok = False
    if record.error_kind is None:
        record.error_kind = kind
        record.error = message
    if record.t_end is None:
        record.t_end = clock.now()


async def _stream(session: aiohttp.ClientSession, opts: RequestOptions, body: bytes, headers: dict[str, str],
                  record: RequestRecord, clock: Clock) -> None:
    async with session.post(opts.url, data=body, headers=headers) as resp:
        record.t_headers = clock.now()
        record.status = resp.status
        if resp.status != 200:
            text = (await resp.content.read(65536)).decode("utf-8", "replace")
            _fail(record, f"http_{resp.status}", f"HTTP {resp.status} {resp.reason}: {text.strip()[:2000]}", clock)
            return
        finals: list[bytes] = []
        saw_done = False
        buffer = b""
        last_count = 0
        chunk_times, chunk_tokens = record.chunk_times, record.chunk_tokens
        async for data in resp.content.iter_any():
            now = clock.now()
            if record.t_first_chunk is None:
                record.t_first_chunk = now
            buffer += data
            if b"\n" not in data:
                continue
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                info = sse.scan(payload)
                if info.done:
                    saw_done = True
                    continue
                if info.error is not None:
                    _fail(record, "stream_error", info.error[:2000], clock)
                    continue
                if info.final:
                    finals = finals[-1:] + [payload]
                if info.finish_reason:
                    record.finish_reason = info.finish_reason
                if info.content or info.reasoning:
                    if info.tokens_so_far is not None:
                        delivered = max(info.tokens_so_far - last_count, 0)
                        last_count = info.tokens_so_far
                    else:
                        delivered = 1
                    if record.t_first_token is None:
                        record.t_first_token = now
                    if info.content:
                        record.content_chunks += 1
                        if record.t_first_content is None:
                            record.t_first_content = now
                    if info.reasoning:
                        record.reasoning_chunks += 1
                        if record.t_first_reasoning is None:
                            record.t_first_reasoning = now
                    record.t_last_token = now
                    record.token_chunks += 1
                    chunk_times.append(now)
                    chunk_tokens.append(delivered)
                elif info.tokens_so_far is not None:
                    last_count = info.tokens_so_far
        record.t_end = clock.now()
        counts = sse.final_counts(finals)
        record.prompt_tokens = counts.prompt_tokens
        record.reasoning_tokens = counts.reasoning_tokens
        record.cached_tokens = counts.cached_tokens
        record.server_timings = counts.server_timings
        if counts.completion_tokens is not None:
            record.completion_tokens = counts.completion_tokens
            record.tokens_source = counts.source
        else:
            record.completion_tokens = sum(chunk_tokens)
            record.tokens_source = "estimate"
        if record.error_kind is not None:
            return
        if not saw_done and record.finish_reason is None:
            _fail(record, "truncated", "stream ended without [DONE] or a finish_reason", clock)
            return
        record.ok = True
