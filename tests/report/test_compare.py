"""`llmops compare` on two recorded run directories: the second a copy edited to regress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import LlmopsError
from llmops.report import command
from llmops.report.compare import BY_KEY, compare_results, parse_fail_on, worse_pct

from .conftest import MIB, cell, check_golden, copy_run, edit_results, level


def regress(results: dict[str, Any]) -> None:
    """The changes a bad upgrade might bring, one per kind of metric."""
    np4 = cell(results, "llama.cpp-np4")
    level(np4, 8)["gen_tps"] *= 0.80  # Gen TPS -20 %
    vllm = cell(results, "vllm")
    level(vllm, 16)["ttft_p99_s"] *= 1.5  # TTFT p99 +50 %
    vllm["memory"]["peak_bytes"] += 512 * MIB  # RAM peak +18 %
    cell(results, "llama.cpp-np1")["startup"]["ready_s"] *= 2  # startup +100 %
    level(np4, 1)["gen_tps"] *= 1.03  # within the noise: not flagged


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    before = copy_run(tmp_path, "quickstart-cpu", "before")
    after = copy_run(tmp_path, "quickstart-cpu", "after")
    edit_results(after, lambda r: r.update(run_id="after"))
    edit_results(after, regress)
    edit_results(before, lambda r: r.update(run_id="before"))
    return before, after


def test_same_run_has_no_regressions(quickstart: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.compare(quickstart, quickstart, fail_on="all=0%") == 0
    out = capsys.readouterr().out
    assert "## No regressions" in out


def test_regressions_are_flagged_and_gate_the_exit_code(pair: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before, after = pair
    assert command.compare(before, after, fail_on="gen_tps=5%,ttft_p99=10%") == 1
    out = capsys.readouterr().out
    check_golden("compare-regression.md", out)
    # Beyond the flag threshold but not gated: shown, and the exit code stays 0.
    assert command.compare(before, after, fail_on="gen_tps=25%,ttft_p99=60%") == 0
    out = capsys.readouterr().out
    assert "regressions found" in out and "✖" not in out.split("## llama.cpp-np1")[0].split("|", 1)[1]
    # No gate at all: report only.
    assert command.compare(before, after) == 0
    capsys.readouterr()
    # Memory and startup gate too.
    assert command.compare(before, after, fail_on="memory=10%") == 1
    assert command.compare(before, after, fail_on="startup=50%") == 1
    assert command.compare(before, after, fail_on="startup=150%") == 0


def test_json_lists_each_regression(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before, after = pair
    assert command.compare(before, after, fail_on="gen_tps=5%", fmt="json") == 1
    data = json.loads(capsys.readouterr().out)
    found = {(r["variant"], r["level"], r["metric"]): r for r in data["regressions"]}
    assert set(found) == {("llama.cpp-np4@localhost", "8", "gen_tps"), ("vllm@localhost", "16", "ttft_p99"),
                          ("vllm@localhost", None, "ram_peak"), ("llama.cpp-np1@localhost", None, "startup")}
    assert found[("llama.cpp-np4@localhost", "8", "gen_tps")]["worse_pct"] == pytest.approx(20.0)
    assert found[("llama.cpp-np4@localhost", "8", "gen_tps")]["failed"] is True
    assert found[("vllm@localhost", "16", "ttft_p99")]["failed"] is False  # not in this --fail-on
    assert data["failed"] is True and data["fail_on"] == {"gen_tps": 5.0}


def test_a_variant_that_stopped_working_fails_the_gate(pair: tuple[Path, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    before, after = pair

    def break_vllm(results: dict[str, Any]) -> None:
        vllm = cell(results, "vllm")
        vllm.update(status="failed", error="not ready after 300 s", levels=[])
    edit_results(after, break_vllm)
    assert command.compare(before, after, fail_on="gen_tps=50%") == 1
    out = capsys.readouterr().out
    assert "Status: A ok, B failed (not ready after 300 s)" in out


def test_variants_match_on_host_and_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = copy_run(tmp_path, "quickstart-cpu")
    b = copy_run(tmp_path, "llama-only")
    data = compare_results(json.loads((a / "results.json").read_text()), json.loads((b / "results.json").read_text()))
    assert [v["name"] for v in data["variants"]] == ["llama.cpp-np1", "llama.cpp-np4"]
    assert data["only_in_a"] == ["vllm@localhost"] and data["only_in_b"] == []
    levels = [lv["level"] for lv in data["variants"][0]["levels"]]
    assert levels == ["1", "2", "4", "8", "16", "32"]  # 16 and 32 only in A: listed, not compared
    assert command.compare(a, b) == 0
    assert "16 (A only)" in capsys.readouterr().out


def test_direction_of_each_metric() -> None:
    assert worse_pct(BY_KEY["gen_tps"], 100.0, 90.0) == pytest.approx(10.0)
    assert worse_pct(BY_KEY["gen_tps"], 100.0, 110.0) == pytest.approx(-10.0)
    assert worse_pct(BY_KEY["ttft_p99"], 1.0, 1.2) == pytest.approx(20.0)
    assert worse_pct(BY_KEY["ram_peak"], 100, 90) == pytest.approx(-10.0)
    assert worse_pct(BY_KEY["startup"], None, 3.0) is None


@pytest.mark.parametrize("spec,expected", [
    ("gen_tps=5%,ttft_p99=10%", {"gen_tps": 5.0, "ttft_p99": 10.0}),
    ("ttft=2.5%", {"ttft_p50": 2.5, "ttft_p99": 2.5}),
    (" startup = 20% ", {"startup": 20.0}),
])
def test_fail_on_grammar(spec: str, expected: dict[str, float]) -> None:
    assert parse_fail_on(spec) == expected


@pytest.mark.parametrize("spec,message", [
    ("gen_tps=5", "is not METRIC=N%"),
    ("gen_tps", "is not METRIC=N%"),
    ("speed=5%", "unknown metric 'speed'"),
    ("gen_tps=five%", "not a percentage"),
    ("gen_tps=-1%", "0 or more"),
    (",", "empty"),
])
def test_bad_fail_on_is_one_line(quickstart: Path, spec: str, message: str) -> None:
    with pytest.raises(LlmopsError) as info:
        command.compare(quickstart, quickstart, fail_on=spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_energy_is_compared_where_both_runs_measured_it(pair: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Idle power per variant and tokens per joule per level; a host without a power source has
    neither, and then nothing about energy is shown or gated."""
    before, after = pair
    assert command.compare(before, after, fail_on="energy=10%", fmt="json") == 0  # no figures: nothing to fail
    assert "tok_per_joule" not in [r["metric"] for r in json.loads(capsys.readouterr().out)["regressions"]]

    def with_energy(idle_w: float, tok_per_j: float) -> Any:
        def edit(results: dict[str, Any]) -> None:
            np4 = cell(results, "llama.cpp-np4")
            np4["energy"] = {"source": "rapl", "kind": "package", "devices": ["package-0"], "idle_watts": idle_w}
            for lv in np4["levels"]:
                lv["energy"] = {"joules": 100.0, "mean_watts": 20.0, "idle_watts": idle_w,
                                "tokens_per_joule": tok_per_j if lv["concurrency"] == 8 else 1.0}
        return edit
    edit_results(before, with_energy(10.0, 2.0))
    edit_results(after, with_energy(12.0, 1.5))
    assert command.compare(before, after, fail_on="energy=10%", fmt="json") == 1
    data = json.loads(capsys.readouterr().out)
    found = {(r["variant"], r["level"], r["metric"]): r for r in data["regressions"]}
    assert found[("llama.cpp-np4@localhost", "8", "tok_per_joule")]["worse_pct"] == pytest.approx(25.0)
    assert found[("llama.cpp-np4@localhost", None, "idle_power")]["worse_pct"] == pytest.approx(20.0)
    assert not [k for k in found if k[2] == "tok_per_joule" and k[1] != "8"]  # the other levels held
    assert command.compare(before, after, fail_on="energy=30%") == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    assert ["Idle power", "10.00 W", "12.00 W", "+20.0 % ⚠"] in rows
    assert "Tokens per joule (tok/J)" in out and "2.000 → 1.500 -25.0 % ⚠" in out
