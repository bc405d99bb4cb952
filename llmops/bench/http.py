"""A small HTTP/1.1 client for streamed responses, timed by the kernel.

Why not aiohttp here: a Python client stamps a chunk when its coroutine gets to run, which
at high concurrency can be milliseconds after the bytes arrived (every other ready socket is
served first). This client reads the socket itself with recvmsg() and asks the kernel for the
time each read's data arrived (SO_TIMESTAMPNS), so a busy event loop delays the processing,
never the timestamps. It also does no per-event work in Python beyond de-chunking: bodies go
to a sink in blocks (see client.py).

Scope, on purpose: HTTP/1.1 with keep-alive, chunked / Content-Length / close-delimited
bodies, TLS through ssl.MemoryBIO (so the raw reads, and their timestamps, stay ours), no
proxies, no redirects, no compression (we never send Accept-Encoding).

Times passed to sinks are on the caller's Clock (see client.Clock): `clock.now()` minus how
long the data waited in the socket buffer, as the kernel says.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

# SO_TIMESTAMPNS (Linux): every recvmsg() gets the arrival time of the data it returns
# (of the last segment it read), as a struct timespec of native longs.
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@ll")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 64
_READ_SIZE = 256 * 1024
_MAX_HEAD = 64 * 1024
_MAX_KERNEL_AGE_S = 30.0  # a stamp older than this is not believed (clock stepped)



class Sink(Protocol):
    """Where a response goes. All calls happen inside the event loop's reader callback."""

    precise_start: bool
    """True while the sink waits for the one event whose arrival time matters most."""

    def first_event_cut(self, peeked: bytes) -> int:
        """How many of the waiting bytes to read first so that one read ends with that event
        (0: none of them). See Connection._on_readable."""
        ...

    def on_head(self, status: int, reason: str, headers: dict[str, str], t: float) -> None: ...

    def on_body(self, data: bytes, t: float) -> None: ...

    def on_end(self, t: float) -> None: ...

    def on_error(self, exc: BaseException, t: float) -> None: ...


class HttpError(Exception):
    """A response we cannot read as HTTP/1.1."""


