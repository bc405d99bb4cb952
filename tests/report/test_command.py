"""The functions behind `llmops report` and `llmops compare`: formats, files, and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from llmops.errors import LlmopsError
from llmops.report import command

from .conftest import RUNS, check_golden


def test_markdown_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.report(RUNS / "quickstart-cpu", "md") == 0
    check_golden("quickstart-cpu.md", capsys.readouterr().out)


def test_json_is_results_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.report(RUNS / "llama-only", "json") == 0
    assert json.loads(capsys.readouterr().out) == json.loads((RUNS / "llama-only" / "results.json").read_text())


def test_csv_formats(capsys: pytest.CaptureFixture[str]) -> None:
    command.report(RUNS / "llama-only", "csv")
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == 8
    command.report(RUNS / "llama-only", "requests-csv")
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == 30


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "levels.csv"
    assert command.report(RUNS / "llama-only", "csv", out) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text().startswith("host,backend,name,variant,status,error,startup_ready_s,")


def test_write_all(llama_only: Path) -> None:
    (llama_only / "report.md").unlink()
    written = command.write_all(llama_only)
    assert written == [llama_only / "report.md", llama_only / "report.html"]
    assert (llama_only / "report.md").read_text().startswith("# llmops run run1")
    assert '<section id="summary">' in (llama_only / "report.html").read_text()


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing", "not a run directory (no such folder)"),
    (lambda d: d, "not a run directory (no results.json)"),
    (lambda d: (d / "results.json").write_text("{not json") and d, "invalid JSON"),
    (lambda d: (d / "results.json").write_text("[]") and d, "holds a list, not an object"),
])
def test_bad_run_dir_is_one_line(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    run = make(tmp_path)
    for call in (lambda: command.report(run, "md"), lambda: command.compare(run, run)):
        with pytest.raises(LlmopsError) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_format() -> None:
    with pytest.raises(LlmopsError, match="unknown report format 'pdf'"):
        command.report(RUNS / "llama-only", "pdf")
    with pytest.raises(LlmopsError, match="unknown compare format 'csv'"):
        command.compare(RUNS / "llama-only", RUNS / "llama-only", fmt="csv")


@pytest.mark.parametrize("run", ["llama-only", "quickstart-gpu"])
def test_summary_markdown_golden(run: str, tmp_path: Path) -> None:
    """The one-screen summary for report.md (tables.report_markdown can include it)."""
    from llmops.report.html import summary_markdown

    from .conftest import add_gpu, copy_run

    path = RUNS / run
    if run == "quickstart-gpu":
        path = copy_run(tmp_path, "quickstart-cpu", run)
        add_gpu(path)
    check_golden(f"{run}.summary.md", summary_markdown(json.loads((path / "results.json").read_text())))
