"""Run provisioning steps on a host: check first (ok), apply only when needed (changed).

Applies can take long (a llama.cpp build: minutes; vLLM's venv: minutes), so they run
detached on the host through the agent, with their own log there, and are polled: an SSH
hiccup does not kill a half-done build, and Ctrl-C stops it cleanly. Success is decided by
running the step's check again, the same test that makes the step idempotent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from llmops.errors import ConnectError, ExecutionError
from llmops.execute.agent import Agent, q
from llmops.execute.runner import Runner
from llmops.plugins.api import ProvisionStep


def provision(runner: Runner, agent: Agent, step: ProvisionStep, cancel: threading.Event,
              on_start: Callable[[ProvisionStep], None] | None = None) -> dict[str, Any]:
    t0 = time.monotonic()
    outcome: dict[str, Any] = {"id": step.id, "name": step.name, "log": step.log}
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
    try:
        while True:
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


def _tail(runner: Runner, step: ProvisionStep, lines: int = 25) -> str:
    if not step.log:
        return ""
    result = runner.run(f"tail -n {lines} {q(step.log)} {q(step.log + '.outer')} 2>/dev/null", timeout=30)
    return result.stdout.rstrip()
