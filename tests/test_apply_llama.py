"""`llmops apply` end to end with a real llama-server: on this machine, over a real sshd, and
with a variant that cannot start."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml_helpers
from conftest import free_port, llmops, processes_matching, read_results
from power_helpers import assert_constant_hwmon, assert_energy_as_this_host_can, fake_tree

PLAYBOOK = "tests/playbooks/llama.yml"


def assert_complete_run(run_dir: Path, host: str, port: int, stdout: str) -> None:
    results = read_results(run_dir)
    assert results["status"] == "complete"
    cells = results["cells"]
    assert [c["name"] for c in cells] == ["llama.cpp-np1", "llama.cpp-np4"]
    for cell, slots in zip(cells, (1, 4), strict=False):
        assert cell["host"] == host
        assert cell["backend"] == "llama.cpp"
        assert cell["status"] == "ok", cell.get("error")
        assert cell["error"] is None
        assert f"--parallel {slots}" in cell["command"] and f"--port {port}" in cell["command"]
        assert cell["startup"]["ready_s"] > 0
        mem = cell["memory"]
        assert mem["source"] in ("pss", "rss")
        assert mem["idle_bytes"] > 10 * 1024 * 1024  # the 34 MB model alone is more than that
        assert mem["peak_bytes"] >= mem["idle_bytes"]
        assert [lv["concurrency"] for lv in cell["levels"]] == [1, 4]
        for lv in cell["levels"]:
            assert lv["requests"] == lv["concurrency"] and lv["failed"] == 0 and lv["success_rate"] == 1.0
            assert lv["gen_tps"] > 0 and lv["prompt_tps"] > 0 and lv["total_s"] > 0
            assert 0 < lv["ttft_min_s"] <= lv["ttft_max_s"] < lv["total_s"]
            # ignore_eos is on: every request produced exactly max_tokens, as the server's usage says
            assert lv["completion_tokens"] == 64 * lv["concurrency"]
            assert lv["tokens_source"] == {"usage": lv["concurrency"]}
        cdir = run_dir / "cells" / host / cell["name"]
        for name in ("command.txt", "server.log", "memory.jsonl", "requests.jsonl", "cell.json"):
            assert (cdir / name).is_file(), name
        assert "llama-server" in (cdir / "command.txt").read_text()
        assert "listening" in (cdir / "server.log").read_text()
        records = [json.loads(line) for line in (cdir / "requests.jsonl").read_text().splitlines()]
        assert len(records) == 1 + 4
        assert all(r["ok"] and r["completion_tokens"] == 64 and r["status"] == 200 for r in records)
        assert cell["stop"]["stopped"] and not cell["stop"]["survivors"]
        assert_energy_as_this_host_can(cell)
    for name in ("playbook.yml", "plan.json", "report.md", "meta.json"):
        assert (run_dir / name).is_file(), name
    # the inventory as it was: the default one written out, or a copy of each -i source
    sources = json.loads((run_dir / "meta.json").read_text())["inventory_sources"]
    if sources:
        assert all((run_dir / s["copy"]).is_file() for s in sources), sources
    else:
        assert (run_dir / "inventory.yml").is_file()
    report = (run_dir / "report.md").read_text()
    header = "| Conc | Gen TPS | Prompt TPS | Min TTFT(s) | Max TTFT(s) | Success | Total(s) |"
    assert header in report and header in stdout
    assert "COMPARISON" in stdout and "PLAY RECAP" in stdout
    assert processes_matching(f"--port {port}") == []


def test_apply_local(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    proc = llmops("apply", PLAYBOOK, "--run-dir", str(run_dir), "-e", f"port={port}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_complete_run(run_dir, "localhost", port, proc.stdout)
    # data on stdout, progress on stderr
    assert "ok: [localhost] [llama.cpp-np1] stopped in" in proc.stderr
    assert "stopped in" not in proc.stdout and "PLAY RECAP" not in proc.stderr


def test_apply_local_energy_from_a_fake_sysfs_tree(provisioned: None, tmp_path: Path) -> None:
    """The real server and the real sampler, power read from a fake /sys (llmops_sysfs_root):
    15 W idle and under load, so every figure is known."""
    inventory = yaml_helpers.dump({"hosts": {"localhost": {"connection": "local", "vars": {
        "llmops_sysfs_root": str(fake_tree(tmp_path / "sys", rapl=False))}}}}, tmp_path / "inventory.yml")
    run_dir = tmp_path / "run"
    proc = llmops("apply", PLAYBOOK, "-i", str(inventory), "-t", "llama.cpp-np1", "--run-dir", str(run_dir),
                  "-e", f"port={free_port()}", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cell,) = read_results(run_dir)["cells"]
    assert_constant_hwmon(cell)
    assert "idle power: 5 s with the server unloaded" in proc.stderr
    assert "tok/J" in proc.stdout and "Energy: hwmon (sampled power: hwmon0 (amdgpu)); idle 15.0 W" in proc.stdout


def test_apply_over_ssh(provisioned: None, sshd, tmp_path: Path) -> None:
    port = free_port()
    inventory = tmp_path / "inventory.yml"
    yaml_helpers.dump({"hosts": {"sshhost": sshd.inventory_entry()}}, inventory)
    run_dir = tmp_path / "run"
    proc = llmops("apply", PLAYBOOK, "-i", str(inventory), "--run-dir", str(run_dir), "-e", f"port={port}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sshhost (ssh" in proc.stderr
    assert_complete_run(run_dir, "sshhost", port, proc.stdout)
    facts = json.loads((run_dir / "facts" / "sshhost.json").read_text())
    assert facts["kernel"]["release"] and facts["memory"]["total_bytes"] > 0


def test_unknown_host_key_is_refused(sshd, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    empty_known = tmp_path / "known_hosts"
    empty_known.write_text("")
    entry = sshd.inventory_entry(known_hosts=str(empty_known))
    yaml_helpers.dump({"hosts": {"sshhost": entry}}, inventory)
    proc = llmops("apply", PLAYBOOK, "-i", str(inventory), "--run-dir", str(tmp_path / "run"),
                  "-e", f"port={free_port()}", env={"HOME": str(tmp_path)})  # no ~/.ssh/known_hosts either
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "unknown host key" in proc.stderr
    results = read_results(tmp_path / "run")
    assert {c["status"] for c in results["cells"]} == {"failed"}


def test_variant_that_cannot_start(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    proc = llmops("apply", "tests/playbooks/llama-badflag.yml", "--run-dir", str(run_dir), "-e", f"port={port}")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    results = read_results(run_dir)
    by_name = {c["name"]: c for c in results["cells"]}
    assert by_name["llama.cpp-good1"]["status"] == "ok"
    assert by_name["llama.cpp-good2"]["status"] == "ok"
    broken = by_name["llama.cpp-broken"]
    assert broken["status"] == "failed"
    assert "exited before it was ready" in broken["error"]
    assert "--no-such-flag-for-llmops-tests" in broken["log_tail"]  # llama-server names the bad argument
    assert "no-such-flag" in proc.stderr  # the log tail is shown in the terminal too
    assert elapsed < 120
    assert processes_matching(f"--port {port}") == []


@pytest.mark.parametrize("cwd_name", ["elsewhere"])
def test_check_works_from_any_folder(tmp_path: Path, cwd_name: str) -> None:
    folder = tmp_path / cwd_name
    folder.mkdir()
    pb = Path(__file__).resolve().parent / "playbooks" / "llama.yml"
    proc = llmops("check", str(pb), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert "llama-server --model" in proc.stdout


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_apply_scrapes_llama_server_metrics(provisioned: None, tmp_path: Path, where: str,
                                            request: pytest.FixtureRequest) -> None:
    """`metrics: true` renders --metrics; every repetition of every level then carries the
    server's counter deltas, scraped through the same forwarded port as the load (over SSH, the
    tunnel), and they count exactly the tokens the client received."""
    port = free_port()
    run_dir = tmp_path / "run"
    args = ["apply", "tests/playbooks/llama-metrics.yml", "--run-dir", str(run_dir), "-e", f"port={port}"]
    if where == "ssh":
        sshd = request.getfixturevalue("sshd")
        inventory = tmp_path / "inventory.yml"
        yaml_helpers.dump({"hosts": {"sshhost": sshd.inventory_entry()}}, inventory)
        args += ["-i", str(inventory)]
    proc = llmops(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cell,) = read_results(run_dir)["cells"]
    assert cell["status"] == "ok" and "--metrics" in cell["command"]
    for level in cell["levels"]:
        assert len(level["repeats"]) == 2
        for rep in level["repeats"]:
            block = rep["server"]["metrics"]
            assert block["available"] and block["dialect"] == "llama.cpp", block
            assert block["generated_tokens"] == rep["completion_tokens"] == 24 * level["concurrency"] > 0, block
            assert block["tokens_match"] and block["client_tokens"] == rep["completion_tokens"]
            assert block["names"]["llamacpp:tokens_predicted_total"]["delta"] == rep["completion_tokens"]
            assert block["decode_steps"] == 23 * level["concurrency"] and block["server_decode_tps"] > 0
            # The server's two accounts of the same requests, on one definition (decode steps over
            # first-to-last token time): its counters and its per-response timings. With one
            # request they are the same figure (the counters print six significant digits).
            timings = rep["server"]["server_decode_tps_p50"]
            if level["concurrency"] == 1:
                assert block["server_decode_tps"] == pytest.approx(timings, rel=1e-3), (block, rep["server"])
            else:  # pooled over the requests vs their median
                assert 0.7 < block["server_decode_tps"] / timings < 1.4, (block, rep["server"])
            # Locally: correctness, not the 5 % bar (tests/bench/test_crosscheck_llama.py has that).
            # Over this test's sshd the tunnel hands a c=1 response over in one read, so the
            # client's decode speed there is no measure of the server's (the level is flagged).
            if where == "local":
                assert 0.5 < block["client_decode_tps"] / block["server_decode_tps"] < 2.0, block
    report = (run_dir / "report.md").read_text()
    assert "Decode tok/s client" in report and f"{24 * 2}/{24 * 2}" in report
