"""Gather a host's facts: the agent's view of the machine plus GPU tools and backend versions.

Every tool runs through the agent with a timeout (amd-smi can hang on some APUs), and a tool
that fails or is missing only leaves its part of the facts empty.
"""

from __future__ import annotations

import json
from typing import Any

from llmops.execute.agent import Agent
from llmops.plan.model import Cell
from llmops.shell import shell_word
from llmops.telemetry import facts as facts_mod
from llmops.telemetry import provenance as provenance_mod

WHICH = "which:"  # key prefix of the program look-ups in the one "tools" round trip


def gather(agent: Agent, tool_timeout: float = 15.0, programs: list[str] | None = None) -> dict[str, Any]:
    """`programs`: more programs to look up (default: what the installed collectors require), so
    that a third-party collector's tool shows in facts["tools"] and the collector gets chosen."""
    base = agent.call("facts", "--tool-timeout", str(tool_timeout), timeout=120)
    wanted = [{"key": key, "command": command, "requires": tool, "timeout": tool_timeout}
              for key, (tool, command) in facts_mod.TOOL_COMMANDS.items()]
    if programs is None:
        from llmops.plugins.registry import registry
        from llmops.telemetry.select import required_programs

        programs = required_programs(registry().collectors())
    known = base.get("tools") or {}
    lookups = [p for p in programs if p not in known]
    wanted += [{"key": WHICH + p, "command": "command -v " + shell_word(p, reveal=True), "requires": p, "timeout": tool_timeout}
               for p in lookups]
    # One round trip for all of them: over SSH every command costs a shell start on the host.
    raw = agent.call("tools", stdin=json.dumps(wanted), timeout=tool_timeout * len(wanted) + 60)
    if lookups:
        found = {p: ((raw.pop(WHICH + p, None) or {}).get("out") or "").strip() or None for p in lookups}
        base = {**base, "tools": {**known, **found}}
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


def provenance(agent: Agent, cells: list[Cell], facts: dict[str, Any],
               tool_timeout: float = 60.0) -> dict[str, tuple[dict[str, Any], str | None]]:
    """Per cell id: (its `provenance` for results.json, its `pip freeze` text or None).

    Run after provisioning (the build and venv exist by then), in one round trip per host;
    cells sharing a binary share the commands' answers.
    """
    commands = list(dict.fromkeys(cmd for c in cells for cmd in (c.provenance.get("commands") or {}).values()))
    answers: dict[str, dict[str, Any]] = {}
    if commands:
        wanted = [{"key": str(i), "command": cmd, "timeout": tool_timeout} for i, cmd in enumerate(commands)]
        raw = agent.call("tools", stdin=json.dumps(wanted), timeout=tool_timeout * len(wanted) + 60)
        answers = {cmd: raw.get(str(i)) or {} for i, cmd in enumerate(commands)}
    out: dict[str, tuple[dict[str, Any], str | None]] = {}
    for cell in cells:
        outputs = {key: answers.get(cmd, {}) for key, cmd in (cell.provenance.get("commands") or {}).items()}
        record = provenance_mod.cell_provenance(cell.kind, dict(cell.provenance.get("static") or {}), outputs, facts)
        freeze = outputs.get("pip_freeze") or {}
        text = freeze.get("out") if freeze.get("rc") == 0 else None
        if text:
            record["pip_freeze_file"] = "pip-freeze.txt"
        out[cell.id] = (record, text)
    return out
