"""`apply --diff`: what apply would change on each host, before anything happens."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from llmops.errors import ConnectError, ExecutionError
from llmops.execute.console import Console
from llmops.execute.server import Server, command_hash
from llmops.execute.session import HostSession
from llmops.plan.model import Plan


def diff(plan: Plan, console: Console, forks: int = 5) -> dict[str, list[dict[str, Any]]]:
    """What apply would change on each host: servers to start, to reuse (same command), to replace."""
    by_host = plan.by_host()
    out: dict[str, list[dict[str, Any]]] = {}

    def one(host) -> list[dict[str, Any]]:  # noqa: ANN001
        with HostSession(host, by_host[host.name][0].cache_dir) as session:
            changes = []
            for cell in by_host[host.name]:
                state = Server(cell, session.runner, session.agent, "").read_state()
                if state is None:
                    changes.append({"cell": cell.name, "action": "start", "command": cell.display_command})
                elif state.get("hash") == command_hash(cell):
                    changes.append({"cell": cell.name, "action": "reuse", "pid": state["pid"]})
                else:
                    changes.append({"cell": cell.name, "action": "replace", "pid": state["pid"],
                                    "old": state.get("command"), "command": cell.display_command})
            return changes

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(forks, len(plan.hosts) or 1))) as pool:
        futures = {pool.submit(one, h): h for h in plan.hosts}
        for fut in concurrent.futures.as_completed(futures):
            host = futures[fut]
            try:
                out[host.name] = fut.result()
            except (ConnectError, ExecutionError) as exc:
                out[host.name] = [{"action": "unreachable", "error": str(exc)}]
    for host in plan.hosts:
        console.line(f"--- {host.name}")
        for change in out[host.name]:
            if change["action"] == "unreachable":
                console.line(f"    unreachable: {change['error']}")
            elif change["action"] == "reuse":
                console.line(f"    = [{change['cell']}] already running with the same command (pid {change['pid']}): "
                             "left alone, measured as it is")
            elif change["action"] == "replace":
                console.line(f"    ~ [{change['cell']}] replaces pid {change['pid']}:")
                console.line(f"      - {change['old']}")
                console.line(f"      + {change['command']}")
            else:
                console.line(f"    + [{change['cell']}] start: {change['command']}")
    return out
