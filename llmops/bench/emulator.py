"""A deterministic OpenAI-compatible server for testing and benchmarking the load generator.

Each request gets a `Behavior`: a first-token delay, a gap between tokens, how many tokens
and how they are packed into events, reasoning tokens, usage/timings on or off, and an
optional failure (HTTP error, reset, clean close, hang, error event, truncation). Rules pick
behaviours per request (by arrival index, a seeded fraction, or text in the prompt), so a test
knows the exact ground truth.

Times are exact where it matters:
- the request's arrival is the kernel's receive timestamp of its last bytes (SO_TIMESTAMPNS),
  not the moment this Python process got round to it;
- token i is due at arrival + ttft + i*gap (an absolute schedule: lateness never accumulates);
- a log keeps, per request, the arrival, when a slot was granted, and when the first and last
  token were actually written, on time.perf_counter()'s clock (CLOCK_MONOTONIC, shared by all
  processes of the machine), so a client's measurements can be checked against it.

With `slots`, at most that many requests stream at once; the rest wait in FIFO order and
their schedule starts when they get a slot. In `burst` mode the whole pre-rendered stream is
written at once (for measuring how fast a client can take tokens in).

Run it: `python -m llmops.bench.emulator --port 8000 [--ttft 0.05 --gap 0.01 ...]`; GET
/emulator/log, POST /emulator/config (a JSON config, also clears the log), POST /emulator/reset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from llmops.bench.emulator_metrics import DIALECTS as METRICS_DIALECTS
from llmops.bench.emulator_metrics import Counters

SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@ll")
_ANC_SIZE = 64
FAILURES = ("reset", "close", "hang", "error_event", "truncate", "malformed")  # and http_NNN


@dataclass
class Behavior:
    """What one request gets. Times in seconds."""

    ttft: float = 0.05  # arrival (or slot grant) to the first token
    gap: float = 0.01  # between consecutive tokens
    output_tokens: int | None = None  # None: the request's max_tokens (as with ignore_eos)
    reasoning_tokens: int = 0  # the first N tokens are reasoning_content
    tokens_per_chunk: int = 1
    usage: bool = True  # send usage when the request asks for it (stream_options.include_usage)
    counts: str = "none"  # running counts per event: none | usage (vLLM) | timings (llama.cpp)
    timings: bool = False  # llama.cpp-style timings in the final event
    role_chunk: bool = True  # a first event with the role and empty content, written with the first token
    failure: str | None = None  # http_NNN | reset | close | hang | error_event | truncate | malformed
    fail_after: int = 0  # tokens sent before a mid-stream failure; -1: hang before the response head
    fail_delay: float = 0.0  # http_NNN: seconds before answering
    error_text: str = "emulated failure"
    burst: bool = False  # write the whole stream at once, no delays
    burst_one_chunk: bool = False  # ... as one HTTP chunk (servers send one per event; some clients like this)


@dataclass
class Rule:
    """Overrides for the requests it matches (all given conditions must hold)."""

    set: dict[str, Any] = field(default_factory=dict)
    indices: list[int] | None = None
    every: int | None = None  # index % every == offset
    offset: int = 0
    first: int | None = None  # index < first
    fraction: float | None = None  # a seeded, reproducible share of requests
    seed: int = 0
    prompt_contains: str | None = None

    def matches(self, index: int, prompt: str) -> bool:
        if self.indices is not None and index not in self.indices:
            return False
        if self.every is not None and index % self.every != self.offset:
            return False
        if self.first is not None and index >= self.first:
            return False
        if self.fraction is not None and random.Random(self.seed * 1_000_003 + index).random() >= self.fraction:
            return False
        if self.prompt_contains is not None and self.prompt_contains not in prompt:
            return False
        return True


@dataclass
class EmulatorConfig:
    model: str = "emulated"
    default: Behavior = field(default_factory=Behavior)
    rules: list[Rule] = field(default_factory=list)
    slots: int | None = None  # requests streaming at once; the rest queue (FIFO)
    template_tokens: int = 5  # prompt tokens a "chat template" adds around the messages
    api_key: str | None = None  # when set, other keys get 401 (with the key they sent quoted back)
    reject_extras: bool = False  # 400 for non-standard fields (timings_per_token, continuous_usage_stats)
    metrics: str | None = None  # GET /metrics in this dialect: llama.cpp | vllm | garbled; None: 501 as llama-server

    def behavior_for(self, index: int, prompt: str) -> Behavior:
        behavior = self.default
        for rule in self.rules:
            if rule.matches(index, prompt):
                behavior = Behavior(**{**asdict(behavior), **rule.set})
        return behavior

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown emulator config keys: {sorted(unknown)}")
        out = cls(**{k: v for k, v in data.items() if k not in ("default", "rules")})
        out.default = Behavior(**data.get("default", {}))
        out.rules = [Rule(**r) for r in data.get("rules", [])]
        return out


@dataclass
class LogEntry:
    index: int
    response_id: str
    t_arrival: float  # kernel receive time of the request (perf_counter clock)
    t_handler: float  # when this process started on it
    arrival_stamped: bool = False  # t_arrival is the kernel's stamp
    t_slot: float | None = None
    t_first_write: float | None = None  # just after the write of the first token returned
    t_first_write_begin: float | None = None  # just before it: the bytes left in between
    t_last_write: float | None = None
    tokens_sent: int = 0
    reasoning_sent: int = 0
    prompt_tokens: int = 0
    status: int = 200
    failure: str | None = None
    # the sampling fields the request carried, so tests can check what a client sent
    sampling: dict[str, Any] = field(default_factory=dict)


SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "repetition_penalty", "seed")


def count_words(text: str) -> int:
    """The emulator's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class _Slots:
    """A FIFO of requests waiting to stream."""

    def __init__(self, n: int | None):
        self.free = n
        self.waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> bool:
        """True if the request had to wait for its slot."""
        if self.free is None:
            return False
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return False
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            else:
                self.waiters.remove(fut)
            raise
        return True

    def release(self) -> None:
        if self.free is None:
            return
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


