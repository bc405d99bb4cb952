"""The one reader of a run directory: `read_run(run_dir) -> Run`, typed, or a located refusal.

Every reporter and `compare` read results through here, so a results.json that is not what
llmops writes (a hand edit, a truncated copy, a newer llmops) is refused once, at the value that
is wrong, as `results.json:LINE:COL: cells[0].levels[1].gen_tps: expected a number (got "fast")`
with exit code 2, instead of failing somewhere inside a reporter.

Positions are looked up only when something is wrong (llmops.record.jsonpos), so a good run
costs one json.loads and one model validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmops.errors import ConfigError, LlmopsError, Problem
from llmops.record.contract import RESULTS_VERSION, safe_name
from llmops.record.jsonfile import checked_object, load_json
from llmops.record.jsonpos import dotted, locate
from llmops.record.model import CellResult, Results


@dataclass
class Run:
    """A run directory as reporters see it."""

    path: Path
    results: Results
    raw: dict[str, Any]  # results.json exactly as written (the json format prints it as it is)

    @property
    def cells(self) -> list[CellResult]:
        return self.results.cells

    def cell_dir(self, cell: CellResult) -> Path:
        return self.path / "cells" / safe_name(cell.host) / safe_name(cell.name)


@dataclass
class ResultsFile:
    results: Results
    raw: dict[str, Any]


def read_run(run_dir: Path) -> Run:
    """The run directory's results, typed; LlmopsError for a folder that is not a run directory,
    ConfigError (located) for a results.json that is not what llmops writes."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LlmopsError(f"{run_dir}: not a run directory (no such folder)")
    path = run_dir / "results.json"
    if not path.is_file():
        raise LlmopsError(f"{run_dir}: not a run directory (no results.json)")
    found = read_results_file(path)
    return Run(run_dir, found.results, found.raw)


def read_results_file(path: Path, newest_version: int = RESULTS_VERSION) -> ResultsFile:
    text, data = load_json(path)
    data = checked_object(path, text, data, required=("cells",), newest_version=newest_version)
    try:
        results = Results.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(located(str(path), text, exc)) from None
    return ResultsFile(results, data)


# Pydantic's error types, said as what was expected.
EXPECTED = {
    "number": "a number", "finite_number": "a finite number", "string_type": "a string",
    "int_type": "an integer", "bool_type": "true or false", "dict_type": "an object", "model_type": "an object",
    "model_attributes_type": "an object", "list_type": "a list",
}
PART_NAMES = {"cells": "cell", "levels": "level", "repeats": "repetition"}


def located(name: str, text: str, exc: ValidationError) -> Problem:
    """The first validation error as FILE:LINE:COL: PATH: what is wrong (what was given)."""
    error = exc.errors(include_url=False)[0]
    path = tuple(step for step in error["loc"] if isinstance(step, (int, str)))
    if error["type"] == "missing":
        parent = path[:-1]
        line, col = locate(text, parent)
        kind = next((PART_NAMES[s] for s in reversed(parent) if isinstance(s, str) and s in PART_NAMES), None)
        return Problem(name, line, col, f"{dotted(parent)}: missing key {path[-1]!r}",
                       f"every {kind} written by llmops has it" if kind else "written by llmops")
    line, col = locate(text, path)
    what = EXPECTED.get(error["type"])
    message = f"expected {what}" if what else error["msg"]
    return Problem(name, line, col, f"{dotted(path)}: {message}", f"got {_shown(error.get('input'))}")


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
