"""One run API over local and SSH hosts, returning one result type.

`connect(host)` gives a Runner; `runner.run(cmd)` runs a POSIX shell command line on that
host and returns a CommandResult (never raises for a non-zero exit; raises ConnectError when
the host cannot be reached). SSH goes through Fabric; host keys are checked against
~/.ssh/known_hosts (and the inventory's `known_hosts`) unless the inventory turns checking off.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmops.errors import ConnectError
from llmops.load.inventory import Host


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
    host: Host

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None) -> CommandResult: ...

    def get(self, remote_path: str, local_path: Path) -> bool: ...

    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> contextlib.AbstractContextManager[int]: ...

    def is_connected(self) -> bool: ...

    def open_stream(self, command: str, *, replies: bool = False) -> "LineStream": ...

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


class _ChannelStream(_Lines):
    def __init__(self, channel):
        super().__init__()
        self.channel = channel

    def write(self, line: str) -> None:
        if self.channel.closed or self.channel.exit_status_ready():
            raise OSError("stream closed")
        self.channel.sendall(line.encode() + b"\n")

    def _receive(self, timeout: float | None) -> bytes | None:
        self.channel.settimeout(timeout)
        try:
            return self.channel.recv(65536)
        except socket.timeout:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.shutdown_write()
            self.channel.close()


def connect(host: Host) -> Runner:
    if host.is_local:
        return LocalRunner(host)
    if host.connection not in ("ssh", "paramiko", "smart"):
        raise ConnectError(f"{host.name}: connection {host.connection!r} is not supported (local or ssh)")
    from llmops.execute import openssh

    if openssh.wanted(host):
        return openssh.OpenSshRunner(host)
    return SshRunner(host)


Trace = Callable[["CommandResult"], None]


class LocalRunner:
    """Runs on this machine with /bin/sh; the same contract as SshRunner."""

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


class SshRunner:
    """Fabric Connection with strict host-key checking by default; commands run under `sh -c`."""

    def __init__(self, host: Host):
        self.host = host
        self._conn = None
        self._lock = threading.Lock()
        self.trace: Trace | None = None

    def _connection(self):
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return self._conn
            import paramiko
            from fabric import Config, Connection

            host = self.host
            connect_kwargs: dict[str, object] = {"allow_agent": True, "look_for_keys": host.key is None,
                                                 "banner_timeout": host.connect_timeout,
                                                 "auth_timeout": host.connect_timeout}
            if host.key:
                connect_kwargs["key_filename"] = [os.path.expanduser(host.key)]
            overrides: dict[str, object] = {"load_ssh_configs": True}
            if host.vars.get("llmops_ssh_config"):
                overrides["ssh_config_path"] = os.path.expanduser(str(host.vars["llmops_ssh_config"]))
            config = Config(overrides=overrides)
            conn = Connection(host=host.address, user=host.user, port=host.port, connect_kwargs=connect_kwargs,
                              connect_timeout=host.connect_timeout, config=config)
            client = conn.client
            if host.host_key_checking:
                client.load_system_host_keys()
                if host.known_hosts:
                    client.load_host_keys(os.path.expanduser(host.known_hosts))
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                conn.open()
            except paramiko.BadHostKeyException as exc:
                raise ConnectError(f"{host.name}: host key for {host.address} does not match known_hosts "
                                   f"(possible man-in-the-middle): {exc}") from None
            except paramiko.SSHException as exc:
                if "not found in known_hosts" in str(exc):
                    raise ConnectError(f"{host.name}: unknown host key for {host.address}:{host.port}; add it to "
                                       "~/.ssh/known_hosts (ssh-keyscan) or set host_key_checking: false "
                                       "in the inventory") from None
                if isinstance(exc, paramiko.AuthenticationException):
                    raise ConnectError(f"{host.name}: SSH authentication failed for "
                                       f"{host.user or '(default user)'}@{host.address}:{host.port}: {exc}") from None
                raise ConnectError(f"{host.name}: SSH error: {exc}") from None
            except (socket.timeout, TimeoutError):
                raise ConnectError(f"{host.name}: timed out connecting to {host.address}:{host.port}") from None
            except OSError as exc:
                raise ConnectError(f"{host.name}: cannot connect to {host.address}:{host.port}: "
                                   f"{exc.strerror or exc}") from None
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(15)
            self._conn = conn
            return conn

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None) -> CommandResult:
        from invoke.exceptions import CommandTimedOut

        conn = self._connection()
        wrapped = "exec /bin/sh -c " + shlex.quote(command)
        t0 = time.monotonic()
        if stdin is not None:
            return self._run_with_stdin(conn, command, wrapped, stdin, timeout, t0)
        try:
            result = conn.run(wrapped, hide=True, warn=True, timeout=timeout, in_stream=False, pty=False)
        except CommandTimedOut as exc:
            r = exc.result
            return CommandResult(command, None, r.stdout, r.stderr, time.monotonic() - t0)
        except (OSError, EOFError) as exc:
            self._conn = None
            raise ConnectError(f"{self.host.name}: SSH connection lost: {exc}") from None
        except Exception as exc:  # paramiko.SSHException and friends
            if type(exc).__module__.startswith("paramiko"):
                self._conn = None
                raise ConnectError(f"{self.host.name}: SSH connection lost: {exc}") from None
            raise
        return _traced(self, CommandResult(command, result.exited, result.stdout, result.stderr,
                                           time.monotonic() - t0))

    def _run_with_stdin(self, conn, command: str, wrapped: str, stdin: str | bytes, timeout: float | None,
                        t0: float) -> CommandResult:
        """Fabric's run never sends EOF after in_stream ends; a raw channel can (shutdown_write)."""
        data = stdin.encode() if isinstance(stdin, str) else stdin
        try:
            channel = conn.client.get_transport().open_session()
            channel.settimeout(timeout)
            channel.exec_command(wrapped)
            channel.sendall(data)
            channel.shutdown_write()
            out, err = io.BytesIO(), io.BytesIO()
            while True:
                if channel.recv_ready():
                    out.write(channel.recv(65536))
                elif channel.recv_stderr_ready():
                    err.write(channel.recv_stderr(65536))
                elif channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                else:
                    if timeout is not None and time.monotonic() - t0 > timeout:
                        channel.close()
                        return CommandResult(command, None, out.getvalue().decode("utf-8", "replace"),
                                             err.getvalue().decode("utf-8", "replace"), time.monotonic() - t0)
                    time.sleep(0.005)
            code = channel.recv_exit_status()
            channel.close()
        except (OSError, EOFError) as exc:
            self._conn = None
            raise ConnectError(f"{self.host.name}: SSH connection lost: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("paramiko"):
                self._conn = None
                raise ConnectError(f"{self.host.name}: SSH connection lost: {exc}") from None
            raise
        return _traced(self, CommandResult(command, code, out.getvalue().decode("utf-8", "replace"),
                                           err.getvalue().decode("utf-8", "replace"), time.monotonic() - t0))

    def get(self, remote_path: str, local_path: Path) -> bool:
        conn = self._connection()
        path = remote_path[2:] if remote_path.startswith("~/") else remote_path
        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn.get(path, str(local_path))
        except FileNotFoundError:
            return False
        except OSError as exc:
            if "No such file" in str(exc):
                return False
            raise ConnectError(f"{self.host.name}: copying {remote_path} failed: {exc}") from None
        return True

    @contextlib.contextmanager
    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        """A local port that reaches remote_host:remote_port on the host.

        Through the system's OpenSSH client when there is one: benchmark traffic is many
        concurrent streams, and Fabric's tunnel (a Python thread per connection moving 1 KiB at a
        time) became the bottleneck at 32 streams, throttling the server it was measuring.
        OpenSSH also honours all of ~/.ssh/config (Include, ProxyJump). Fabric's tunnel remains
        the fallback.
        """
        if shutil.which("ssh"):
            with self._system_forward(remote_port, remote_host) as port:
                yield port
            return
        with self._fabric_forward(remote_port, remote_host) as port:
            yield port

    @contextlib.contextmanager
    def _system_forward(self, remote_port: int, remote_host: str) -> Iterator[int]:
        from llmops.execute import openssh

        with openssh.forward(self.host, remote_port, remote_host) as port:
            yield port

    @contextlib.contextmanager
    def _fabric_forward(self, remote_port: int, remote_host: str) -> Iterator[int]:
        conn = self._connection()
        local_port = free_local_port()
        tunnel = conn.forward_local(local_port, remote_port=remote_port, remote_host=remote_host,
                                    local_host="127.0.0.1")
        tunnel.__enter__()
        try:
            yield local_port
        finally:
            try:
                tunnel.__exit__(None, None, None)
            except Exception:  # noqa: BLE001
                # Fabric re-raises its tunnel threads' errors here (EOFError, "SSH session not
                # active") when the connection died under them; that loss is reported where it
                # happened, not as a second, internal error.
                if self.is_connected():
                    raise

    def open_stream(self, command: str, *, replies: bool = False) -> LineStream:  # noqa: ARG002 - channels always can
        conn = self._connection()
        try:
            channel = conn.client.get_transport().open_session()
            channel.exec_command("exec /bin/sh -c " + shlex.quote(command))
        except Exception as exc:  # noqa: BLE001 - paramiko raises several kinds here
            self._conn = None
            raise ConnectError(f"{self.host.name}: SSH connection lost: {exc}") from None
        return _ChannelStream(channel)

    def is_connected(self) -> bool:
        """False once the SSH transport is gone (a tunnel through it would hang, not fail)."""
        conn = self._conn
        if conn is None or conn.client is None:
            return False
        transport = conn.client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


def _traced(runner: "LocalRunner | SshRunner", result: CommandResult) -> CommandResult:
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
