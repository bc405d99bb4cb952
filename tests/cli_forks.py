"""The client side of tests/cli_forkserver.py: one fork server per test process, started on first
use, ended at exit. `run()` gives what `python -m llmops ARGS` gives (a CompletedProcess), or None
when this command must run in a fresh interpreter instead (see `usable`)."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

SERVER = Path(__file__).resolve().parent / "cli_forkserver.py"


def _import_time_env(env: dict[str, str]) -> dict[str, str]:
    """What llmops or Python read when they start (llmops.limits reads LLMOPS_* at import)."""
    return {k: v for k, v in env.items() if k.startswith(("LLMOPS_", "PYTHON"))}


class CliForks:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.startup: dict[str, float] = {}
        self.started_env: dict[str, str] = {}
        self.lock = threading.Lock()

    def usable(self, env: dict[str, str]) -> bool:
        if os.environ.get("LLMOPS_TEST_FORKS", "1") == "0":
            return False
        base = self.started_env if self.proc is not None else dict(os.environ)
        return _import_time_env(env) == _import_time_env(base)

    def _start(self) -> None:
        self.started_env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=SERVER.parent, env=self.started_env)
        assert self.proc.stdout is not None
        self.startup = json.loads(self.proc.stdout.readline())

    def answer(self, args: list[str], cwd: Path | str, env: dict[str, str] | None = None, stdin: str | None = None,
               timeout: float = 60, limit_as: int | None = None) -> dict[str, Any] | None:
        """The child's code, stdout, stderr, cpu_s and max_rss_mb; None when it cannot run here
        (another thread holds the server, or the environment differs where it matters)."""
        full_env = dict(os.environ if env is None else env)
        if not self.usable(full_env) or not self.lock.acquire(blocking=False):
            return None
        try:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
                if not self.usable(full_env):
                    return None
            assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
            request = {"args": list(args), "cwd": str(cwd), "timeout": timeout, "env": full_env, "stdin": stdin,
                       "limit_as": limit_as}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())
        finally:
            self.lock.release()

    def run(self, args: list[str], cwd: Path | str, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess | None:
        got = self.answer(args, cwd, env=env, stdin=stdin, timeout=timeout)
        if got is None:
            return None
        cmd = [sys.executable, "-m", "llmops", *args]
        if got["code"] == "timeout":
            raise subprocess.TimeoutExpired(cmd, timeout, output=got["stdout"], stderr=got["stderr"])
        return subprocess.CompletedProcess(cmd, got["code"], got["stdout"], got["stderr"])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


FORKS = CliForks()
atexit.register(FORKS.close)


def measured(args: list[str], cwd: Path, report: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `llmops ARGS` as a process of its own: its exit code, output, CPU seconds and peak RSS,
    under the address-space bound of tests/bad_input_runner.py. Through the fork server, its import
    cost added back so a bound still covers what a fresh `llmops` pays; a command with its own
    bounds (LLMOPS_* variables, read at import) runs in a fresh interpreter through
    bad_input_runner.py, which writes REPORT."""
    from bad_input_runner import ADDRESS_SPACE  # the same bound on both paths

    full_env = {**os.environ, **(env or {})}
    answer = FORKS.answer(args, cwd, env=full_env, timeout=30, limit_as=ADDRESS_SPACE)
    if answer is not None:
        answer["cpu_s"] += FORKS.startup["startup_cpu_s"]
        answer["max_rss_mb"] = max(answer["max_rss_mb"], FORKS.startup["startup_rss_mb"])
        return answer
    runner = Path(__file__).resolve().parent / "bad_input_runner.py"
    subprocess.run([sys.executable, str(runner), str(report), *args], cwd=cwd, env=full_env, check=True, timeout=120)
    return json.loads(report.read_text())
