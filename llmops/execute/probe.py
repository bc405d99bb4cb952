"""`llmops check --probe`: ask each host's real server binary which flags it knows.

A rendered command can look right and still be refused at start: llama.cpp renames flags
between builds (the pinned build rejects --no-mmap and --mlock, which became --load-mode).
The probe runs the binary's own `--help` on the host and names every flag of the rendered
command that the help text does not mention, at the playbook line the flag came from.
Nothing is started, built or downloaded; a binary that is not there yet is said so.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmops.errors import Problem
from llmops.execute.runner import CommandResult, connect
from llmops.plan.model import Cell

# A flag as help texts print them: `-hf`, `--load-mode`, `--no-mmproj`, `--help=all` (without =...).
FLAG_IN_HELP = re.compile(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9_.+-]*)")
HELP_TIMEOUT = 120.0  # vLLM imports torch before printing its help: seconds on a loaded machine


@dataclass
class ProbeResult:
    cell: Cell
    unknown: list[Problem]
    note: str | None = None  # why the cell was not probed, when it was not


def known_flags(help_text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in FLAG_IN_HELP.finditer(help_text)}


def command_flags(command: str) -> list[str]:
    """The flags of a rendered command, in order, without their `=value` part.

    Words after the program are looked at; a lone `-` or a negative number is a value, not a flag.
    """
    words = shlex.split(command)
    flags = []
    for word in words[1:]:
        if re.fullmatch(r"--?[A-Za-z][A-Za-z0-9_.+-]*(=.*)?", word, flags=re.S):
            flags.append(word.split("=", 1)[0])
    return flags


def flag_source(cell: Cell, flag: str) -> str:
    """FILE:LINE:COL of the playbook text that produced `flag`: an extra_args item, an option, or the entry."""
    for i, arg in enumerate(cell.spec.extra_args):
        if arg.split("=", 1)[0] == flag and f"extra_args:{i}" in cell.sources:
            return cell.sources[f"extra_args:{i}"]
    if f"flag:{flag}" in cell.sources:
        return cell.sources[f"flag:{flag}"]
    bare = flag.lstrip("-").replace("-", "_")
    for key, where in cell.sources.items():
        if key.startswith("option:"):
            name = key.removeprefix("option:")
            if bare in (name, f"no_{name}") or name.startswith(bare) or bare.startswith(name):
                return where
    return cell.sources.get("") or cell.origin


def check_cell(cell: Cell, help_text: str) -> list[Problem]:
    known = known_flags(help_text)
    problems = []
    for flag in dict.fromkeys(command_flags(cell.display_command)):
        if flag not in known:
            file, line, col = _split(flag_source(cell, flag))
            problems.append(Problem(file, line, col,
                                    f"{cell.id}: {flag} is not a flag of this host's {cell.kind} "
                                    f"(its --help does not list it)",
                                    "a flag the built binary knows; see its --help"))
    return problems


# `llama-server --list-devices`: "Available devices:" then one "  ROCm0: <description>" per device.
LISTED_DEVICE = re.compile(r"^\s+([A-Za-z][A-Za-z0-9_]*):\s", re.M)


def listed_devices(text: str) -> list[str]:
    return LISTED_DEVICE.findall(text.split("Available devices:", 1)[-1])


def check_devices(cell: Cell, res: CommandResult) -> list[Problem]:
    """Each device name the cell asks for must be one the host's binary lists (it exits at start otherwise)."""
    assert cell.devices_probe is not None
    command, wanted = cell.devices_probe
    text = res.stdout + res.stderr
    if "Available devices:" not in text:
        file, line, col = _split(cell.sources.get("option:devices") or cell.origin + ":1")
        return [Problem(file, line, col, f"{cell.id}: `{command}` did not list devices (exit {res.exit_code}): "
                        f"{res.brief(200).strip()}", "a binary that prints its devices")]
    have = listed_devices(text)
    problems = []
    for name in wanted:
        if name not in have:
            file, line, col = _split(cell.sources.get("option:devices") or cell.origin + ":1")
            problems.append(Problem(file, line, col, f"{cell.id}: --device {name} names no device of this host "
                                    f"(its --list-devices shows: {', '.join(have) or 'none'})",
                                    "a name `llama-server --list-devices` prints on the host, or devices: none"))
    return problems


def _split(where: str) -> tuple[str, int, int]:
    file, line, col = where.rsplit(":", 2)
    return file, int(line), int(col)


def probe(cells: Iterable[Cell], run: Callable[[Cell, str], CommandResult] | None = None) -> list[ProbeResult]:
    """Probe every cell; `run(cell, command)` runs a command on the cell's host (default: connect)."""
    runners: dict[str, object] = {}

    def default_run(cell: Cell, command: str) -> CommandResult:
        runner = runners.get(cell.host.name)
        if runner is None:
            runner = runners[cell.host.name] = connect(cell.host)
        return runner.run(command, timeout=HELP_TIMEOUT)  # type: ignore[attr-defined]

    run = run or default_run
    results = []
    try:
        for cell in cells:
            if not cell.help_command:
                results.append(ProbeResult(cell, [], f"{cell.kind} has no probe for this launcher"))
                continue
            res = run(cell, cell.help_command)
            text = res.stdout + res.stderr
            flags = known_flags(text)
            # A missing binary (not built yet) prints "not found" and no flags; say so, don't guess.
            if not res.ok and len(flags) < 5:
                results.append(ProbeResult(cell, [], f"not probed: `{cell.help_command}` failed "
                                           f"(exit {res.exit_code}): {res.brief(200).strip()}"))
                continue
            unknown = check_cell(cell, text)
            if cell.devices_probe:
                unknown += check_devices(cell, run(cell, cell.devices_probe[0]))
            results.append(ProbeResult(cell, unknown))
    finally:
        for runner in runners.values():
            runner.close()  # type: ignore[attr-defined]
    return results
