"""The energy figures in the detail table, report.md and the HTML report: J, W, W idle, J above
idle, tok/J per level, one line naming the source and the idle power subtracted, or the reason."""

from __future__ import annotations

from llmops.report.html import energy_section
from llmops.report.tables import detail_table, report_markdown
from llmops.telemetry.energy import NO_SOURCE


def level(conc: int, joules: float | None, tpj: float | None) -> dict:
    e = {"source": "rapl", "joules": joules, "mean_watts": 40.0, "idle_watts": 12.5,
         "joules_above_idle": None if joules is None else joules - 12.5 * 8, "tokens_per_joule": tpj,
         "seconds": 8.0, "samples": 9}
    return {"concurrency": conc, "succeeded": 4, "full_length": 4, "errors": [], "energy": e}


CELL = {"name": "llama", "host": "h", "backend": "llama.cpp", "status": "ok", "command": "llama-server",
        "levels": [level(1, 320.0, 2.0), level(4, 336.25, 7.5)],
        "energy": {"source": "rapl", "kind": "energy counter", "devices": ["intel-rapl:0 (package-0)"],
                   "idle_watts": 12.5, "idle_s": 5.0, "by_source": {"rapl": {}, "hwmon": {}}}}


def test_detail_table_has_energy_columns_and_says_what_was_subtracted() -> None:
    text = detail_table(CELL["levels"], CELL)
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[:4]]
    header, rows = lines[0], lines[2:]
    at = header.index("J")
    assert header[at:at + 6] == ["J", "W", "W idle", "J above idle", "tok/J", "Errors"]
    assert [r[at:at + 5] for r in rows] == [["320.0", "40.0", "12.5", "220.0", "2.000"],
                                            ["336.2", "40.0", "12.5", "236.2", "7.500"]]
    assert ("Energy: rapl (energy counter: intel-rapl:0 (package-0)); idle 12.5 W over 5.0 s before the first "
            "level, subtracted in 'J above idle'") in text
    assert "also seen: hwmon" in text


def test_no_energy_columns_without_figures_but_the_reason_is_given() -> None:
    cell = {**CELL, "energy": {"source": None, "reason": NO_SOURCE},
            "levels": [{"concurrency": 1, "energy": {"source": None, "reason": NO_SOURCE}}]}
    text = detail_table(cell["levels"], cell)
    assert "tok/J" not in text.splitlines()[0]
    assert f"Energy: none measured: {NO_SOURCE}." in text
    assert NO_SOURCE in energy_section(cell, cell["levels"])
    # an old run (before energy) shows nothing at all
    old = {**CELL, "levels": [{"concurrency": 1}]}
    old.pop("energy")
    assert "Energy" not in detail_table(old["levels"], old) and energy_section(old, old["levels"]) == ""


def test_markdown_and_html_reports_carry_the_table() -> None:
    md = report_markdown({"run_id": "r", "cells": [CELL]})
    assert "tok/J" in md and "Energy: rapl" in md
    html = energy_section(CELL, CELL["levels"])
    assert '<th scope="col">tok/J</th>' in html and "<caption>Energy: rapl" in html
    assert "<tr><td>4</td><td>336.2</td><td>40.0</td><td>12.5</td><td>236.2</td><td>7.500</td></tr>" in html
