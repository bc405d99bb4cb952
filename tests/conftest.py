"""Shared fixtures: the llmops command, a real sshd, and provisioning done once per session."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_forks  # noqa: E402
import sshd as sshd_mod  # noqa: E402

# How a plain `pytest` runs the fast tier on every core, its timed tests beside it.
pytest_plugins = ("fast_tier", "session_signals")


def llmops(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None,
           check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
    """`python -m llmops ARGS`. In the fast tier through the fork server (tests/cli_forkserver.py:
    llmops already imported, the command still a process of its own), elsewhere a fresh interpreter."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = None
    if _FORKS_ALLOWED:
        proc = cli_forks.FORKS.run(list(args), cwd or ROOT, env=full_env, stdin=input, timeout=timeout)
    if proc is None:
        proc = subprocess.run([sys.executable, "-m", "llmops", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                              timeout=timeout, env=full_env, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"llmops {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# Set per test (pytest_runtest_setup below): the real tier, whose tests may look for the llmops
# process by its command line or measure the host, always gets a fresh interpreter.
_FORKS_ALLOWED = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    global _FORKS_ALLOWED
    _FORKS_ALLOWED = item.get_closest_marker("real") is None


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


# --- test tiers -----------------------------------------------------------------------------------
# Plain `pytest` runs the fast tier (no real servers, sshd, namespaces, podman or browser; the
# emulator stands in for servers). `pytest -m real` runs the rest; `make test` runs both. A test
# is real when it uses one of these fixtures or lives in one of these modules (modules whose
# tests start real things without a fixture, or through request.getfixturevalue).
REAL_FIXTURES = {"provisioned", "sshd", "vllm_provisioned", "llama_server", "vllm_server", "hidden_host"}
REAL_MODULES = {"test_vllm", "test_real_servers", "test_html_browser", "test_multihost", "test_ssh_config",
                "test_agent_session", "test_apply_llama", "test_faults", "test_idempotence", "test_security",
                "test_tiny_model", "test_containers", "test_metrics_real"}


# Fast tests that judge time (the emulator streams at known times and they check what the
# client measured): they run one at a time, beside the rest of the fast tier, at normal priority,
# because a loaded CPU delays the emulator and the client alike (see tests/fast_tier.py).
TIMED_PATHS = ("tests/bench/",)
TIMED_MODULES = {"test_cli_terminal", "test_sampling", "test_energy_apply", "test_rundir_lock"}


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (every item, the imported test modules) lives to the end of the
    session: frozen, the collector stops walking it. The bench runs a full collection before each
    run (llmops/bench/engine.py), which over this heap cost about 80 ms each, 3 s in one test."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if getattr(item, "module", None) else ""
        if module in REAL_MODULES or REAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real)
        path = str(getattr(item, "path", "")).replace("\\", "/")
        if module in TIMED_MODULES or any(part in path for part in TIMED_PATHS):
            item.add_marker(pytest.mark.timed)
