"""A real OpenSSH server for tests, on 127.0.0.1 (or inside a network namespace), keys made per run.

Debian's openssh-server provides /usr/sbin/sshd (installed by `make test`). The server runs
in the foreground (-D) as a child of the test process, with its own host key, an
authorized_keys file holding a client key generated for this run, and a known_hosts file
the inventory points at, so host-key checking stays on in tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    address: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    folder: Path
    process: subprocess.Popen

    def inventory_entry(self, **extra: object) -> dict[str, object]:
        entry: dict[str, object] = {"host": self.address, "port": self.port, "user": self.user,
                                    "key": str(self.client_key), "known_hosts": str(self.known_hosts)}
        entry.update(extra)
        return entry

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start(folder: Path, *, address: str = "127.0.0.1", port: int | None = None, netns: str | None = None,
          client_key: Path | None = None) -> Sshd:
    folder.mkdir(parents=True, exist_ok=True)
    host_key = folder / "host_key"
    if not host_key.exists():
        keygen(host_key)
    if client_key is None:
        client_key = folder / "client_key"
        if not client_key.exists():
            keygen(client_key)
    (folder / "authorized_keys").write_text(Path(str(client_key) + ".pub").read_text())
    os.chmod(folder / "authorized_keys", 0o600)
    port = port or free_port(address if netns is None else "127.0.0.1")
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        f"ListenAddress {address}\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "StrictModes no\n"
        "AllowTcpForwarding yes\n"
        "MaxSessions 100\n"
        "MaxStartups 100:30:200\n"
        "LogLevel VERBOSE\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation folder
    cmd = [SSHD, "-D", "-e", "-f", str(config)]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    log = open(folder / "sshd.log", "ab")
    from session_signals import die_with_parent  # lazily: pytest registers that module as a plugin

    # Gone with the test process even when it is killed outright (no teardown then).
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    pub = (folder / "host_key.pub").read_text().split()
    known = folder / "known_hosts"
    name = address if port == 22 else f"[{address}]:{port}"  # OpenSSH writes port 22 without brackets
    known.write_text(f"{name} {pub[0]} {pub[1]}\n")
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(folder / 'sshd.log').read_text()[-2000:]}")
        if _listening(address, port, netns):
            return Sshd(address, port, user, client_key, known, folder, proc)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sshd did not start listening within 15 s")


def _listening(address: str, port: int, netns: str | None) -> bool:
    if netns is not None:
        probe = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c",
                                f"exec 3<>/dev/tcp/{address}/{port}"], capture_output=True)
        if probe.returncode == 0:
            return True
        # dash has no /dev/tcp: ask ss instead
        out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-ltn"], capture_output=True, text=True).stdout
        return f"{address}:{port}" in out
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