class ConnectionLost(Exception):
    """The server closed or reset the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool, kind: str = "closed"):
        super().__init__(message)
        self.before_response = before_response
        self.kind = kind  # closed (EOF) | reset (RST)


@dataclass(frozen=True)
class Target:
    """Where requests go: scheme, host, port and the path prefix of one base URL."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: only http:// and https:// URLs are supported")
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def build_request(method: str, target: Target, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host_header}", "User-Agent: llmops-bench",
             "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class ResponseParser:
    """HTTP/1.1 response framing: head, then a chunked, sized or close-delimited body."""

    __slots__ = ("sink", "state", "buf", "remaining", "chunked", "close_delimited", "keep_alive", "got_bytes",
                 "head_request", "ends_nl")

    HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILERS, DONE = range(7)

    def __init__(self, sink: Sink, head_request: bool = False):
        self.sink = sink
        self.state = self.HEAD
        self.buf = b""
        self.remaining = 0
        self.chunked = False
        self.close_delimited = False
        self.keep_alive = True
        self.got_bytes = False
        self.head_request = head_request
        self.ends_nl = True  # the last chunk-data byte seen was a newline

    @property
    def done(self) -> bool:
        return self.state == self.DONE

    def feed(self, data: bytes, t: float) -> None:
        self.got_bytes = True
        if self.state == self.HEAD:
            data = self._head(data, t)
            if not data:
                return
        if self.state == self.DONE:
            return  # bytes after a complete response: ignored (we never pipeline)
        if self.chunked:
            self._chunks(data, t)
        elif self.close_delimited:
            self.sink.on_body(data, t)
        else:
            if len(data) >= self.remaining:
                data = data[: self.remaining]
                self.remaining = 0
                if data:
                    self.sink.on_body(data, t)
                self._finish(t)
            else:
                self.remaining -= len(data)
                self.sink.on_body(data, t)

    def feed_eof(self, t: float) -> None:
        if self.state == self.DONE:
            return
        if self.close_delimited and self.state != self.HEAD:
            self.keep_alive = False
            self._finish(t)
            return
        where = "before the response" if not self.got_bytes else (
            "in the response head" if self.state == self.HEAD else "mid-response")
        raise ConnectionLost(f"server closed the connection {where}", before_response=not self.got_bytes)

    def _finish(self, t: float) -> None:
        self.state = self.DONE
        self.sink.on_end(t)

    def _head(self, data: bytes, t: float) -> bytes:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise HttpError("response head larger than 64 KiB")
            self.buf = buf
            return b""
        head, rest = buf[:end].decode("latin-1"), buf[end + 4:]
        self.buf = b""
        lines = head.split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
            raise HttpError(f"not an HTTP response: {lines[0][:200]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise HttpError(f"bad status line: {lines[0][:200]!r}") from None
        if 100 <= status < 200:  # 100 Continue and friends: another head follows
            return self._head(rest, t) if rest else b""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        self.keep_alive = status_line[0] != "HTTP/1.0" and "close" not in connection
        if status_line[0] == "HTTP/1.0" and "keep-alive" in connection:
            self.keep_alive = True
        self.sink.on_head(status, status_line[2] if len(status_line) > 2 else "", headers, t)
        if self.head_request or status in (204, 304):
            self._finish(t)
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = True
            self.state = self.CHUNK_SIZE
        elif "content-length" in headers:
            try:
                self.remaining = int(headers["content-length"])
            except ValueError:
                raise HttpError(f"bad Content-Length {headers['content-length']!r}") from None
            self.state = self.BODY
            if self.remaining == 0:
                self._finish(t)
                return b""
        else:
            self.close_delimited = True
            self.keep_alive = False
            self.state = self.BODY
        return rest

    def _chunks(self, data: bytes, t: float) -> None:
        """One read of a chunked body: framing checked, body bytes to the sink as one block.

        Fast path: when every chunk that ends in this read ends at a line end (servers write
        one SSE event, or several whole ones, per chunk), the read goes to the sink as it is,
        framing included: each framing sequence then forms lines of its own (`\\r`, `1a\\r`)
        that no SSE reader takes for anything. Only reads where a chunk boundary cuts a line
        are de-chunked (copied piece by piece). Either way, partial framing at the end of a
        read is held back until the next one.
        """
        buf = self.buf + data if self.buf else data
        self.buf = b""
        n = len(buf)
        state0, remaining0 = self.state, self.remaining
        state, remaining, ends_nl = state0, remaining0, self.ends_nl
        pos = 0
        safe = 0  # buf[:safe] ends inside chunk data or after complete framing
        aligned = True
        find = buf.find
        while pos < n:
            if state == self.CHUNK_DATA:
                end = pos + remaining
                if end > n:
                    remaining = end - n
                    ends_nl = buf[n - 1] == 10
                    pos = safe = n
                    break
                ends_nl = buf[end - 1] == 10
                pos = safe = end
                remaining = 0
                state = self.CHUNK_CRLF
            if state == self.CHUNK_CRLF:
                if n - pos < 2:
                    break
                if not ends_nl:  # this framing would land inside a line: de-chunk this read
                    aligned = False
                pos += 2
                safe = pos
                state = self.CHUNK_SIZE
            if state == self.CHUNK_SIZE:
                if not ends_nl:
                    aligned = False
                eol = find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 1024:
                        raise HttpError("chunk size line too long")
                    break
                try:
                    size = int(buf[pos:eol], 16)
                except ValueError:
                    size = _chunk_size(buf, pos, eol)
                pos = eol + 2
                if size:
                    remaining = size
                    safe = pos
                    state = self.CHUNK_DATA
                else:
                    state = self.TRAILERS
            if state == self.TRAILERS:
                # trailer lines, then an empty line; almost always just "\r\n"
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    state = self.DONE
                    break
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                pos = end + 4
                state = self.DONE
                break
        self.remaining, self.ends_nl = remaining, ends_nl
        if state != self.DONE and pos < n:
            self.buf = buf[pos:]
        if aligned:
            body = buf if safe == n else buf[:safe]
        else:
            body = self._dechunk(buf, state0, remaining0)
        self.state = state if state != self.DONE else self.CHUNK_SIZE
        if body:
            self.sink.on_body(body, t)
        if state == self.DONE:
            self._finish(t)

    def _dechunk(self, buf: bytes, state: int, remaining: int) -> bytes:
        """The slow path: only the chunk data of `buf`, parsed from the given state."""
        parts: list[bytes] = []
        pos, n = 0, len(buf)
        while pos < n:
            if state == self.CHUNK_DATA:
                take = min(remaining, n - pos)
                parts.append(buf[pos:pos + take])
                pos += take
                remaining -= take
                if remaining:
                    break
                state = self.CHUNK_CRLF
            elif state == self.CHUNK_CRLF:
                if n - pos < 2:
                    break
                pos += 2
                state = self.CHUNK_SIZE
            elif state == self.CHUNK_SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                remaining = _chunk_size(buf, pos, eol)
                pos = eol + 2
                if not remaining:
                    break
                state = self.CHUNK_DATA
            else:
                break
        return b"".join(parts)


def _chunk_size(buf: bytes, pos: int, eol: int) -> int:
    try:
        return int(buf[pos:eol], 16)
    except ValueError:
        text = buf[pos:eol]
        try:  # chunk extensions: "1a;name=value"
            return int(text.split(b";", 1)[0], 16)
        except ValueError:
            raise HttpError(f"bad chunk size {text[:40]!r}") from None


def kernel_time(ancdata: list[tuple[int, int, bytes]], now: float, wall_now: float) -> float | None:
    """The arrival time of a read on the caller's clock; None if the kernel gave no usable stamp."""
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            age = wall_now - (sec + nsec * 1e-9)
            if 0.0 <= age < _MAX_KERNEL_AGE_S:
                return now - age
            if -0.001 < age < 0.0:  # the two clock reads straddled the stamp
                return now
    return None


def keep_timestamping_on() -> socket.socket | None:
    """A socket that only holds receive timestamping on, machine-wide, while it is open.

    Linux stamps incoming packets only while some socket asks for stamps, and switches that
    on lazily (from a work queue) when the first one does: packets in that moment go
    unstamped. Holding one socket with the option for a whole run keeps it on.
    """
    if SO_TIMESTAMPNS is None:
        return None
    try:
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return None
    return holder


class Connection:
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, pool: Pool, target: Target, sock: socket.socket, tls: ssl.SSLObject | None,
                 bio_in: ssl.MemoryBIO | None, bio_out: ssl.MemoryBIO | None):
        self.pool = pool
        self.target = target
        self.sock = sock
        self.fd = sock.fileno()
        self.tls = tls
        self.bio_in = bio_in
        self.bio_out = bio_out
        self.parser: ResponseParser | None = None
        self.pending_out = b""
        self.closed = False
        self.exchanges = 0
        self.stamped = pool.stamped

    # -- writing -------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
            data = self.bio_out.read()  # type: ignore[union-attr]
        self._send_raw(data)

    def _send_raw(self, data: bytes) -> None:
        if not data:
            return
        if self.pending_out:
            self.pending_out += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._error(exc, self.pool.clock())
            return
        if sent < len(data):
            self.pending_out = data[sent:]
            self.pool.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self.pending_out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.pool.loop.remove_writer(self.fd)
            self._error(exc, self.pool.clock())
            return
        self.pending_out = self.pending_out[sent:]
        if not self.pending_out:
            self.pool.loop.remove_writer(self.fd)

    # -- one exchange --------------------------------------------------------------------
    def start(self, request: bytes, sink: Sink, head_request: bool = False) -> float:
        """Send `request` and route the response to `sink`; returns the send time."""
        self.parser = ResponseParser(sink, head_request)
        self.exchanges += 1
        self.pool.loop.add_reader(self.fd, self._on_readable)
        t_send = self.pool.clock()
        self.send(request)
        return t_send

    def _on_readable(self) -> None:
        # The kernel stamps a read with the arrival of the last segment it took. When this
        # process was kept off the CPU, the bytes of several events wait together, and one big
        # read would date the first token by a later one. So while the sink still waits for
        # its first token, peek and read exactly up to the end of that event (plain TCP only:
        # TLS bytes cannot be looked into before they are read).
        parser = self.parser
        view = self.pool.recv_view  # one buffer per pool: reads are handled one at a time
        if parser is not None and self.tls is None and parser.sink.precise_start:
            try:
                peeked = self.sock.recv(_READ_SIZE, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._error(exc, self.pool.clock())
                return
            cut = parser.sink.first_event_cut(peeked) if peeked else 0
            if cut:
                view = view[:cut]
        try:
            nbytes, ancdata, _flags, _addr = self.sock.recvmsg_into((view,), _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._error(exc, self.pool.clock())
            return
        now = self.pool.clock()
        stamp = kernel_time(ancdata, now, time.time()) if ancdata else None
        if stamp is None:
            if nbytes:
                self.pool.unstamped_reads += 1
            t = now
        else:
            t = stamp
        if parser is None:  # data or EOF on an idle connection: it is of no more use
            self.close()
            return
        try:
            if nbytes == 0:
                parser.feed_eof(t)
            else:
                data = bytes(view[:nbytes])
                if self.tls is not None:
                    data = self._decrypt(data)
                    if not data:
                        return
                parser.feed(data, t)
        except (HttpError, ConnectionLost, ssl.SSLError) as exc:
            self._error(exc, t)
            return
        if parser.done:
            self._exchange_done(parser.keep_alive and nbytes != 0)

    def _decrypt(self, raw: bytes) -> bytes:
        assert self.tls is not None and self.bio_in is not None and self.bio_out is not None
        self.bio_in.write(raw)
        out: list[bytes] = []
        while True:
            try:
                piece = self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break
            if not piece:
                break
            out.append(piece)
        if self.bio_out.pending:  # e.g. a key update: answer it
            self._send_raw(self.bio_out.read())
        return b"".join(out)

    def _exchange_done(self, reusable: bool) -> None:
        self.parser = None
        self.pool.loop.remove_reader(self.fd)
        if reusable and not self.pending_out:
            self.pool.release(self)
        else:
            self.close()

    def _error(self, exc: BaseException, t: float) -> None:
        parser = self.parser
        self.close()
        if parser is not None and not parser.done:
            if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                where = ("before the response" if not parser.got_bytes else
                         "in the response head" if parser.state == parser.HEAD else "mid-response")
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                exc = ConnectionLost(f"connection reset by the server {where} ({name})",
                                     before_response=not parser.got_bytes, kind="reset")
            parser.sink.on_error(exc, t)

    def abort(self) -> None:
        """Give up on the current exchange (timeout, cancellation): the connection is dropped."""
        self.parser = None
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.parser = None
        loop = self.pool.loop
        loop.remove_reader(self.fd)
        if self.pending_out:
            loop.remove_writer(self.fd)
        self.pool.forget(self)
        try:
            self.sock.close()
        except OSError:
            pass

    def alive(self) -> bool:
        """An idle connection the server has not closed (no EOF or stray bytes waiting)."""
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return False  # EOF (b"") or bytes nobody asked for: either way not reusable


@dataclass
class Pool:
    """Idle keep-alive connections per target, opened on demand and never capped."""

    loop: asyncio.AbstractEventLoop
    clock: Callable[[], float]
    ssl_context: ssl.SSLContext | None = None
    connect_timeout: float | None = 30.0
    idle: dict[Target, list[Connection]] = field(default_factory=dict)
    open: set[Connection] = field(default_factory=set)
    stamped: bool = False
    unstamped_reads: int = 0  # reads timed by this process's clock: the kernel gave no stamp
    _addresses: dict[Target, tuple] = field(default_factory=dict)
    _stamp_holder: socket.socket | None = None
    recv_view: memoryview = field(default_factory=lambda: memoryview(bytearray(_READ_SIZE)))

    def __post_init__(self) -> None:
        self._stamp_holder = keep_timestamping_on()

    async def acquire(self, target: Target) -> tuple[Connection, bool]:
        """An idle live connection (reused=True) or a new one."""
        idle = self.idle.get(target)
        while idle:
            conn = idle.pop()
            if conn.alive():
                return conn, True
            conn.close()
        return await self.connect(target), False

    async def prewarm(self, target: Target, n: int) -> int:
        """Open connections until `n` idle ones are ready; returns how many could not be opened.

        So that a burst of n requests goes out at once, not staggered by n TCP (and TLS)
        handshakes, and connection setup stays out of the measured window.
        """
        idle = self.idle.setdefault(target, [])
        for conn in list(idle):
            if not conn.alive():
                conn.close()
        missing = n - len(self.idle.get(target, []))
        if missing <= 0:
            return 0
        results = await asyncio.gather(*(self.connect(target) for _ in range(missing)), return_exceptions=True)
        failed = 0
        for result in results:
            if isinstance(result, Connection):
                self.release(result)
            else:
                failed += 1
        return failed

    def release(self, conn: Connection) -> None:
        if not conn.closed:
            self.idle.setdefault(conn.target, []).append(conn)

    def forget(self, conn: Connection) -> None:
        self.open.discard(conn)
        idle = self.idle.get(conn.target)
        if idle and conn in idle:
            idle.remove(conn)

    async def _address(self, target: Target) -> tuple:
        cached = self._addresses.get(target)
        if cached is None:
            infos = await self.loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            if not infos:
                raise OSError(f"cannot resolve {target.host}")
            family, _type, proto, _name, addr = infos[0]
            cached = (family, proto, addr)
            self._addresses[target] = cached
        return cached

    async def connect(self, target: Target) -> Connection:
        family, proto, addr = await self._address(target)
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if SO_TIMESTAMPNS is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                    self.stamped = True
                except OSError:
                    pass
            if self.connect_timeout:
                try:
                    await asyncio.wait_for(self.loop.sock_connect(sock, addr), self.connect_timeout)
                except asyncio.TimeoutError:  # not the request's own --timeout: say which
                    raise ConnectionError(f"no TCP connection within {self.connect_timeout:g} s") from None
            else:
                await self.loop.sock_connect(sock, addr)
            tls = bio_in = bio_out = None
            if target.tls:
                context = self.ssl_context or ssl.create_default_context()
                bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = context.wrap_bio(bio_in, bio_out, server_hostname=target.host)
                await self._handshake(sock, tls, bio_in, bio_out)
        except BaseException:
            sock.close()
            raise
        conn = Connection(self, target, sock, tls, bio_in, bio_out)
        self.open.add(conn)
        return conn

    async def _handshake(self, sock: socket.socket, tls: ssl.SSLObject, bio_in: ssl.MemoryBIO,
                         bio_out: ssl.MemoryBIO) -> None:
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            out = bio_out.read()
            if out:
                await self.loop.sock_sendall(sock, out)
            if done:
                return
            # plain recv here: the handshake's own timing is not measured
            data = await self.loop.sock_recv(sock, 65536)
            if not data:
                raise ConnectionLost("server closed the connection during the TLS handshake", before_response=True)
            bio_in.write(data)

    def close(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.idle.clear()
        if self._stamp_holder is not None:
            self._stamp_holder.close()
            self._stamp_holder = None


# -- a plain request, for the odd JSON call (/v1/models, /tokenize) -------------------------

@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class _Collect:
    precise_start = False

    def first_event_cut(self, peeked: bytes) -> int:
        return 0

    def __init__(self, future: asyncio.Future, limit: int):
        self.future = future
        self.limit = limit
        self.status, self.reason, self.headers = 0, "", {}
        self.parts: list[bytes] = []
        self.size = 0

    def on_head(self, status: int, reason: str, headers: dict[str, str], t: float) -> None:
        self.status, self.reason, self.headers = status, reason, headers

    def on_body(self, data: bytes, t: float) -> None:
        if self.size < self.limit:
            self.parts.append(data)
            self.size += len(data)

    def on_end(self, t: float) -> None:
        if not self.future.done():
            self.future.set_result(Reply(self.status, self.reason, self.headers, b"".join(self.parts)[: self.limit]))

    def on_error(self, exc: BaseException, t: float) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


async def fetch(pool: Pool, target: Target, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = 30.0,
                limit: int = 16 * 1024 * 1024) -> Reply:
    """One request, whole reply; raises OSError/ConnectionLost/HttpError/TimeoutError."""
    for attempt in (0, 1):
        conn, reused = await pool.acquire(target)
        future: asyncio.Future = pool.loop.create_future()
        conn.start(build_request(method, target, path, body, headers or {}), _Collect(future, limit),
                   head_request=method == "HEAD")
        try:
            return await asyncio.wait_for(future, timeout)
        except ConnectionLost as exc:
            if reused and exc.before_response and attempt == 0:
                continue  # a stale keep-alive connection: once more on a fresh one
            raise
        except BaseException:
            conn.abort()
            raise
    raise AssertionError("unreachable")
