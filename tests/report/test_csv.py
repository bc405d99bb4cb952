"""CSV exports: golden files, and pandas reads them back without options to the same numbers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from llmops.report.csvout import LEVEL_COLUMNS, VARIANT_COLUMNS, levels_csv, requests_csv

from .conftest import RUNS, check_golden, edit_results


def results_of(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


@pytest.mark.parametrize("run", ["quickstart-cpu", "llama-only"])
def test_levels_csv_golden(run: str) -> None:
    check_golden(f"{run}.levels.csv", levels_csv(results_of(RUNS / run)))


def test_requests_csv_golden() -> None:
    check_golden("llama-only.requests.csv", requests_csv(RUNS / "llama-only"))


def test_levels_csv_loads_with_pandas_to_the_recorded_numbers() -> None:
    results = results_of(RUNS / "quickstart-cpu")
    frame = pd.read_csv(io.StringIO(levels_csv(results)))
    assert len(frame) == sum(len(c["levels"]) for c in results["cells"])  # one row per variant x level
    through_startup = VARIANT_COLUMNS.index("startup_ready_s") + 1  # the backends' phases follow it
    assert list(frame.columns[:through_startup]) == VARIANT_COLUMNS[:through_startup]
    for c in results["cells"]:
        rows = frame[frame["name"] == c["name"]].sort_values("concurrency")
        assert list(rows["concurrency"]) == [lv["concurrency"] for lv in c["levels"]]
        assert list(rows["gen_tps"]) == [lv["gen_tps"] for lv in c["levels"]]  # full precision kept
        assert list(rows["ttft_p99_s"]) == [lv["ttft_p99_s"] for lv in c["levels"]]
        assert set(rows["startup_ready_s"]) == {c["startup"]["ready_s"]}
        assert list(rows["ram_level_peak_bytes"]) == [p["peak_bytes"] for p in c["memory"]["per_level"]]
    # Numbers are numbers, not text.
    assert frame["gen_tps"].dtype.kind == "f" and frame["concurrency"].dtype.kind == "i"
    # Phases of both backends are columns; a backend without one has an empty cell there.
    assert frame.loc[frame["name"] == "vllm", "startup_kv_cache_ready_s"].notna().all()
    assert frame.loc[frame["name"] == "vllm", "startup_model_loaded_s"].isna().all()


def test_columns_are_stable_and_ordered() -> None:
    header = levels_csv(results_of(RUNS / "llama-only")).splitlines()[0].split(",")
    known = [c for c in header if c in LEVEL_COLUMNS]
    assert known == [c for c in LEVEL_COLUMNS if c in known]  # the fixed order, whatever the data
    assert header.index("gen_tps") < header.index("ttft_p50_s") < header.index("t_start")
    extras = header[header.index("t_end") + 1:]
    assert extras == sorted(extras)


def test_failed_variant_and_error_text_survive(tmp_path: Path, llama_only: Path) -> None:
    def change(results: dict) -> None:
        results["cells"][0].update(status="failed", error='did not start: "port, in use"\nsecond line', levels=[])
    edit_results(llama_only, change)
    frame = pd.read_csv(io.StringIO(levels_csv(results_of(llama_only))))
    failed = frame[frame["name"] == "llama.cpp-np1"]
    assert len(failed) == 1 and failed["status"].iloc[0] == "failed"
    assert failed["error"].iloc[0] == 'did not start: "port, in use"\nsecond line'
    assert failed["gen_tps"].isna().all()
    np4 = frame[(frame["name"] == "llama.cpp-np4") & (frame["concurrency"] == 2)]
    assert np4["errors"].iloc[0] == "1x client_error"


def test_requests_csv_loads_with_pandas() -> None:
    frame = pd.read_csv(io.StringIO(requests_csv(RUNS / "quickstart-cpu")))
    counted = sum(1 for p in (RUNS / "quickstart-cpu" / "cells").glob("*/*/requests.jsonl")
                  for line in p.read_text().splitlines() if line.strip())
    assert len(frame) == counted
    assert list(frame.columns[:4]) == ["host", "backend", "name", "variant"]
    assert set(frame["name"]) == {"llama.cpp-np1", "llama.cpp-np4", "vllm"}
    assert frame["ttft"].dtype.kind == "f" and (frame["ttft"] > 0).all()
    failed = pd.read_csv(io.StringIO(requests_csv(RUNS / "llama-only")))
    assert (~failed["ok"]).sum() == 1 and "Can not write request body" in failed.loc[~failed["ok"], "error"].iloc[0]


def test_requests_csv_skips_a_torn_last_line(llama_only: Path) -> None:
    path = llama_only / "cells" / "localhost" / "llama.cpp-np1" / "requests.jsonl"
    before = len(pd.read_csv(io.StringIO(requests_csv(llama_only))))
    path.write_text(path.read_text() + '{"level": 9, "concurr')
    assert len(pd.read_csv(io.StringIO(requests_csv(llama_only)))) == before
