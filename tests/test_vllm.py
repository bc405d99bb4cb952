"""vLLM for real (the CPU wheel): the quickstart end to end, a start that fails, Ctrl-C while starting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port, llmops, processes_matching, read_results


@pytest.fixture(scope="module")
def vllm_provisioned() -> None:
    llmops("provision", "playbooks/quickstart.yml", timeout=3600, check=True)


@pytest.fixture
def new_vllm_processes():
    """vLLM processes that appeared during the test (others on the machine are not ours)."""
    before = set(vllm_processes())
    return lambda: sorted(set(vllm_processes()) - before)


def vllm_processes() -> list[str]:
    """vLLM renames its children (VLLM::EngineCore, VLLM::Worker); look at comm, not only cmdline."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{name}/comm").read_text().strip()
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
        if comm.startswith("VLLM::") and state not in (b"Z", b"X"):
            found.append(f"{name} {comm}")
    return found + processes_matching("vllm.entrypoints.openai.api_server")


def test_quickstart_for_real(vllm_provisioned: None, tmp_path: Path, new_vllm_processes) -> None:
    run_dir = tmp_path / "run"
    proc = llmops("apply", "playbooks/quickstart.yml", "--run-dir", str(run_dir), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    cells = {c["name"]: c for c in read_results(run_dir)["cells"]}
    assert set(cells) == {"llama.cpp-np1", "llama.cpp-np4", "vllm"}
    assert {c["backend"] for c in cells.values()} == {"llama.cpp", "vllm"}
    for cell in cells.values():
        assert cell["status"] == "ok", cell["error"]
        assert [lv["concurrency"] for lv in cell["levels"]] == [1, 2, 4, 8, 16, 32]
        # repeat: auto (2 or 3 runs per level): the level's counts are the sum over its repetitions
        assert all(lv["success_rate"] == 1.0 and 2 <= len(lv["repeats"]) <= 3
                   and lv["completion_tokens"] == 512 * lv["concurrency"] * len(lv["repeats"])
                   for lv in cell["levels"])
        assert cell["startup"]["ready_s"] > 0
        assert cell["memory"]["idle_bytes"] > 0 and cell["memory"]["peak_bytes"] >= cell["memory"]["idle_bytes"]
        assert cell["stop"]["stopped"] and not cell["stop"]["survivors"]
    vllm = cells["vllm"]
    # The whole tree is measured: the API server plus the EngineCore/Worker processes it spawned.
    comms = {p["comm"] for p in vllm["memory"]["idle_processes"]}
    assert any(c.startswith("VLLM::") for c in comms), comms
    assert len(vllm["memory"]["idle_processes"]) >= 3
    assert vllm["memory"]["idle_bytes"] > 5 * cells["llama.cpp-np4"]["memory"]["idle_bytes"]
    assert "api_up_s" in vllm["startup"]["phases"] and "weights_loaded_s" in vllm["startup"]["phases"]
    assert "model_loaded_s" in cells["llama.cpp-np1"]["startup"]["phases"]
    assert "Per concurrency level" in proc.stdout and "Lowest Max TTFT" in proc.stdout
    report = (run_dir / "report.md").read_text()
    assert "Startup phases" in report
    assert new_vllm_processes() == []
    assert processes_matching("--port 18080") == [] and processes_matching("--port 18090") == []


def test_vllm_bad_argument_fails_fast(vllm_provisioned: None, tmp_path: Path, new_vllm_processes) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    proc = llmops("apply", "tests/playbooks/vllm.yml", "--run-dir", str(run_dir), "-e", f"port={port}",
                  "-e", '{"vllm_extra_args": ["--no-such-vllm-argument"]}', timeout=600)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    cell = read_results(run_dir)["cells"][0]
    assert cell["status"] == "failed" and "exited before it was ready" in cell["error"]
    assert "no-such-vllm-argument" in cell["log_tail"]
    # Failing is bounded by how long vLLM takes to parse its arguments, not by ready_timeout (600 s).
    stamps = [float(x) for x in (run_dir / "cells" / "localhost" / "vllm" / "server.log.t").read_text().split()]
    assert cell["finished_at"] - stamps[-1] < 10, "the exit was noticed late"
    assert elapsed < 180
    assert new_vllm_processes() == []


def test_ctrl_c_during_vllm_startup_leaves_nothing(vllm_provisioned: None, tmp_path: Path,
                                                   new_vllm_processes) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "llmops", "apply", "tests/playbooks/vllm.yml", "--run-dir",
                             str(run_dir), "-e", f"port={port}"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while not any("VLLM::EngineCor" in p for p in new_vllm_processes()):  # EngineCore is up: mid-startup
            assert time.time() < deadline and proc.poll() is None, "vLLM never reached EngineCore"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    results = read_results(run_dir)
    assert results["status"] == "interrupted"
    assert results["cells"][0]["status"] == "interrupted"
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    time.sleep(1)
    assert new_vllm_processes() == []
    assert processes_matching(f"--port {port}") == []
