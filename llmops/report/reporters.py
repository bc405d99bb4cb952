"""The built-in report formats, as reporter plugins like any third-party one.

Each is registered in setup.cfg under the `llmops.reporters` entry-point group, and
`llmops report --format NAME` finds them through the plugin registry only: a third-party
format installed with pip takes exactly the same path (see docs/plugins.md).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from llmops.errors import LlmopsError
from llmops.plugins.api import Reporter
from llmops.report.command import load_run


class MarkdownReporter(Reporter):
    name = "md"
    description = "Markdown tables: per-level results, memory and a comparison"
    suffix = ".md"

    def render(self, run_dir: Path) -> str:
        from llmops.report.quality import quality_markdown
        from llmops.report.tables import report_markdown

        results = load_run(run_dir).results
        return report_markdown(results) + quality_markdown(run_dir, results)


class HtmlReporter(Reporter):
    name = "html"
    description = "One self-contained HTML file with plots"
    suffix = ".html"
    options = ("ttft_threshold_s",)

    def render(self, run_dir: Path, ttft_threshold_s: float | None = None) -> str:
        load_run(run_dir)  # the same plain error as the other formats for a folder that is not a run
        if importlib.util.find_spec("matplotlib") is None:  # the plots need it: say so plainly
            raise LlmopsError("the HTML report needs matplotlib: pip install 'matplotlib>=3.7'")
        from llmops.report.html import DEFAULT_TTFT_THRESHOLD_S, render_html

        return render_html(Path(run_dir), DEFAULT_TTFT_THRESHOLD_S if ttft_threshold_s is None else ttft_threshold_s)


class JsonReporter(Reporter):
    name = "json"
    description = "results.json as it is (indented)"
    suffix = ".json"

    def render(self, run_dir: Path) -> str:
        from llmops.report.quality import quality_result

        run = load_run(run_dir)
        quality = quality_result(run_dir, run.results)  # computed from the kept completions; absent without any
        return json.dumps({**run.raw, "quality": quality} if quality else run.raw, indent=2) + "\n"


class LevelsCsvReporter(Reporter):
    name = "csv"
    description = "One CSV row per variant and concurrency level"
    suffix = ".csv"

    def render(self, run_dir: Path) -> str:
        from llmops.report.csvout import levels_csv

        return levels_csv(load_run(run_dir).results)


class RequestsCsvReporter(Reporter):
    name = "requests-csv"
    description = "One CSV row per request of every level"
    suffix = ".csv"

    def render(self, run_dir: Path) -> str:
        from llmops.report.csvout import requests_csv

        return requests_csv(load_run(run_dir))