class _StampedSocket(socket.socket):
    """asyncio's transport reads through recv()/recv_into(); these keep the kernel's arrival time."""

    arrival: float | None = None
    stamped: bool = False  # the last arrival came from the kernel (not this process's clock)

    def _stamp(self, ancdata: list) -> None:
        now_perf, now_wall = time.perf_counter(), time.time()
        self.arrival, self.stamped = now_perf, False
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(payload)
                age = now_wall - (sec + nsec * 1e-9)
                if -0.001 < age < 30.0:
                    self.arrival, self.stamped = now_perf - max(age, 0.0), True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:  # type: ignore[override]
        data, ancdata, _, _ = self.recvmsg(bufsize, _ANC_SIZE, flags)
        self._stamp(ancdata)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        n, ancdata, _, _ = self.recvmsg_into([view[:nbytes] if nbytes else view], _ANC_SIZE, flags)
        self._stamp(ancdata)
        return n


def _frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Emulator:
    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.counter = 0
        self.log: list[LogEntry] = []
        self.slots = _Slots(config.slots)
        self.sockets: dict[int, _StampedSocket] = {}
        self.created = int(time.time())
        self._burst_cache: dict[tuple, bytes] = {}
        self.counters = Counters()

    def reconfigure(self, config: EmulatorConfig) -> None:
        self.config = config
        self.counter = 0
        self.log = []
        self.slots = _Slots(config.slots)
        self._burst_cache.clear()
        self.counters = Counters()  # a reconfigured emulator is a restarted server

    # -- serving -----------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path, method = request.path, request.method
        if path in ("/v1/chat/completions", "/chat/completions") and method == "POST":
            return await self.chat(request)
        if path in ("/v1/models", "/models") and method == "GET":
            return web.json_response({"object": "list", "data": [{"id": self.config.model, "object": "model",
                                                                  "owned_by": "llmops-emulator"}]})
        if path == "/tokenize" and method == "POST":
            doc = await request.json()
            text = doc.get("content") if "content" in doc else doc.get("prompt", "")
            n = count_words(str(text))
            return web.json_response({"tokens": list(range(1000, 1000 + n)), "count": n})
        if path == "/metrics" and method == "GET":
            if self.config.metrics not in METRICS_DIALECTS:
                return web.json_response({"error": {"message": "This server does not support metrics endpoint.",
                                                    "code": 501}}, status=501)
            return web.Response(text=self.counters.render(self.config.metrics, self.config.model),
                                content_type="text/plain")
        if path in ("/health", "/v1/health"):
            return web.json_response({"status": "ok"})
        if path == "/emulator/log" and method == "GET":
            return web.json_response([asdict(e) for e in self.log])
        if path == "/emulator/config" and method == "POST":
            try:
                self.reconfigure(EmulatorConfig.from_dict(await request.json()))
            except (TypeError, ValueError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response({"ok": True})
        if path == "/emulator/reset" and method == "POST":
            self.reconfigure(self.config)
            return web.json_response({"ok": True})
        return web.json_response({"error": {"message": f"no route {method} {path}", "code": 404}}, status=404)

    def _arrival(self, request: web.BaseRequest, fallback: float) -> tuple[float, bool]:
        info = request.transport.get_extra_info("socket") if request.transport else None
        sock = self.sockets.get(info.fileno()) if info is not None else None
        if sock is None or sock.arrival is None:
            return fallback, False
        return sock.arrival, sock.stamped

    async def chat(self, request: web.BaseRequest) -> web.StreamResponse:
        t_handler = time.perf_counter()
        t_arrival, stamped = self._arrival(request, t_handler)
        index = self.counter
        self.counter += 1
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON", "code": 400}}, status=400)
        messages = body.get("messages") or []
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        config = self.config
        behavior = config.behavior_for(index, prompt)
        entry = LogEntry(index, f"chatcmpl-{index}", t_arrival, t_handler, arrival_stamped=stamped,
                         prompt_tokens=count_words(prompt) + config.template_tokens,
                         sampling={k: body[k] for k in SAMPLING_FIELDS if k in body})
        self.log.append(entry)

        if config.api_key is not None:
            sent = request.headers.get("Authorization", "")
            if sent != f"Bearer {config.api_key}":
                entry.status, entry.failure = 401, "auth"
                return web.json_response({"error": {"message": f"invalid API key in {sent!r}", "code": 401}},
                                         status=401)
        if config.reject_extras and ("timings_per_token" in body or
                                     "continuous_usage_stats" in (body.get("stream_options") or {})):
            entry.status, entry.failure = 400, "extras"
            return web.json_response({"error": {"message": "Unrecognized request argument supplied",
                                                "code": 400}}, status=400)
        failure = behavior.failure
        if failure and failure.startswith("http_"):
            status = int(failure[5:])
            entry.status, entry.failure = status, failure
            if behavior.fail_delay:
                await asyncio.sleep(behavior.fail_delay)
            return web.json_response({"error": {"message": f"{behavior.error_text} (request {index})",
                                                "type": "server_error", "code": status}}, status=status)
        if failure == "hang" and behavior.fail_after < 0:
            entry.failure = "hang"
            await asyncio.sleep(3600)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        n_tokens = behavior.output_tokens if behavior.output_tokens is not None else int(max_tokens)
        want_usage = bool((body.get("stream_options") or {}).get("include_usage")) and behavior.usage
        if not body.get("stream"):
            return self._whole(entry, behavior, n_tokens)

        waited = await self.slots.acquire()
        try:
            entry.t_slot = time.perf_counter()
            # a request that had to wait starts its schedule when it gets its slot
            anchor = entry.t_slot if waited else t_arrival
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)  # a StreamResponse sends its head right away
            transport = request.transport
            assert transport is not None
            if behavior.burst:
                await self._burst(entry, behavior, n_tokens, want_usage, transport, resp)
            else:
                await self._timed(entry, behavior, n_tokens, want_usage, anchor, transport, resp)
            return resp
        finally:
            self.slots.release()

    # -- rendering ---------------------------------------------------------------------------
    def _event(self, entry: LogEntry, delta: str, finish: str | None = None, extra: str = "") -> bytes:
        finish_json = "null" if finish is None else f'"{finish}"'
        return (f'data: {{"id":"{entry.response_id}","object":"chat.completion.chunk","created":{self.created},'
                f'"model":"{self.config.model}","choices":[{{"index":0,"delta":{delta},"logprobs":null,'
                f'"finish_reason":{finish_json}}}]{extra}}}\n\n').encode()

    @staticmethod
    def _token_text(entry: LogEntry, i: int) -> str:
        # the first token names the request, so a client's generated text can be matched to the log
        return f"r{entry.index}" if i == 0 else f" t{i}"

    def _chunk_events(self, entry: LogEntry, behavior: Behavior, start: int, k: int) -> bytes:
        """Tokens start..start+k-1 as one event (and the role event before the first one)."""
        out = b""
        if start == 0 and behavior.role_chunk:
            extra = self._count_extra(behavior, entry, 0)
            out += self._event(entry, '{"role":"assistant","content":""}', extra=extra)
        reasoning = [i for i in range(start, start + k) if i < behavior.reasoning_tokens]
        content = [i for i in range(start, start + k) if i >= behavior.reasoning_tokens]
        parts = []
        if reasoning:
            parts.append('"reasoning_content":' + json.dumps("".join(self._token_text(entry, i) for i in reasoning)))
        if content:
            parts.append('"content":' + json.dumps("".join(self._token_text(entry, i) for i in content)))
        out += self._event(entry, "{" + ",".join(parts) + "}", extra=self._count_extra(behavior, entry, start + k))
        return out

    def _count_extra(self, behavior: Behavior, entry: LogEntry, done: int) -> str:
        if behavior.counts == "usage":
            p = entry.prompt_tokens
            return f',"usage":{{"prompt_tokens":{p},"completion_tokens":{done},"total_tokens":{p + done}}}'
        if behavior.counts == "timings":
            return f',"timings":{{"prompt_n":{entry.prompt_tokens},"predicted_n":{done}}}'
        return ""

    def _final_events(self, entry: LogEntry, behavior: Behavior, n: int, want_usage: bool) -> bytes:
        extra = ""
        if behavior.timings:
            # as the pinned llama-server: predicted_ms runs from the first token to the last, and
            # predicted_per_second is the n - 1 decode steps over it (docs/metrics.md)
            ms = max(n - 1, 0) * behavior.gap * 1000
            pps = (n - 1) / ms * 1000 if ms > 0 else 0.0
            extra = (f',"timings":{{"cache_n":0,"prompt_n":{entry.prompt_tokens},"prompt_ms":1.0,'
                     f'"predicted_n":{n},"predicted_ms":{ms:.3f},"predicted_per_second":{pps:.3f}}}')
        elif behavior.counts != "none":
            extra = self._count_extra(behavior, entry, n)
        out = self._event(entry, "{}", finish="length", extra=extra)
        if want_usage:
            p = entry.prompt_tokens
            out += (f'data: {{"id":"{entry.response_id}","object":"chat.completion.chunk","created":{self.created},'
                    f'"model":"{self.config.model}","choices":[],"usage":{{"prompt_tokens":{p},'
                    f'"completion_tokens":{n},"total_tokens":{p + n},"completion_tokens_details":'
                    f'{{"reasoning_tokens":{min(behavior.reasoning_tokens, n)}}}}}}}\n\n').encode()
        return out + b"data: [DONE]\n\n"

    def _plan(self, behavior: Behavior, n: int) -> list[tuple[int, int]]:
        """(first token, tokens) of each event."""
        k = max(behavior.tokens_per_chunk, 1)
        return [(i, min(k, n - i)) for i in range(0, n, k)]

    # -- streaming ---------------------------------------------------------------------------
    async def _timed(self, entry: LogEntry, behavior: Behavior, n: int, want_usage: bool, anchor: float,
                     transport: asyncio.Transport, resp: web.StreamResponse) -> None:
        due0 = anchor + behavior.ttft
        failure = behavior.failure
        fail_at = behavior.fail_after if failure in FAILURES else None
        plan = self._plan(behavior, n)
        for j, (start, k) in enumerate(plan):
            if fail_at is not None and start >= fail_at:
                await self._fail_midstream(entry, behavior, transport, resp, due0 + start * behavior.gap)
                return
            await _sleep_until(due0 + (start + k - 1) * behavior.gap)
            if transport.is_closing():
                entry.failure = entry.failure or "client_gone"
                return
            data = _frame(self._chunk_events(entry, behavior, start, k))
            if j == len(plan) - 1 and fail_at is None:
                data += _frame(self._final_events(entry, behavior, n, want_usage))
            if entry.t_first_write_begin is None:
                entry.t_first_write_begin = time.perf_counter()
            transport.write(data)
            self._wrote(entry, behavior, start, k)
        if fail_at is not None:  # fail_after >= n: fail after the last token
            await self._fail_midstream(entry, behavior, transport, resp, time.perf_counter())
            return
        if not plan:
            transport.write(_frame(self._final_events(entry, behavior, 0, want_usage)))
        self._count(entry, n)
        await resp.write_eof()

    def _count(self, entry: LogEntry, n: int) -> None:
        """Into /metrics, as a server counts a finished request: its decode time from its first
        token written to its last."""
        first, last = entry.t_first_write, entry.t_last_write
        decode = last - first if first is not None and last is not None else 0.0
        self.counters.add(n, entry.prompt_tokens, decode, (last or entry.t_arrival) - entry.t_arrival)

    def _wrote(self, entry: LogEntry, behavior: Behavior, start: int, k: int) -> None:
        t = time.perf_counter()
        if entry.t_first_write is None:
            entry.t_first_write = t
        entry.t_last_write = t
        entry.tokens_sent += k
        entry.reasoning_sent += max(0, min(start + k, behavior.reasoning_tokens) - start)

    async def _fail_midstream(self, entry: LogEntry, behavior: Behavior, transport: asyncio.Transport,
                              resp: web.StreamResponse, when: float) -> None:
        await _sleep_until(when)
        failure = behavior.failure
        entry.failure = failure
        if failure == "reset":
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif failure == "close":
            transport.close()
        elif failure == "hang":
            await asyncio.sleep(3600)
        elif failure == "error_event":
            err = json.dumps({"error": {"message": f"{behavior.error_text} (request {entry.index})",
                                        "type": "server_error", "code": 500}})
            transport.write(_frame(f"data: {err}\n\ndata: [DONE]\n\n".encode()))
            await resp.write_eof()
        elif failure == "truncate":
            await resp.write_eof()
        elif failure == "malformed":  # events no client can read, then a well-formed end
            transport.write(_frame(b"data: {\"choices\": [{\"delta\": \n\ndata: not json at all\n\n"
                                   b"data: [DONE]\n\n"))
            await resp.write_eof()

    async def _burst(self, entry: LogEntry, behavior: Behavior, n: int, want_usage: bool,
                     transport: asyncio.Transport, resp: web.StreamResponse) -> None:
        key = (n, want_usage, behavior.tokens_per_chunk, behavior.counts, behavior.reasoning_tokens,
               behavior.role_chunk, behavior.timings, behavior.burst_one_chunk)
        data = self._burst_cache.get(key)
        if data is None:  # rendered once (for a request named "burst"), reused for every request
            proto = LogEntry(0, "chatcmpl-burst", 0.0, 0.0, prompt_tokens=entry.prompt_tokens)
            events = [self._chunk_events(proto, behavior, s, k) for s, k in self._plan(behavior, n)]
            events.append(self._final_events(proto, behavior, n, want_usage))
            if behavior.burst_one_chunk:
                data = _frame(b"".join(events))
            else:
                data = b"".join(map(_frame, events))
            self._burst_cache[key] = data
        entry.t_first_write_begin = time.perf_counter()
        transport.write(data)
        t = time.perf_counter()
        entry.t_first_write = entry.t_last_write = t
        entry.tokens_sent = n
        self._count(entry, n)
        await resp.write_eof()

    def _whole(self, entry: LogEntry, behavior: Behavior, n: int) -> web.Response:
        text = "".join(self._token_text(entry, i) for i in range(behavior.reasoning_tokens, n))
        p = entry.prompt_tokens
        entry.tokens_sent = n
        self._count(entry, n)
        return web.json_response({
            "id": entry.response_id, "object": "chat.completion", "created": self.created,
            "model": self.config.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}})

    # -- the listening socket ----------------------------------------------------------------
    async def serve(self, host: str, port: int,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[socket.socket, web.Server]:
        loop = asyncio.get_running_loop()
        server = web.Server(self.handle, handler_cancellation=True, access_log=None)
        listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                        backlog=4096)
        listener.setblocking(False)
        if SO_TIMESTAMPNS is not None:  # keeps the kernel stamping packets for as long as we listen
            try:
                listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                pass

        def accept() -> None:
            for _ in range(256):
                try:
                    conn, _addr = listener.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                sock = _StampedSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if SO_TIMESTAMPNS is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                    except OSError:
                        pass
                self.sockets[sock.fileno()] = sock
                loop.create_task(loop.connect_accepted_socket(server, sock, ssl=ssl_context))

        loop.add_reader(listener.fileno(), accept)
        return listener, server


