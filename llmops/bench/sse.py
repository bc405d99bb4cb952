"""Read OpenAI-style SSE streams a block at a time, without parsing each event as JSON.

Parsing every event with json.loads is what makes Python clients the bottleneck at high
concurrency (docs/metrics.md, "Client overhead"). Per block of complete lines (one socket
read) the metrics need only: how many events carried text, of which kind (content or
reasoning), and the server's running token count where it sends one. Events that arrive in
one read share one arrival time anyway, so nothing is lost by not looking at them one by one.
Those questions are answered with C-speed byte counts; what only the end of a stream holds
(finish reason, [DONE], the final `usage`, llama.cpp's `timings`) is read once, from the last
blocks, when the stream ends; an error event is looked for in every block.

Keys can only match as keys: inside a JSON string every quote is escaped (`\\"`), so a pattern
such as `content":"` never matches text the model wrote.

Fast path: servers write compact JSON (`"content":"`); on a stream's first block with text a
regex checks that its text keys are compact and among content / reasoning_content /
reasoning, and from then on plain counts do. Any other form (spaces after colons, `text` of
the completions API, tool-call `arguments`) uses the regex for every block of that stream.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field

# An event with text: a non-empty string value (the next byte is not the closing quote) under
# one of the keys servers use. `arguments`: streamed tool calls are tokens too.
_TEXT = re.compile(rb'"(content|reasoning_content|reasoning|text|arguments)"(\s*):(\s*)"[^"]')
TEXT = _TEXT  # for readers that need to find the first text event in raw bytes
_FAST_KEYS = {b"content", b"reasoning_content", b"reasoning"}
_REASONING_KEYS = (b"reasoning_content", b"reasoning")
# the running count of generated tokens: vLLM continuous_usage_stats, llama.cpp timings_per_token
_COUNT_KEYS = (b'"completion_tokens"', b'"predicted_n"')
_COUNT_AT = re.compile(rb'("(?:completion_tokens|predicted_n)")\s*:\s*(\d+)')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([^"]*)"')
_DONE = re.compile(rb'^data:[ \t]*\[DONE\]', re.MULTILINE)
_ERROR = re.compile(rb'"error"\s*:|^event:[ \t]*error', re.MULTILINE)
_ID = re.compile(rb'"id"\s*:\s*"([^"]{1,200})"')
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_TIMINGS = re.compile(rb'"timings"\s*:\s*\{')
_KEEP_BYTES = 64 * 1024  # how much of a stream's end is kept for the end-of-stream questions


@dataclass(slots=True)
class Block:
    """What one block of complete SSE lines held."""

    content: int = 0  # events with content text
    reasoning: int = 0  # events with reasoning text
    count: int | None = None  # the last running completion-token count in the block
    error: str | None = None


@dataclass
class StreamEnd:
    """What the end of a stream said."""

    finish_reason: str | None = None
    done: bool = False
    usage_line: bytes | None = None
    timings_line: bytes | None = None


class Scanner:
    """One stream's SSE, block by block. Blocks must end at a line end."""

    __slots__ = ("fast", "count_key", "per_event_counts", "response_id", "_recent", "_recent_size", "_seen_text")

    def __init__(self) -> None:
        self.fast = True
        self.count_key: bytes | None = None  # which running-count key this stream uses
        self.per_event_counts = False  # text events carry the running count
        self.response_id: str | None = None
        self._recent: deque[bytes] = deque()
        self._recent_size = 0
        self._seen_text = False

    def block(self, block: bytes) -> Block:
        out = Block()
        if not self._seen_text:
            self._first_blocks(block, out)
        elif self.fast:
            _fast_counts(block, out)
        else:
            _regex_counts(block, out)
        key = self.count_key
        if key is not None and (self.per_event_counts or not self._seen_text):
            pos = block.rfind(key)
            if pos >= 0:
                m = _COUNT_AT.match(block, pos)
                if m:
                    out.count = int(m.group(2))
        if b"error" in block:
            m = _ERROR.search(block)
            if m:
                out.error = error_text(block, m.start())
        recent = self._recent
        recent.append(block)
        self._recent_size += len(block)
        while len(recent) > 1 and self._recent_size - len(recent[0]) >= _KEEP_BYTES:
            self._recent_size -= len(recent.popleft())
        return out

    def _first_blocks(self, block: bytes, out: Block) -> None:
        """Until the first text: the slow, careful look that picks this stream's path."""
        if self.response_id is None:
            m = _ID.search(block)
            if m:
                self.response_id = m.group(1).decode("utf-8", "replace")
        if self.count_key is None:
            for key in _COUNT_KEYS:
                if key in block:
                    self.count_key = key
                    break
        first = _TEXT.search(block)
        if first is None:
            return
        self._seen_text = True
        counted = _COUNT_AT.search(_line_at(block, first.start()))
        self.per_event_counts = counted is not None
        if counted is not None:  # the running count this stream's text events carry
            self.count_key = counted.group(1)
        # the stream's first text decides its path; "text"/"arguments" anywhere mean the regex
        self.fast = (first.group(1) in _FAST_KEYS and not first.group(2) and not first.group(3)
                     and b'"text"' not in block and b'"arguments"' not in block)
        (_fast_counts if self.fast else _regex_counts)(block, out)

    def end(self) -> StreamEnd:
        """Read the last blocks for what only a stream's end says."""
        tail = b"".join(self._recent)
        if len(tail) > _KEEP_BYTES:
            tail = tail[tail.find(b"\n", len(tail) - _KEEP_BYTES) + 1:]
        out = StreamEnd()
        pos = _last(_FINISH, tail, b'"finish_reason"')  # the last one that is a string, not null
        if pos >= 0:
            m = _FINISH.match(tail, pos)
            assert m is not None
            out.finish_reason = m.group(1).decode("utf-8", "replace")
        pos = tail.rfind(b"[DONE]")
        while pos >= 0 and not out.done:
            out.done = _DONE.match(tail, tail.rfind(b"\n", 0, pos) + 1) is not None
            pos = tail.rfind(b"[DONE]", 0, pos)
        pos = _last(_USAGE, tail, b'"usage"')
        if pos >= 0:
            out.usage_line = _line_at(tail, pos)
        pos = _last(_TIMINGS, tail, b'"timings"')
        if pos >= 0:
            out.timings_line = _line_at(tail, pos)
        return out


