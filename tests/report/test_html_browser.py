"""report.html in a real headless Chromium: plots render, nothing is fetched, nothing complains.

Chromium is Debian's package (`apt-get install -y chromium`); the test installs it when it can
and skips, saying why, only when it cannot. Screenshots (light and dark) go to test-artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.report.command import write_all

from .chromium import APT_LINE, Browser, find_chromium, install_chromium
from .conftest import ARTIFACTS, add_gpu, copy_run

pytestmark = pytest.mark.timeout(300)

# Everything the page shows about its plots, measured by the browser after layout.
PLOTS_JS = """
[...document.querySelectorAll('figure svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const text = svg.querySelector('text');
  return {
    label: svg.getAttribute('aria-label'),
    width: box.width, height: box.height,
    axes: svg.querySelectorAll('g[id*="axes_"]').length,
    xaxis: svg.querySelectorAll('g[id*="matplotlib.axis_1"] text').length,
    yaxis: svg.querySelectorAll('g[id*="matplotlib.axis_2"] text').length,
    lines: [...svg.querySelectorAll('path')].filter(p => p.getTotalLength && p.getTotalLength() > 50).length,
    textFill: text ? getComputedStyle(text).fill : null,
  };
})
"""
SUMMARY_JS = """
(() => {
  const summary = document.querySelector('#summary');
  const table = summary.querySelector('table');
  return {bottom: summary.getBoundingClientRect().bottom, tableWidth: table.getBoundingClientRect().width,
          viewport: window.innerWidth, background: getComputedStyle(document.body).backgroundColor};
})()
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        why = install_chromium()
        executable = find_chromium()
        if executable is None:
            pytest.skip(f"chromium is not installed and could not be installed ({APT_LINE}): {why}")
    chrome = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pages")
    # quickstart-cpu with GPU figures added shows every part but the success plot; llama-only has that.
    runs = {"llama-only": copy_run(root, "llama-only"), "quickstart-gpu": copy_run(root, "quickstart-cpu", "gpu")}
    add_gpu(runs["quickstart-gpu"])
    for run in runs.values():
        write_all(run)
    return {name: run / "report.html" for name, run in runs.items()}


def luminance(css: str) -> float:
    r, g, b = (int(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("name,plots", [
    ("quickstart-gpu", 5),
    ("llama-only", 6),  # + success rate
])
def test_report_renders_offline_in_chromium(browser: Browser, pages: dict[str, Path], name: str, plots: int) -> None:
    page = browser.page(width=1280, height=1000)
    url = pages[name].resolve().as_uri()
    page.open(url)

    figures = page.evaluate(PLOTS_JS)
    assert len(figures) == plots, [f["label"] for f in figures]
    for f in figures:
        assert f["width"] > 300 and f["height"] > 150, f
        assert f["axes"] >= 1 and f["xaxis"] >= 2 and f["yaxis"] >= 2, f  # axes with tick labels
        assert f["lines"] >= 1, f  # something drawn in them
        assert luminance(f["textFill"]) < 0.35, f  # dark text on the light page

    summary = page.evaluate(SUMMARY_JS)
    assert summary["bottom"] <= 1000, "the summary no longer fits one screen (1280 x 1000)"
    assert summary["tableWidth"] <= summary["viewport"], "the summary table is wider than the screen"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(ARTIFACTS / f"report-{name}-light.png")

    page.prefer_dark(True)
    dark = page.evaluate(PLOTS_JS)
    assert all(luminance(f["textFill"]) > 0.65 for f in dark), "plot text must turn light in dark mode"
    assert luminance(page.evaluate(SUMMARY_JS)["background"]) < 0.2
    page.screenshot(ARTIFACTS / f"report-{name}-dark.png")

    assert page.console_problems() == []
    assert page.requests() == [url], "the page fetched something besides itself"


def test_the_harness_sees_a_request_and_an_error(browser: Browser, tmp_path: Path) -> None:
    """A control: a page that reaches out must be caught, or the checks above prove nothing."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png">'
                     "<script>console.error('boom')</script></body></html>")
    page = browser.page()
    page.open(leaky.as_uri())
    assert "http://192.0.2.1/x.png" in page.requests()
    assert any("boom" in p for p in page.console_problems())
    assert json.dumps(page.console_problems())  # plain data, printable in a failure message