async def _sleep_until(due: float) -> None:
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


# -- running it ------------------------------------------------------------------------------

def _config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    data: dict[str, Any] = {}
    if args.config:
        text = args.config
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        data = json.loads(text)
    config = EmulatorConfig.from_dict(data)
    overrides = {k: getattr(args, k) for k in ("ttft", "gap", "output_tokens", "tokens_per_chunk", "counts",
                                               "reasoning_tokens", "failure") if getattr(args, k) is not None}
    if args.burst:
        overrides["burst"] = True
    if args.no_usage:
        overrides["usage"] = False
    if overrides:
        config.default = Behavior(**{**asdict(config.default), **overrides})
    if args.slots is not None:
        config.slots = args.slots
    if args.model:
        config.model = args.model
    if config.api_key is None:
        # Like llama-server (LLAMA_API_KEY) and vLLM (VLLM_API_KEY): a key from the environment, so a
        # backend's api_key reaches the emulator without showing on its command line (`ps`).
        config.api_key = os.environ.get("LLAMA_API_KEY") or os.environ.get("VLLM_API_KEY") or None
    return config


async def _main(args: argparse.Namespace) -> None:
    import gc

    emulator = Emulator(_config_from_args(args))
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    listener, _server = await emulator.serve(args.host, args.port, context)
    port = listener.getsockname()[1]
    gc.collect()
    gc.freeze()  # fewer, shorter collector pauses in the middle of a schedule
    print(f"LISTENING {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmops.bench.emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (printed as LISTENING <port>)")
    parser.add_argument("--config", help="JSON config (or @file): model, default, rules, slots, ...")
    parser.add_argument("--model")
    parser.add_argument("--ttft", type=float)
    parser.add_argument("--gap", type=float)
    parser.add_argument("--output-tokens", type=int)
    parser.add_argument("--tokens-per-chunk", type=int)
    parser.add_argument("--reasoning-tokens", type=int)
    parser.add_argument("--counts", choices=["none", "usage", "timings"])
    parser.add_argument("--failure")
    parser.add_argument("--slots", type=int)
    parser.add_argument("--burst", action="store_true", help="write each whole stream at once")
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (PEM) ...")
    parser.add_argument("--keyfile", help="... and this key")
    args = parser.parse_args(argv)
    asyncio.run(_main(args))


