"""Shared fixtures: the llmops command, a real sshd, and provisioning done once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sshd as sshd_mod  # noqa: E402


def llmops(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None,
           check: bool = False) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "llmops", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"llmops {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def provisioned() -> None:
    """Build llama-server and the tiny model once (cached under ~/.cache/llmops across runs)."""
    llmops("provision", "tests/playbooks/llama.yml", timeout=3600, check=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if not sshd_mod.available():
        pytest.fail("sshd is not installed: run `make test` (it installs Debian's openssh-server)")
    server = sshd_mod.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def free_port() -> int:
    return sshd_mod.free_port()


def processes_matching(text: str) -> list[str]:
    """Command lines of live processes that contain `text` (zombies excluded)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
        if text in cmd and state not in (b"Z", b"X") and int(name) != os.getppid():
            found.append(f"{name}: {cmd}")
    return found


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())
