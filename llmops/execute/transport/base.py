"""What every transport shares: the result type, the Runner and LineStream contracts, and
the small helpers the runners and the agent use (no runner lives here)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmops.load.inventory import Host

Trace = Callable[["CommandResult"], None]


@dataclass
class CommandResult:
    command: str
    exit_code: int | None  # None: killed by our timeout
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    def brief(self, limit: int = 600) -> str:
        text = (self.stderr.strip() or self.stdout.strip())
        return text[-limit:]


class Runner(Protocol):
    kind: str  # "local", "fabric" or "openssh"
    host: Host

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None) -> CommandResult: ...

    def get(self, remote_path: str, local_path: Path) -> bool: ...

    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> contextlib.AbstractContextManager[int]: ...

    def is_connected(self) -> bool: ...

    def open_stream(self, command: str, *, replies: bool = False) -> LineStream: ...

    def close(self) -> None: ...


class LineStream(Protocol):
    """A command on the host fed line by line: write() fails once it is gone. Opened with
    `replies=True`, its output can be read back a line at a time (the agent's `serve`)."""

    def write(self, line: str) -> None: ...

    def read_line(self, timeout: float | None) -> str | None:
        """The next line without its newline; None when `timeout` passed first; EOFError at the end."""
        ...

    def close(self) -> None: ...


class _Lines:
    """Splits what arrives into lines; the transport supplies `_receive(timeout) -> bytes | None`."""

    def __init__(self) -> None:
        self._buffer = b""

    def _receive(self, timeout: float | None) -> bytes | None:
        raise NotImplementedError

    def read_line(self, timeout: float | None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            chunk = self._receive(left)
            if chunk is None:
                return None
            if not chunk:
                raise EOFError("the stream ended")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")


class _PipeStream(_Lines):
    def __init__(self, argv: list[str], replies: bool = False):
        super().__init__()
        # Its own session: a Ctrl-C at the terminal must not kill it before our cleanup has used it.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE if replies else subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def _receive(self, timeout: float | None) -> bytes | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        return os.read(fd, 65536)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            if self.proc.stdout:
                self.proc.stdout.close()


def _traced(runner: Runner, result: CommandResult) -> CommandResult:
    if runner.trace is not None:
        runner.trace(result)
    return result


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(runner: Runner, pid: int) -> bool:
    """Is the process there and not a zombie (a zombie is a server that has exited)."""
    if runner.host.is_local:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            return False
    else:
        result = runner.run(f"cat /proc/{int(pid)}/stat 2>/dev/null", timeout=30)
        if not result.ok:
            return False
        data = result.stdout.encode()
    state = data[data.rfind(b")") + 2:data.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")
