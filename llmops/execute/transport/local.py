"""Commands on this machine, through /bin/sh (the `localhost` of every default inventory)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from llmops.execute.transport.base import CommandResult, LineStream, Trace, _PipeStream, _traced
from llmops.load.inventory import Host


class LocalRunner:
    """Runs on this machine with /bin/sh; the same contract as SshRunner."""

    kind = 'local'  # which transport: callers test this, never the class name

    def __init__(self, host: Host):
        self.host = host
        self.trace: Trace | None = None  # -vv: every command; set by the executor

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None) -> CommandResult:
        t0 = time.monotonic()
        data = stdin.encode() if isinstance(stdin, str) else stdin
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(data, timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            code = None
        except BaseException:
            # Ctrl-C while a command runs: do not leave its process group behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            proc.wait()
            raise
        return _traced(self, CommandResult(command, code, out.decode("utf-8", "replace"),
                                           err.decode("utf-8", "replace"), time.monotonic() - t0))

    def get(self, remote_path: str, local_path: Path) -> bool:
        src = Path(os.path.expanduser(remote_path))
        if not src.is_file():
            return False
        local_path.parent.mkdir(parents=True, exist_ok=True)
        local_path.write_bytes(src.read_bytes())
        return True

    @contextlib.contextmanager
    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        yield remote_port

    def is_connected(self) -> bool:
        return True

    def open_stream(self, command: str, *, replies: bool = False) -> LineStream:
        return _PipeStream(["/bin/sh", "-c", command], replies)

    def close(self) -> None:
        pass


