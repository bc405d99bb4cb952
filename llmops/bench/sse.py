"""Read OpenAI-style SSE chunks without parsing each one as JSON.

Parsing every chunk with json.loads is what makes Python clients the bottleneck at high
concurrency (see docs/metrics.md, "client overhead"). A chat-completion chunk only needs a
few answers: does it carry non-empty content or reasoning, how many tokens has the server
produced so far, did it finish, is it an error. Those are found with compiled byte regexes;
the last chunk carrying `usage`/`timings` (once per request) and any error chunk are parsed
in full.

Keys can only match as keys: inside a JSON string every quote is escaped (`\\"`), so the
pattern `"content":"` never matches text the model wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_TEXT = re.compile(rb'"(content|reasoning_content|reasoning|text)"\s*:\s*"(\\"|[^"])')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
_PREDICTED = re.compile(rb'"predicted_n"\s*:\s*(\d+)')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([^"]*)"')


@dataclass
class ChunkInfo:
    content: bool = False
    reasoning: bool = False
    tokens_so_far: int | None = None  # cumulative completion tokens, when the server says
    finish_reason: str | None = None
    error: str | None = None
    done: bool = False
    final: bool = False  # carries usage or timings: parse in full once the stream ends


def scan(payload: bytes) -> ChunkInfo:
    """Classify one `data:` payload (without the `data:` prefix)."""
    info = ChunkInfo()
    if payload == b"[DONE]":
        info.done = True
        return info
    for m in _TEXT.finditer(payload):
        key = m.group(1)
        if key == b"content" or key == b"text":
            info.content = True
        else:
            info.reasoning = True
    if b'"usage"' in payload or b'"timings"' in payload:
        m = _COMPLETION.search(payload) or _PREDICTED.search(payload)
        if m:
            info.tokens_so_far = int(m.group(1))
        if b'"usage":{' in payload or b'"usage": {' in payload or b'"timings"' in payload:
            info.final = True
    m = _FINISH.search(payload)
    if m:
        info.finish_reason = m.group(1).decode()
    if b'"error"' in payload:
        info.error = _error_text(payload)
    return info


def _error_text(payload: bytes) -> str | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "error" not in doc:
        return None
    err = doc["error"]
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


@dataclass
class FinalCounts:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    source: str | None = None  # usage | timings
    server_timings: dict[str, float] = field(default_factory=dict)


def final_counts(payloads: list[bytes]) -> FinalCounts:
    """Token counts from the usage/timings chunks of one stream (the last one wins)."""
    out = FinalCounts()
    for payload in payloads:
        try:
            doc = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        usage = doc.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            out.prompt_tokens = _int(usage.get("prompt_tokens"))
            out.completion_tokens = _int(usage.get("completion_tokens"))
            details = usage.get("completion_tokens_details") or {}
            out.reasoning_tokens = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
            pdetails = usage.get("prompt_tokens_details") or {}
            out.cached_tokens = _int(pdetails.get("cached_tokens")) if isinstance(pdetails, dict) else None
            out.source = "usage"
        timings = doc.get("timings")
        if isinstance(timings, dict):
            out.server_timings = {k: v for k, v in timings.items() if isinstance(v, (int, float))}
            if out.source != "usage":
                out.prompt_tokens = _int(timings.get("prompt_n"))
                out.completion_tokens = _int(timings.get("predicted_n"))
                out.cached_tokens = _int(timings.get("cache_n"))
                out.source = "timings"
    return out


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
