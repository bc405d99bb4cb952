"""Run provisioning steps on a host: check first (ok), apply only when needed (changed).

Applies can take long (a llama.cpp build: minutes; vLLM's venv: minutes), so they run
detached on the host through the agent, with their own log there, and are polled: an SSH
hiccup does not kill a half-done build, and Ctrl-C stops it cleanly. Success is decided by
running the step's check again, the same test that makes the step idempotent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from llmops.errors import ConnectError, ExecutionError
from llmops.execute.agent import Agent, q
from llmops.execute.runner import Runner
from llmops.plugins.api import ProvisionStep

PERCENT = re.compile(rb"\[\s*(\d{1,3})%\]")  # cmake/make "[ 42%] Building ..."; ninja prints "[12/80]"
NINJA = re.compile(rb"\[(\d+)/(\d+)\]")
PROGRESS_EVERY_S = 5.0


def provision(runner: Runner, agent: Agent, step: ProvisionStep, cancel: threading.Event,
              on_start: Callable[[ProvisionStep], None] | None = None,
              on_progress: Callable[[ProvisionStep, str], None] | None = None) -> dict[str, Any]:
    """`on_progress(step, text)` hears how a running apply is doing (a build's percentage, read
    from its log on the host every PROGRESS_EVERY_S); without it no extra command runs."""
    t0 = time.monotonic()
    # The exact scripts go into the run directory's provision.json: `llmops docs` writes them down.
    outcome: dict[str, Any] = {"id": step.id, "name": step.name, "log": step.log, "check": step.check,
                               "apply": step.apply}
    check = runner.run(step.check, timeout=120)
    if check.ok:
        outcome.update(status="ok", seconds=time.monotonic() - t0)
        return outcome
    if on_start is not None:
        on_start(step)
    doc = agent.call("start", "--no-exec", "--no-stamp", "--log", (step.log or "/dev/null") + ".outer",
                     "--command", step.apply, timeout=120, check=False)
    if not doc.get("ok"):
        outcome.update(status="failed", error=f"could not start: {doc.get('error', doc)}",
                       seconds=time.monotonic() - t0)
        return outcome
    pid = int(doc["pid"])
    deadline = time.monotonic() + step.timeout
    next_look = time.monotonic() + PROGRESS_EVERY_S
    try:
        while True:
            if on_progress is not None and step.log and time.monotonic() >= next_look:
                next_look = time.monotonic() + PROGRESS_EVERY_S
                on_progress(step, build_progress(runner, step.log, time.monotonic() - t0))
            if cancel.is_set():
                agent.call("stop", str(pid), "--timeout", "10", timeout=60, check=False)
                outcome.update(status="interrupted", error="interrupted", seconds=time.monotonic() - t0)
                return outcome
            if not agent.alive(pid):
                break
            if time.monotonic() > deadline:
                agent.call("stop", str(pid), "--timeout", "10", timeout=60, check=False)
                outcome.update(status="failed", error=f"timed out after {step.timeout:g} s",
                               log_tail=_tail(runner, step), seconds=time.monotonic() - t0)
                return outcome
            time.sleep(1.0)
    except (ConnectError, ExecutionError):
        agent.call("stop", str(pid), "--timeout", "10", timeout=60, check=False)
        raise
    done = runner.run(step.check, timeout=120)
    if done.ok:
        outcome.update(status="changed", seconds=time.monotonic() - t0)
    else:
        outcome.update(status="failed", error="the step ran but its result is missing (see log)",
                       log_tail=_tail(runner, step), seconds=time.monotonic() - t0)
    return outcome


def build_progress(runner: Runner, log: str, elapsed: float) -> str:
    """What the build log says about how far it is: cmake's last percentage, else ninja's steps."""
    result = runner.run(f"tail -c 4096 {q(log)} 2>/dev/null", timeout=30)
    data = result.stdout.encode()
    percent = PERCENT.findall(data)
    if percent:
        done = f"{int(percent[-1])}%"
    else:
        steps = NINJA.findall(data)
        done = f"{int(steps[-1][0])}/{int(steps[-1][1])} steps" if steps else "running"
    return f"{done} ({elapsed:.0f} s)"


def _tail(runner: Runner, step: ProvisionStep, lines: int = 25) -> str:
    if not step.log:
        return ""
    result = runner.run(f"tail -n {lines} {q(step.log)} {q(step.log + '.outer')} 2>/dev/null", timeout=30)
    return result.stdout.rstrip()
