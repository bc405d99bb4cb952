"""One streaming chat-completion request, timed, with everything that went wrong kept.

Times are on one `Clock` per run (wall-clock anchored, perf_counter precision), so records
line up with each other and with telemetry samples. Arrival times come from the kernel
(http.py): a busy client delays the processing of a chunk, not its timestamp. Events that
arrive in one read share that read's arrival time: that is when the client got them.

Per request we keep the times the definitions in docs/metrics.md are built from: when the
request was issued (t_start), written (t_send), the response head, the first body byte, the
first token of any kind, the first content and first reasoning token, the last token, the end.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import ssl
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from llmops import secrets
from llmops.bench import http, sse
from llmops.limits import MAX_SSE_LINE


class Clock:
    """perf_counter precision, anchored to wall-clock time once."""

    def __init__(self) -> None:
        self.wall0 = time.time()
        self.perf0 = time.perf_counter()

    def now(self) -> float:
        return self.wall0 + (time.perf_counter() - self.perf0)

    def to_perf(self, t: float) -> float:
        """A time of this clock as a time.perf_counter() value (CLOCK_MONOTONIC on Linux)."""
        return t - self.wall0 + self.perf0

    def from_perf(self, p: float) -> float:
        return p - self.perf0 + self.wall0


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
    phase: str  # warmup | measure | calibration
    t_scheduled: float | None = None  # open loop: when the request was due
    t_start: float | None = None  # issued: before waiting for a connection
    t_send: float = 0.0  # request written to the socket (t_start if it never was)
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
    response_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    tokens_source: str | None = None  # usage | timings | estimate
    streamed_tokens: int = 0  # tokens the stream showed arriving (running counts, else one per event)
    per_chunk_counts: bool = False  # the server said how many tokens each event carried
    content_events: int = 0
    reasoning_events: int = 0
    reused_connection: bool = False
    max_tokens: int = 0
    expected_prompt_tokens: int | None = None
    server_timings: dict[str, float] = field(default_factory=dict)
    # per read that brought tokens: arrival time and how many tokens (not written to JSONL)
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
        if self.t_scheduled is None or self.t_start is None:
            return None
        return max(0.0, self.t_start - self.t_scheduled)

    @property
    def connect_s(self) -> float | None:
        return None if self.t_start is None else max(0.0, self.t_send - self.t_start)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("chunk_times", "chunk_tokens")}
        for key in ("ttft", "ttfc", "e2e", "tpot", "queue_s", "connect_s"):
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
    # Sampling as request-body fields (top_p, top_k, min_p, repetition_penalty), sent as given.
    sampling: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    # ask for per-event token counts (vLLM continuous_usage_stats, llama.cpp timings_per_token);
    # turned off by Bench's preflight for servers that reject unknown fields
    count_extras: bool = True
    ssl_context: ssl.SSLContext | None = None


def request_body(opts: RequestOptions, prompt: Prompt) -> bytes:
    body: dict[str, Any] = {
        "model": opts.model,
        "messages": prompt.messages,
        "max_tokens": prompt.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if opts.count_extras:
        # running counts per event where the server offers them, so ITL is per token
        body["stream_options"]["continuous_usage_stats"] = True
        body["timings_per_token"] = True
    if opts.ignore_eos:
        body["ignore_eos"] = True
    if opts.temperature is not None:
        body["temperature"] = opts.temperature
    if opts.seed is not None:
        body["seed"] = opts.seed
    body.update(opts.sampling)
    body.update(opts.extra_body)
    return json.dumps(body, separators=(",", ":")).encode()


def request_headers(opts: RequestOptions) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if opts.api_key:
        headers["Authorization"] = f"Bearer {opts.api_key}"
    return headers


def scrub(text: str, secret: str | None) -> str:
    """Error texts may quote the request back; the API key never leaves this process."""
    return secrets.scrub(text, [secret] if secret else [])


class Session:
    """What requests of one run share: the event loop, the connection pool, the clock."""

    def __init__(self, clock: Clock | None = None, ssl_context: ssl.SSLContext | None = None):
        self.clock = clock or Clock()
        self.loop = asyncio.get_running_loop()
        self.pool = http.Pool(self.loop, self.clock.now, ssl_context=ssl_context)

    def close(self) -> None:
        self.pool.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def fetch_json(self, url: str, body: Any = None, api_key: str | None = None,
                         timeout: float = 30.0) -> tuple[int, Any]:
        """GET (body None) or POST JSON; returns (status, parsed JSON or None)."""
        target, path = split_url(url)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        reply = await http.fetch(self.pool, target, "GET" if body is None else "POST", path, data, headers,
                                 timeout=timeout)
        try:
            doc = json.loads(reply.body) if reply.body else None
        except ValueError:
            doc = None
        return reply.status, doc


class _ChatStream:
    """Sink for one streamed chat response: turns blocks of SSE lines into the record's fields."""

    __slots__ = ("record", "future", "tail", "error_body", "last_count", "pending_tokens", "scanner", "api_key")

    def __init__(self, record: RequestRecord, future: asyncio.Future, api_key: str | None):
        self.record = record
        self.future = future
        self.tail = b""
        self.error_body: list[bytes] | None = None
        self.last_count = 0
        self.pending_tokens = 0  # counted before any text arrived: they join the first token
        self.scanner = sse.Scanner()
        self.api_key = api_key

    @property
    def precise_start(self) -> bool:
        return self.record.t_first_token is None and self.error_body is None

    def first_event_cut(self, peeked: bytes) -> int:
        """Until the first token: read up to the end of the line that brings it (see http.py)."""
        m = sse.TEXT.search(peeked)
        if m is not None:
            return peeked.find(b"\n", m.end()) + 1
        if self.tail and sse.TEXT.search(self.tail):  # its line began in an earlier read
            return peeked.find(b"\n") + 1
        return 0

    def on_head(self, status: int, reason: str, headers: dict[str, str], t: float) -> None:
        self.record.t_headers = t
        self.record.status = status
        if status != 200:
            self.error_body = [f"HTTP {status} {reason}".strip().encode(), b": "]

    def on_body(self, data: bytes, t: float) -> None:
        record = self.record
        if self.error_body is not None:
            if sum(map(len, self.error_body)) < 65536:
                self.error_body.append(data)
            return
        if record.t_first_chunk is None:
            record.t_first_chunk = t
        if self.tail:
            if len(self.tail) + len(data) > MAX_SSE_LINE and b"\n" not in data:
                # A line that never ends would grow without bound (one 300 MB line took 469 MB):
                # fail this request, keep the run (LLMOPS_MAX_SSE_LINE_BYTES raises the bound).
                self.tail = b""
                raise http.HttpError(f"stream line longer than {MAX_SSE_LINE} bytes without a newline "
                                     "(LLMOPS_MAX_SSE_LINE_BYTES raises the bound)")
            data = self.tail + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_SSE_LINE:
                self.tail = b""
                raise http.HttpError(f"stream line longer than {MAX_SSE_LINE} bytes without a newline "
                                     "(LLMOPS_MAX_SSE_LINE_BYTES raises the bound)")
            self.tail = data
            return
        if cut < len(data):
            self.tail = data[cut:]
            data = data[:cut]
        else:
            self.tail = b""
        self._block(data, t)

    def _block(self, data: bytes, t: float) -> None:
        record = self.record
        scanner = self.scanner
        first = record.t_first_token is None
        info = scanner.block(data)
        texts = info.content + info.reasoning
        if info.count is not None:
            delivered = max(info.count - self.last_count, 0)
            self.last_count = max(info.count, self.last_count)
        else:
            delivered = texts
        if texts:
            if first:
                record.t_first_token = t
                record.per_chunk_counts = scanner.per_event_counts
                record.response_id = scanner.response_id
                delivered += self.pending_tokens
                self.pending_tokens = 0
            if info.content:
                record.content_events += info.content
                if record.t_first_content is None:
                    record.t_first_content = t
            if info.reasoning:
                record.reasoning_events += info.reasoning
                if record.t_first_reasoning is None:
                    record.t_first_reasoning = t
        if delivered:
            if record.t_first_token is None:
                self.pending_tokens += delivered
            else:
                record.t_last_token = t
                record.chunk_times.append(t)
                record.chunk_tokens.append(delivered)
                record.streamed_tokens += delivered
        if info.error is not None and record.error_kind is None:
            record.error_kind = "stream_error"
            record.error = scrub(info.error[:4000], self.api_key)

    def on_end(self, t: float) -> None:
        record = self.record
        record.t_end = t
        if self.error_body is not None:
            text = b"".join(self.error_body).decode("utf-8", "replace").strip()
            _fail(record, f"http_{record.status}", scrub(text[:4000], self.api_key), t)
        else:
            if self.tail:  # a last line without its newline
                tail, self.tail = self.tail + b"\n", b""
                self._block(tail, t)
            self._finalize(t)
        if not self.future.done():
            self.future.set_result(None)

    def _finalize(self, t: float) -> None:
        record = self.record
        if record.response_id is None:
            record.response_id = self.scanner.response_id
        end = self.scanner.end()
        record.finish_reason = end.finish_reason
        counts = sse.final_counts(end.usage_line, end.timings_line)
        record.prompt_tokens = counts.prompt_tokens
        record.reasoning_tokens = counts.reasoning_tokens
        record.cached_tokens = counts.cached_tokens
        record.server_timings = counts.server_timings
        if counts.completion_tokens is not None:
            record.completion_tokens = counts.completion_tokens
            record.tokens_source = counts.source
        else:
            record.completion_tokens = record.streamed_tokens
            record.tokens_source = "estimate"
        if record.error_kind is not None:
            record.ok = False
            return
        if not end.done and record.finish_reason is None:
            _fail(record, "truncated", "the stream ended without [DONE] or a finish_reason "
                  f"after {record.streamed_tokens} tokens", t)
            return
        if record.streamed_tokens == 0 and counts.completion_tokens is None and record.finish_reason is None:
            # [DONE] alone proves nothing: events we could not read, then [DONE], is no answer.
            _fail(record, "no_tokens", "the stream ended with [DONE] but no event carried a token, "
                  "a finish_reason or a token count (malformed events?)", t)
            return
        record.ok = True

    def on_error(self, exc: BaseException, t: float) -> None:
        record = self.record
        if isinstance(exc, http.ConnectionLost):
            kind = exc.kind
            message = f"{exc} after {record.streamed_tokens} tokens" if record.t_headers else str(exc)
        elif isinstance(exc, http.HttpError):
            kind, message = "protocol", f"bad HTTP response: {exc}"
        elif isinstance(exc, ssl.SSLError):
            kind, message = "tls", f"TLS error: {exc}"
        else:
            kind, message = "os_error", f"{type(exc).__name__}: {exc}"
        if record.response_id is None:
            record.response_id = self.scanner.response_id
        record.completion_tokens = record.streamed_tokens
        record.tokens_source = "estimate"
        _fail(record, kind, scrub(message, self.api_key), t)
        if not self.future.done():
            self.future.set_result(exc)


