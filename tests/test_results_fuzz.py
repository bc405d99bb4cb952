"""Hand-edited results.json, anywhere deep: a recorded run with one value replaced by a value of
another type either loads and every report renders, or is refused as a located ConfigError.
Never another exception (the one-line internal TypeError this model exists to prevent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.errors import ConfigError
from llmops.record.reader import read_run
from llmops.report.compare import compare_json, compare_markdown, compare_results
from llmops.report.csvout import levels_csv, requests_csv
from llmops.report.tables import report_markdown

RUN = Path(__file__).resolve().parent / "data" / "runs" / "quickstart-cpu"
DOC = json.loads((RUN / "results.json").read_text())


def _paths(value: Any, at: tuple = ()) -> list[tuple]:
    out = [at] if at else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, at + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:2]):  # two of each list: the shapes repeat
            out += _paths(v, at + (i,))
    return out


PATHS = _paths(DOC)
WRONG = [None, True, "fast", 0, -1.5, 10**20, [], [5], {}, {"x": 1}, ["a"]]


def _replaced(path: tuple, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(DOC))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=st.sampled_from(WRONG))
def test_one_wrong_value_anywhere_is_loaded_or_located(tmp_path_factory, path: tuple, value: Any) -> None:
    run = tmp_path_factory.mktemp("run")
    shutil.copytree(RUN / "cells", run / "cells")
    text = json.dumps(_replaced(path, value), indent=2)
    (run / "results.json").write_text(text)
    try:
        loaded = read_run(run)
    except ConfigError as exc:
        problem = exc.problems[0]
        assert problem.file.endswith("results.json") and 1 <= problem.line <= text.count("\n") + 1
        return
    # Loaded: every report built from it renders.
    report_markdown(loaded.results)
    levels_csv(loaded.results)
    requests_csv(loaded)
    data = compare_results(loaded.results, read_run(RUN).results, fail_on="all=5%")
    compare_markdown(data)
    compare_json(data)
