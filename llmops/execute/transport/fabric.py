"""SSH through Fabric (paramiko): the default transport for SSH hosts.

`connect(host)` gives a Runner; `runner.run(cmd)` runs a POSIX shell command line on that
host and returns a CommandResult (never raises for a non-zero exit; raises ConnectError when
the host cannot be reached). SSH goes through Fabric; host keys are checked against
~/.ssh/known_hosts (and the inventory's `known_hosts`) unless the inventory turns checking off.
"""


from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from llmops.errors import ConnectError
from llmops.execute.transport.base import CommandResult, LineStream, Trace, _Lines, _traced, free_local_port
from llmops.load.inventory import Host


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
        except TimeoutError:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.shutdown_write()
            self.channel.close()


class SshRunner:
    """Fabric Connection with strict host-key checking by default; commands run under `sh -c`."""

    kind = 'fabric'  # which transport: callers test this, never the class name

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
            except TimeoutError:
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


