"""What `llmops report` and `llmops compare` do, as plain functions (the CLI only parses options).

Both read run directories only: no host is contacted. Problems with the input (not a run
directory, no results.json, a bad --fail-on) raise LlmopsError with a one-line message.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.record.rundir import write_text

REPORT_FORMATS = ("md", "html", "json", "csv", "requests-csv")
COMPARE_FORMATS = ("md", "json")


def load_results(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LlmopsError(f"{run_dir}: not a run directory (no such folder)")
    path = run_dir / "results.json"
    if not path.is_file():
        raise LlmopsError(f"{run_dir}: not a run directory (no results.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LlmopsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise LlmopsError(f"{path}: not an llmops results file (no \"cells\" list)")
    return data


def render(run_dir: Path, fmt: str, ttft_threshold_s: float | None = None) -> str:
    """The report of one run directory as text, in one of REPORT_FORMATS."""
    results = load_results(run_dir)
    if fmt == "md":
        from llmops.report.tables import report_markdown

        return report_markdown(results)
    if fmt == "html":
        if importlib.util.find_spec("matplotlib") is None:  # the plots need it: say so plainly
            raise LlmopsError("the HTML report needs matplotlib: pip install 'matplotlib>=3.7'")
        from llmops.report.html import DEFAULT_TTFT_THRESHOLD_S, render_html

        return render_html(Path(run_dir), DEFAULT_TTFT_THRESHOLD_S if ttft_threshold_s is None else ttft_threshold_s)
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    if fmt == "csv":
        from llmops.report.csvout import levels_csv

        return levels_csv(results)
    if fmt == "requests-csv":
        from llmops.report.csvout import requests_csv

        return requests_csv(Path(run_dir))
    raise LlmopsError(f"unknown report format {fmt!r} (one of: {', '.join(REPORT_FORMATS)})")


def report(run_dir: Path, fmt: str = "md", out: Path | None = None, ttft_threshold_s: float | None = None) -> int:
    """`llmops report RUN_DIR [--format md|html|json|csv|requests-csv] [-o FILE] [--ttft-threshold S]`."""
    text = render(run_dir, fmt, ttft_threshold_s)
    _emit(text, out)
    return 0


def compare(run_a: Path, run_b: Path, fail_on: str | None = None, fmt: str = "md", out: Path | None = None,
            flag_pct: float | None = None) -> int:
    """`llmops compare RUN_A RUN_B [--fail-on SPEC] [--format md|json] [-o FILE] [--flag PCT]`.

    Returns 1 when a regression beyond --fail-on was found, else 0.
    """
    from llmops.report.compare import DEFAULT_FLAG_PCT, compare_json, compare_markdown, compare_results

    if fmt not in COMPARE_FORMATS:
        raise LlmopsError(f"unknown compare format {fmt!r} (one of: {', '.join(COMPARE_FORMATS)})")
    data = compare_results(load_results(run_a), load_results(run_b), fail_on,
                           DEFAULT_FLAG_PCT if flag_pct is None else flag_pct)
    _emit(compare_markdown(data) if fmt == "md" else compare_json(data), out)
    return 1 if data["failed"] else 0


def write_all(run_dir: Path, ttft_threshold_s: float | None = None) -> list[Path]:
    """report.md and report.html next to results.json (called at the end of every apply)."""
    run_dir = Path(run_dir)
    written = []
    for name, fmt in (("report.md", "md"), ("report.html", "html")):
        path = run_dir / name
        write_text(path, render(run_dir, fmt, ttft_threshold_s))
        written.append(path)
    return written


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(Path(out), text)