class EmulatorProcess:
    """Runs the emulator in its own process (so it never shares a CPU queue with the client)."""

    def __init__(self, config: EmulatorConfig | dict[str, Any] | None = None, host: str = "127.0.0.1",
                 extra_args: list[str] | None = None, tls: tuple[str, str] | None = None):
        """`tls`: (certificate file, key file) to serve HTTPS."""
        self.host = host
        self.scheme = "https" if tls else "http"
        if tls:
            extra_args = [*(extra_args or []), "--certfile", tls[0], "--keyfile", tls[1]]
        cfg = config if isinstance(config, dict) else asdict(config or EmulatorConfig())
        cmd = [sys.executable, "-m", "llmops.bench.emulator", "--host", host, "--port", "0",
               "--config", json.dumps(cfg), *(extra_args or [])]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: nobody has to drain it
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, env=env, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("LISTENING"):
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError(f"emulator did not start: {line!r} {self.errors()[-2000:]}")
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def errors(self) -> str:
        """What the emulator wrote to stderr so far."""
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        context = ssl._create_unverified_context() if self.scheme == "https" else None  # our own test server
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return json.loads(resp.read())

    def configure(self, config: EmulatorConfig | dict[str, Any]) -> None:
        """New behaviour; the log and the request counter start again."""
        self._call("POST", "/emulator/config", config if isinstance(config, dict) else asdict(config))

    def log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/emulator/log")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