def _fast_counts(block: bytes, out: Block) -> None:
    # `content":"` also matches `reasoning_content":"`, which is then taken back out
    n = block.count(b'content":"')
    if n:
        n -= block.count(b'content":""')
    reasoning = 0
    if b"reasoning" in block:
        rc = block.count(b'reasoning_content":"')
        if rc:
            rc -= block.count(b'reasoning_content":""')
        rr = block.count(b'"reasoning":"')
        if rr:
            rr -= block.count(b'"reasoning":""')
        reasoning = rc + rr
        n -= rc
    out.content, out.reasoning = n, reasoning


def _regex_counts(block: bytes, out: Block) -> None:
    keys = [m[0] for m in _TEXT.findall(block)]
    reasoning = keys.count(b"reasoning_content") + keys.count(b"reasoning")
    out.content, out.reasoning = len(keys) - reasoning, reasoning


def _line_at(block: bytes, pos: int) -> bytes:
    start = block.rfind(b"\n", 0, pos) + 1
    end = block.find(b"\n", pos)
    return block[start:] if end < 0 else block[start:end]


def _last(pattern: re.Pattern[bytes], block: bytes, marker: bytes) -> int:
    """Start of the last match of `pattern`, found from the last `marker` backwards."""
    pos = block.rfind(marker)
    while pos >= 0:
        if pattern.match(block, pos):
            return pos
        pos = block.rfind(marker, 0, pos)
    return -1


def error_text(block: bytes, pos: int) -> str:
    """The message of an error event: the JSON's error.message, else the raw data line."""
    line = _line_at(block, pos)
    if line.startswith(b"event:"):  # `event: error` then `data: ...`
        end = block.find(b"\n", pos)
        following = block[end + 1:].split(b"\n", 1)[0] if end >= 0 else b""
        line = following or line
    payload = line[5:].strip() if line.startswith(b"data:") else line.strip()
    try:
        doc = json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")
    if isinstance(doc, dict) and "error" in doc:
        err = doc["error"]
        if isinstance(err, dict):
            message = str(err.get("message") or json.dumps(err))
            code = err.get("code") or err.get("type")
            return f"{message} ({code})" if code and str(code) not in message else message
        return str(err)
    return payload.decode("utf-8", "replace")


@dataclass
class FinalCounts:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    source: str | None = None  # usage | timings
    server_timings: dict[str, float] = field(default_factory=dict)


def _payload(line: bytes | None) -> dict | None:
    if not line:
        return None
    data = line.strip()
    if data.startswith(b"data:"):
        data = data[5:]
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def final_counts(usage_line: bytes | None, timings_line: bytes | None) -> FinalCounts:
    """Token counts from the last usage event, else from llama.cpp's timings."""
    out = FinalCounts()
    doc = _payload(usage_line)
    usage = doc.get("usage") if doc else None
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        out.prompt_tokens = _int(usage.get("prompt_tokens"))
        out.completion_tokens = _int(usage.get("completion_tokens"))
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict):
            out.reasoning_tokens = _int(details.get("reasoning_tokens"))
        pdetails = usage.get("prompt_tokens_details")
        if isinstance(pdetails, dict):
            out.cached_tokens = _int(pdetails.get("cached_tokens"))
        out.source = "usage"
    tdoc = _payload(timings_line)
    timings = tdoc.get("timings") if tdoc else None
    if isinstance(timings, dict):
        out.server_timings = {k: v for k, v in timings.items() if isinstance(v, (int, float))}
        if out.source is None and timings.get("predicted_n") is not None:
            prompt_n, cache_n = _int(timings.get("prompt_n")), _int(timings.get("cache_n"))
            out.prompt_tokens = None if prompt_n is None else prompt_n + (cache_n or 0)
            out.completion_tokens = _int(timings.get("predicted_n"))
            out.cached_tokens = cache_n
            out.source = "timings"
    return out


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
