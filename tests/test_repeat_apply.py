"""`llmops apply` with repetitions, for real (llama-server, tiny model): every repetition kept,
medians on top, intervals, the host's noise and the server's own timings per level, and a
report that says what its verdicts rest on."""

from __future__ import annotations

from pathlib import Path

from conftest import free_port, llmops, read_results


def test_apply_with_three_repetitions(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    proc = llmops("apply", "tests/playbooks/llama.yml", "--run-dir", str(run_dir), "-e", f"port={port}",
                  "-e", "repeat=3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = read_results(run_dir)
    for cell in results["cells"]:
        assert cell["status"] == "ok", cell.get("error")
        for lv in cell["levels"]:
            assert [r["repeat"] for r in lv["repeats"]] == [0, 1, 2]
            assert lv["requests"] == 3 * lv["concurrency"] and lv["failed"] == 0
            gen = lv["stats"]["gen_tps"]
            assert gen["n"] == 3 and gen["lo"] <= gen["hi"] and lv["gen_tps"] == gen["median"]
            assert sorted(r["gen_tps"] for r in lv["repeats"])[1] == gen["median"]
            noise = lv["host_noise"]  # measured by the agent on the host, per repetition
            assert noise["seconds"] > 0 and noise["other_cores"] >= 0 and noise["server_cores"] > 0
            assert all("host_noise" in r for r in lv["repeats"])
            assert lv["server"]["source"] == "timings" and lv["server"]["requests"] == lv["concurrency"]
            assert isinstance(lv["flags"], list)
        assert cell["prompt_calibration"]["warmup_request"]["ok"]
    report = (run_dir / "report.md").read_text()
    assert "| Runs |" in report and "Gen TPS 95% interval" in report
    assert "median of 3 runs each" in report
    assert "median of 3" in proc.stderr  # the level line, progress
    # the report and compare read it back
    again = llmops("report", str(run_dir))
    assert again.returncode == 0, again.stderr
    cmp = llmops("compare", str(run_dir), str(run_dir), "--fail-on", "gen_tps=5%")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
