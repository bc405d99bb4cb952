"""Gather a host's facts: the agent's view of the machine plus GPU tools and backend versions.

Every tool runs through the agent with a timeout (amd-smi can hang on some APUs), and a tool
that fails or is missing only leaves its part of the facts empty.
"""

from __future__ import annotations

from typing import Any

from llmops.execute.agent import Agent
from llmops.plan.model import Cell
from llmops.telemetry import facts as facts_mod


def gather(agent: Agent, tool_timeout: float = 15.0) -> dict[str, Any]:
    base = agent.call("facts", "--tool-timeout", str(tool_timeout), timeout=120)
    tools = base.get("tools") or {}
    raw: dict[str, dict[str, Any]] = {}
    for key, (tool, command) in facts_mod.TOOL_COMMANDS.items():
        if tool is None or tools.get(tool):
            raw[key] = run_tool(agent, command, tool_timeout)
    out = facts_mod.summarize(base, raw)
    out["controller_clock_offset_s"] = agent.clock_offset
    return out


def backend_versions(agent: Agent, cells: list[Cell], tool_timeout: float = 30.0) -> dict[str, str]:
    """`llama-server --version`, vLLM's package version...: one line per distinct command."""
    versions: dict[str, str] = {}
    done: dict[str, str] = {}
    for cell in cells:
        command = cell.version_command
        if not command:
            continue
        if command not in done:
            result = run_tool(agent, command, tool_timeout)
            text = (result.get("out") or "").strip()
            done[command] = text.splitlines()[0] if result.get("rc") == 0 and text else \
                f"unknown ({'timed out' if result.get('timed_out') else 'exit ' + str(result.get('rc'))})"
        versions[cell.name] = done[command]
    return versions


def run_tool(agent: Agent, command: str, timeout: float) -> dict[str, Any]:
    return agent.call("tool", "--timeout", str(timeout), command, timeout=timeout + 60, check=False)
