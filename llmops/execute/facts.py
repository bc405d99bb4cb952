"""Gather a host's facts: the agent's view of the machine plus GPU tools and backend versions.

Every tool runs through the agent with a timeout (amd-smi can hang on some APUs), and a tool
that fails or is missing only leaves its part of the facts empty.
"""

from __future__ import annotations

import json
from typing import Any

from llmops.execute.agent import Agent
from llmops.plan.model import Cell
from llmops.telemetry import facts as facts_mod


def gather(agent: Agent, tool_timeout: float = 15.0) -> dict[str, Any]:
    base = agent.call("facts", "--tool-timeout", str(tool_timeout), timeout=120)
    wanted = [{"key": key, "command": command, "requires": tool, "timeout": tool_timeout}
              for key, (tool, command) in facts_mod.TOOL_COMMANDS.items()]
    # One round trip for all of them: over SSH every command costs a shell start on the host.
    raw = agent.call("tools", stdin=json.dumps(wanted), timeout=tool_timeout * len(wanted) + 60)
    out = facts_mod.summarize(base, raw)
    out["controller_clock_offset_s"] = agent.clock_offset
    return out


def backend_versions(agent: Agent, cells: list[Cell], tool_timeout: float = 30.0) -> dict[str, str]:
    """`llama-server --version`, vLLM's package version...: one line per distinct command."""
    commands = list(dict.fromkeys(c.version_command for c in cells if c.version_command))
    if not commands:
        return {}
    wanted = [{"key": str(i), "command": cmd, "timeout": tool_timeout} for i, cmd in enumerate(commands)]
    raw = agent.call("tools", stdin=json.dumps(wanted), timeout=tool_timeout * len(wanted) + 60)
    answers: dict[str, str] = {}
    for i, command in enumerate(commands):
        result = raw.get(str(i)) or {}
        text = (result.get("out") or "").strip()
        answers[command] = text.splitlines()[0] if result.get("rc") == 0 and text else \
            f"unknown ({'timed out' if result.get('timed_out') else 'exit ' + str(result.get('rc'))})"
    return {c.name: answers[c.version_command] for c in cells if c.version_command}


def run_tool(agent: Agent, command: str, timeout: float) -> dict[str, Any]:
    return agent.call("tool", "--timeout", str(timeout), command, timeout=timeout + 60, check=False)
