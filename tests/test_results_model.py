"""The typed results model, the JSON position index and the one run-directory reader (fast tier).

Deep wrong types as located refusals from the command line are in tests/bad_inputs/ (report:
and compare: cases); here the parts underneath, on recorded run directories and small documents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmops.errors import ConfigError, LlmopsError
from llmops.record.jsonpos import dotted, locate
from llmops.record.model import Results
from llmops.record.reader import read_run
from llmops.record.rundir import ResultsShapeError, RunDir

RUNS = Path(__file__).resolve().parent / "data" / "runs"


def write_run(tmp_path: Path, doc: object) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "results.json").write_text(json.dumps(doc, indent=2) if not isinstance(doc, str) else doc)
    return run


@pytest.mark.parametrize("name", sorted(p.name for p in RUNS.iterdir()))
def test_recorded_runs_load_typed_and_unchanged(name: str) -> None:
    run = read_run(RUNS / name)
    on_disk = json.loads((RUNS / name / "results.json").read_text())
    assert run.raw == on_disk
    assert len(run.cells) == len(on_disk["cells"]) > 0
    first = run.cells[0]
    assert first.host == on_disk["cells"][0]["host"]
    assert first.levels[0].gen_tps == on_disk["cells"][0]["levels"][0]["gen_tps"]
    # Numbers keep their JSON type: byte counts stay ints, so printed values do not change.
    assert type(first.memory.idle_bytes) is type(on_disk["cells"][0]["memory"]["idle_bytes"])


def test_an_old_minimal_run_loads_with_defaults(tmp_path: Path) -> None:
    """A version-1 writer from before most fields existed: only host and name per cell."""
    run = read_run(write_run(tmp_path, {"cells": [{"host": "h", "name": "n", "levels": [{"concurrency": 1}]},
                                                  {"host": "h", "name": "m", "startup": None, "memory": None,
                                                   "levels": None}]}))
    old, nulls = run.cells
    assert old.status is None and old.backend is None and old.startup.ready_s is None
    assert old.memory.gpu is None and old.gpu_process.idle.vram_bytes is None
    assert old.levels[0].succeeded == 0 and old.levels[0].errors == [] and old.levels[0].stats == {}
    assert old.levels[0].stat("gen_tps") is None
    assert nulls.levels == [] and nulls.startup.phases == {} and nulls.memory.per_level == []


def test_unknown_fields_survive(tmp_path: Path) -> None:
    doc = {"version": 1, "future_top": [1], "cells": [{"host": "h", "name": "n", "plugin_figure": {"x": 2},
                                                        "levels": [{"concurrency": 2, "new_metric_ms": 3.5}]}]}
    results = read_run(write_run(tmp_path, doc)).results
    assert results.future_top == [1]
    assert results.cells[0].plugin_figure == {"x": 2}
    assert results.cells[0].levels[0].new_metric_ms == 3.5
    assert results.raw() == doc


def test_stat_reads_an_interval_or_a_single_value() -> None:
    results = Results.model_validate({"cells": [{"host": "h", "name": "n", "levels": [
        {"concurrency": 1, "gen_tps": 10, "stats": {"gen_tps": {"median": 10.0, "lo": 9.0, "hi": 11.0, "n": 3}}},
        {"concurrency": 2, "gen_tps": 7}]}]})
    repeated, once = results.cells[0].levels
    assert repeated.stat("gen_tps") == {"median": 10.0, "lo": 9.0, "hi": 11.0, "n": 3}
    assert once.stat("gen_tps") == {"median": 7.0, "lo": 7.0, "hi": 7.0, "n": 1}


@pytest.mark.parametrize("level, where, message", [
    ({"gen_tps": True}, "gen_tps", "expected a number (got true)"),
    ({"gen_tps": "5"}, "gen_tps", 'expected a number (got "5")'),
    ({"concurrency": [1]}, "concurrency", "expected a number (got [1])"),
    ({"errors": [{"kind": "timeout", "count": "2"}]}, "errors[0].count", 'expected an integer (got "2")'),
    ({"flags": "busy"}, "flags", 'expected a list (got "busy")'),
    ({"repeats": [{"host_noise": 3}]}, "repeats[0].host_noise", "expected an object (got 3)"),
])
def test_deep_wrong_types_are_located(tmp_path: Path, level: dict, where: str, message: str) -> None:
    doc = {"version": 1, "cells": [{"host": "h", "name": "n", "levels": [{"concurrency": 1}, {"concurrency": 2, **level}]}]}
    run = write_run(tmp_path, doc)
    with pytest.raises(ConfigError) as caught:
        read_run(run)
    text = (run / "results.json").read_text()
    key = where.split(".")[0].split("[")[0]
    line, col = locate(text, ("cells", 0, "levels", 1, key))
    problem = caught.value.problems[0]
    assert str(problem).endswith(f"cells[0].levels[1].{where}: {message}")
    # The position is at (or inside) the wrong value, never the 1:1 fallback.
    assert (problem.line, problem.col) >= (line, col) > (1, 1)


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(LlmopsError, match="no such folder"):
        read_run(tmp_path / "absent")
    with pytest.raises(LlmopsError, match="no results.json"):
        read_run(tmp_path)


def test_positions_skip_strings_that_look_like_json() -> None:
    text = '{\n "a": "x}\\"],[{",\n "b": [ {"c": 1},\n  {"c": [true, "]", 2]} ],\n "d": {"e": null}\n}'
    assert json.loads(text)  # the index is for valid JSON only
    assert locate(text, ("b", 1, "c", 2)) == (4, 21)
    assert locate(text, ("d", "e")) == (5, 13)
    assert locate(text, ("b", 1)) == (4, 3)
    assert locate(text, ("b", 7)) == locate(text, ("b",))  # absent: the deepest ancestor that exists
    assert locate(text, ()) == (1, 1)
    assert dotted(("cells", 0, "levels", 1, "gen_tps")) == "cells[0].levels[1].gen_tps"


def test_the_writer_validates_before_writing(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path / "run")
    rundir._results["cells"].append({"host": "h", "name": "n", "levels": [{"concurrency": 1, "gen_tps": float("nan")}]})
    with pytest.raises(ResultsShapeError, match=r"cells\[0\]\.levels\[0\]\.gen_tps: expected a finite number"):
        rundir._flush()
    assert not (tmp_path / "run" / "results.json").exists()
    rundir._results["cells"][0]["levels"][0]["gen_tps"] = 12.5
    rundir._flush()
    assert read_run(tmp_path / "run").cells[0].levels[0].gen_tps == 12.5


def test_a_recorded_run_copies_and_reads_back(tmp_path: Path) -> None:
    """What RunDir writes is what read_run reads: the executor's documents pass the model."""
    target = tmp_path / "copy"
    shutil.copytree(RUNS / "quickstart-cpu", target)
    rundir = RunDir(target)
    rundir._results = read_run(target).raw
    rundir._flush()
    assert read_run(target).raw == json.loads((RUNS / "quickstart-cpu" / "results.json").read_text())


