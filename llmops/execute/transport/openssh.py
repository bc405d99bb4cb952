"""The same Runner contract over the system's OpenSSH client, for what Fabric cannot follow.

Fabric (paramiko) reads ~/.ssh/config but not all of it: `Include` is ignored (fabric#2215),
`ProxyJump none` is taken for a host name (#2354), multi-hop jumps fail (#1935). Users who can
`ssh host` expect llmops to get there the same way, so when their config uses those features (or
the inventory says `llmops_ssh: system`), commands go through `ssh` itself, multiplexed over one
master connection per host (ControlMaster), so each command costs a channel, not a handshake.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from llmops.errors import ConnectError
from llmops.execute.transport.base import CommandResult, LineStream, _PipeStream, _traced, free_local_port
from llmops.load.inventory import Host
from llmops.shell import HostPath, shell_word

# Directives that paramiko's config reader does not honour (or honours wrongly).
ADVANCED = re.compile(r"^\s*(Include|ProxyJump|ProxyCommand|Match)\b", re.I | re.M)


def config_needs_openssh(path: str = "~/.ssh/config") -> bool:
    try:
        text = Path(os.path.expanduser(path)).read_text(errors="replace")
    except OSError:
        return False
    return bool(ADVANCED.search(text))


def config_file(host: Host) -> str | None:
    """An ssh config other than ~/.ssh/config, from the host variable `llmops_ssh_config`."""
    value = host.vars.get("llmops_ssh_config")
    return os.path.expanduser(str(value)) if value else None


def wanted(host: Host) -> bool:
    """Use OpenSSH for this host? The inventory decides (llmops_ssh: system|paramiko), else the config."""
    choice = str(host.vars.get("llmops_ssh", "auto")).lower()
    if choice == "paramiko" or not shutil.which("ssh"):
        return False
    return choice == "system" or config_needs_openssh(config_file(host) or "~/.ssh/config")


def ssh_options(host: Host) -> list[str]:
    """Options shared by commands, forwards and streams: batch mode, host keys, identity."""
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(host.connect_timeout))}",
            "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
    if config_file(host):
        opts[:0] = ["-F", config_file(host)]
    if host.port != 22:
        opts += ["-p", str(host.port)]
    if host.user:
        opts += ["-l", host.user]
    if host.key:
        opts += ["-i", os.path.expanduser(host.key), "-o", "IdentitiesOnly=yes"]
    if host.host_key_checking:
        opts += ["-o", "StrictHostKeyChecking=yes"]  # never a prompt, never silently accepted
        if host.known_hosts:
            opts += ["-o", "UserKnownHostsFile=" + " ".join([os.path.expanduser(host.known_hosts),
                                                           os.path.expanduser("~/.ssh/known_hosts")])]
    else:
        opts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    return opts


class OpenSshRunner:
    kind = 'openssh'  # which transport: callers test this, never the class name

    def __init__(self, host: Host):
        self.host = host
        self.trace = None
        # %C: a hash of the connection's parameters; the folder keeps the socket path short.
        self.control = os.path.join(tempfile.gettempdir(), f"llmops-ssh-{os.getuid()}", "%C")
        Path(self.control).parent.mkdir(mode=0o700, exist_ok=True)

    def _base(self) -> list[str]:
        return ["ssh", *ssh_options(self.host), "-o", "ControlMaster=auto", "-o", f"ControlPath={self.control}",
                "-o", "ControlPersist=120"]

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None) -> CommandResult:
        t0 = time.monotonic()
        argv = self._base() + ["--", self.host.address, "exec /bin/sh -c " + shlex.quote(command)]
        data = stdin.encode() if isinstance(stdin, str) else stdin
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout,
                                  stdin=None if data is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            return _traced(self, CommandResult(command, None, (exc.stdout or b"").decode("utf-8", "replace"),
                                               (exc.stderr or b"").decode("utf-8", "replace"), time.monotonic() - t0))
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 255 and _is_ssh_failure(err):
            raise ConnectError(f"{self.host.name}: {_reason(err)}")
        return _traced(self, CommandResult(command, proc.returncode, proc.stdout.decode("utf-8", "replace"), err,
                                           time.monotonic() - t0))

    def get(self, remote_path: str, local_path: Path) -> bool:
        argv = self._base() + ["--", self.host.address, "exec cat " + shell_word(HostPath(remote_path), reveal=True)]
        proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
        if proc.returncode == 255 and _is_ssh_failure(proc.stderr.decode("utf-8", "replace")):
            raise ConnectError(f"{self.host.name}: {_reason(proc.stderr.decode('utf-8', 'replace'))}")
        if proc.returncode != 0:
            return False
        local_path.parent.mkdir(parents=True, exist_ok=True)
        local_path.write_bytes(proc.stdout)
        return True

    @contextlib.contextmanager
    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        with forward(self.host, remote_port, remote_host, self._base()[1:]) as port:
            yield port

    def open_stream(self, command: str, *, replies: bool = False) -> LineStream:
        return _PipeStream(self._base() + ["--", self.host.address, "exec /bin/sh -c " + shlex.quote(command)], replies)

    def is_connected(self) -> bool:
        check = subprocess.run(self._base() + ["-O", "check", "--", self.host.address], capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=10)
        return check.returncode == 0

    def close(self) -> None:
        subprocess.run(self._base() + ["-O", "exit", "--", self.host.address], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=10)


def _is_ssh_failure(stderr: str) -> bool:
    markers = ("Connection refused", "Connection timed out", "Could not resolve", "Permission denied",
               "Host key verification failed", "No route to host", "Connection closed", "kex_exchange",
               "Operation timed out", "Network is unreachable", "connect to host", "Connection reset")
    return any(m in stderr for m in markers)


def _reason(stderr: str) -> str:
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "ssh failed"
    if "Permission denied" in stderr:
        return f"SSH authentication failed: {text}"
    if "Host key verification failed" in stderr or "No ED25519 host key is known" in stderr:
        return f"unknown or changed host key: {text}"
    return f"cannot connect: {text}"


@contextlib.contextmanager
def forward(host: Host, remote_port: int, remote_host: str, options: list[str] | None = None) -> Iterator[int]:
    """`ssh -N -L`: a local port reaching remote_host:remote_port through `host`, while in use."""
    local_port = free_local_port()
    argv = ["ssh", *(options if options is not None else ssh_options(host)), "-N", "-T",
            "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{local_port}:{remote_host}:{remote_port}",
            "--", host.address]  # `--`: an address can never be read as an option
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _wait_for_port(proc, local_port, host)
        yield local_port
    finally:
        _end(proc)


def _wait_for_port(proc: subprocess.Popen, port: int, host: Host) -> None:
    import socket

    deadline = time.monotonic() + host.connect_timeout + 10
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            raise ConnectError(f"{host.name}: the SSH port forward failed: {err.strip()[-400:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ConnectError(f"{host.name}: the SSH port forward did not come up") from None
            time.sleep(0.02)


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
