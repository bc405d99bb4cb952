"""The plan as text: what `llmops check` prints (and `apply --check`)."""

from __future__ import annotations

import shlex

from llmops.plan.model import Plan
from llmops.plan.planner import all_steps


def plan_text(plan: Plan) -> str:
    lines = [f"PLAYBOOK {plan.playbook_path}   INVENTORY {plan.inventory_source}"]
    if not plan.cells:
        lines.append("\nno hosts or backends selected: nothing would run")
        return "\n".join(lines)
    for host in plan.hosts:
        cells = [c for c in plan.cells if c.host is host]
        lines.append("")
        lines.append(f"HOST {host.describe()}")
        steps = all_steps(cells)
        if steps:
            lines.append("  provision (skipped where already done):")
            lines += [f"    - {s.name}" for s in steps]
        for cell in cells:
            lines.append(f"  [{cell.name}] {cell.spec.kind} on port {cell.spec.port}  ({cell.origin})")
            if cell.display_env:
                env = " ".join(f"{k}={shlex.quote(v) if v != '***' else v}" for k, v in sorted(cell.display_env.items()))
                lines.append(f"    env {env}")
            lines.append(f"    $ {cell.display_command}")
    lines.append("")
    n_hosts, n_cells = len(plan.hosts), len(plan.cells)
    lines.append(f"{n_cells} variant{'s' if n_cells != 1 else ''} on {n_hosts} host{'s' if n_hosts != 1 else ''}")
    return "\n".join(lines)
