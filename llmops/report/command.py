"""What `llmops report` and `llmops compare` do, as plain functions (the CLI only parses options).

Both read run directories only: no host is contacted. Problems with the input (not a run
directory, no results.json, a bad --fail-on) raise LlmopsError with a one-line message.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import LlmopsError
from llmops.record.rundir import write_text

if TYPE_CHECKING:
    from llmops.record.reader import Run

# The built-in formats (entry points in setup.cfg); `reporters()` lists all installed ones.
REPORT_FORMATS = ("md", "html", "json", "csv", "requests-csv")
COMPARE_FORMATS = ("md", "json")


def load_run(run_dir: Path) -> Run:
    """The run directory through the one typed reader (llmops.record.reader); imported here, not at
    the top, because `llmops check` imports this module and the model costs import time."""
    from llmops.record.reader import read_run

    return read_run(Path(run_dir))


def reporters() -> dict[str, Any]:
    """Every report format installed: the built-ins and third-party ones, all entry points."""
    from llmops.plugins.registry import registry

    return registry().reporters()


def render(run_dir: Path, fmt: str, ttft_threshold_s: float | None = None) -> str:
    """The report of one run directory as text, by the reporter plugin named `fmt`."""
    found = reporters()
    reporter = found.get(fmt)
    if reporter is None:
        raise LlmopsError(f"unknown report format {fmt!r} (one of: {', '.join(sorted(found))})")
    given = {"ttft_threshold_s": ttft_threshold_s}
    options = {k: v for k, v in given.items() if k in getattr(reporter, "options", ()) and v is not None}
    return reporter.render(Path(run_dir), **options)


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
    data = compare_results(load_run(run_a).results, load_run(run_b).results, fail_on,
                           DEFAULT_FLAG_PCT if flag_pct is None else flag_pct)
    _emit(compare_markdown(data) if fmt == "md" else compare_json(data), out)
    return 1 if data["failed"] else 0


DEFAULT_REPORTS = ("md", "html")


def report_file_name(fmt: str, suffix: str) -> str:
    """report.md, report.html, report.json, report.csv; report-NAME.EXT when the name is not the
    suffix (requests-csv, a plugin's format), so two formats never share a file."""
    return f"report{suffix}" if fmt == suffix.lstrip(".") else f"report-{fmt}{suffix}"


def write_all(run_dir: Path, ttft_threshold_s: float | None = None,
              formats: tuple[str, ...] = DEFAULT_REPORTS) -> list[Path]:
    """The reports `formats` names next to results.json (called at the end of every apply)."""
    run_dir = Path(run_dir)
    found = reporters()
    written = []
    for fmt in formats:
        reporter = found.get(fmt)
        if reporter is None:
            raise LlmopsError(f"unknown report format {fmt!r} (one of: {', '.join(sorted(found))})")
        path = run_dir / report_file_name(fmt, getattr(reporter, "suffix", f".{fmt}"))
        write_text(path, render(run_dir, fmt, ttft_threshold_s))
        written.append(path)
    return written


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(Path(out), text)