def _fail(record: RequestRecord, kind: str, message: str, t: float) -> None:
    record.ok = False
    if record.error_kind is None:
        record.error_kind = kind
        record.error = message
    if record.t_end is None:
        record.t_end = t


async def send(session: Session, opts: RequestOptions, prompt: Prompt, record: RequestRecord,
               target: http.Target | None = None, path: str | None = None) -> RequestRecord:
    """Run one request into `record`; never raises (except cancellation)."""
    if target is None or path is None:
        target, path = split_url(opts.url)
    clock = session.clock
    request = http.build_request("POST", target, path, request_body(opts, prompt), request_headers(opts))
    record.max_tokens = prompt.max_tokens
    record.expected_prompt_tokens = prompt.expected_prompt_tokens
    record.t_start = record.t_send = clock.now()
    deadline = None if not opts.timeout else session.loop.time() + opts.timeout
    conn: http.Connection | None = None
    try:
        for attempt in (0, 1):
            try:
                acquire = session.pool.acquire(target)
                conn, reused = await (acquire if deadline is None else
                                      asyncio.wait_for(acquire, max(deadline - session.loop.time(), 0)))
            except asyncio.TimeoutError:
                raise
            except (OSError, ssl.SSLError, http.ConnectionLost) as exc:
                _fail(record, "connect", scrub(f"cannot connect to {target.host}:{target.port}: {_describe(exc)}",
                                               opts.api_key), clock.now())
                return record
            record.reused_connection = reused
            future: asyncio.Future = session.loop.create_future()
            stream = _ChatStream(record, future, opts.api_key)
            record.t_send = conn.start(request, stream)
            if deadline is None:
                outcome = await future
            else:
                outcome = await asyncio.wait_for(future, max(deadline - session.loop.time(), 0))
            conn = None
            if (isinstance(outcome, http.ConnectionLost) and outcome.before_response and reused and attempt == 0
                    and record.t_headers is None):
                _reset_for_retry(record)  # the server had closed the idle keep-alive connection
                continue
            return record
    except asyncio.TimeoutError:
        if conn is not None:
            conn.abort()
        _fail(record, "timeout", _timeout_message(record, opts.timeout or 0.0), clock.now())
        if record.completion_tokens is None:
            record.completion_tokens = record.streamed_tokens
            record.tokens_source = "estimate"
        return record
    except BaseException:
        if conn is not None:
            conn.abort()
        raise
    return record


def _reset_for_retry(record: RequestRecord) -> None:
    for name in ("t_headers", "t_first_chunk", "t_end", "status", "error_kind", "error", "completion_tokens",
                 "tokens_source"):
        setattr(record, name, None)
    record.ok = False


def _timeout_message(record: RequestRecord, timeout: float) -> str:
    if record.t_headers is None:
        where = "no response head yet"
    elif record.t_first_token is None:
        where = f"response head after {record.t_headers - record.t_send:.3f} s, no token yet"
    else:
        where = (f"{record.streamed_tokens} tokens so far, the last "
                 f"{(record.t_last_token or record.t_send) - record.t_send:.3f} s after sending")
    return f"timed out: no complete response within --timeout {timeout:g} s ({where})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):  # an OSError too, with an errno that says nothing
        return f"TLS error: {exc}"
    if isinstance(exc, OSError) and exc.errno:
        return f"{os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def split_url(url: str) -> tuple[http.Target, str]:
    """A full endpoint URL as (target without path, request path)."""
    target = http.Target.from_url(url)
    return http.Target(target.scheme, target.host, target.port), target.prefix or "/"