def test_every_format_renders_an_old_minimal_run(tmp_path: Path) -> None:
    """Before the model, md died with a KeyError on a cell without "backend" or "status"."""
    from llmops.report.command import render

    run = write_run(tmp_path, {"cells": [{"host": "h", "name": "n", "levels": [{"concurrency": 1}]},
                                         {"host": "h", "name": "m"}]})
    for fmt in ("md", "json", "csv", "requests-csv"):
        assert "n" in render(run, fmt)
    assert "## n on h (None)" in render(run, "md")


def test_an_updated_cell_is_validated_before_it_is_written(tmp_path: Path) -> None:
    from types import SimpleNamespace

    rundir = RunDir(tmp_path / "run")
    rundir._flush()
    cell = SimpleNamespace(host=SimpleNamespace(name="h"), name="n")
    good = {"host": "h", "name": "n", "status": "ok", "levels": [{"concurrency": 1, "gen_tps": 3.0}]}
    rundir.update_cell(cell, good)
    assert read_run(tmp_path / "run").cells[0].levels[0].gen_tps == 3.0
    with pytest.raises(ResultsShapeError, match=r"cells\[0\]\.levels\[0\]\.gen_tps: expected a number"):
        rundir.update_cell(cell, {**good, "levels": [{"concurrency": 1, "gen_tps": "3"}]})
    assert read_run(tmp_path / "run").cells[0].levels[0].gen_tps == 3.0  # the last good version stays
