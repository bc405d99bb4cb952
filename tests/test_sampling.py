"""Sampling (temperature, top_p, top_k, min_p, repeat_penalty): the same for every backend unless a
backend or variant says otherwise, sent in every request body, and recorded per cell."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import llmops

from llmops.bench.client import RequestOptions, request_body
from llmops.bench.prompts import Prompt
from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry
from llmops.record.rundir import pending_cell

PLAYBOOK = """\
- hosts: all
  benchmark:
    concurrency: [1]
    temperature: 0.6
    top_p: 0.95
    top_k: 20
    min_p: 0
    repeat_penalty: 1.05
  backends:
    - name: llama
      kind: llama.cpp
      model: /m.gguf
      port: 18000
      variants:
        - name: same
        - name: greedy
          sampling: {temperature: 0, top_k: 1}
    - name: vllm
      kind: vllm
      model: /m
      port: 18001
"""


def test_sampling_is_shared_unless_a_variant_overrides(tmp_path: Path) -> None:
    path = tmp_path / "pb.yml"
    path.write_text(PLAYBOOK)
    plan = make_plan(load_playbook(str(path)), default_inventory(), registry().backends())
    by_name = {c.name: c for c in plan.cells}
    shared = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "repeat_penalty": 1.05}
    assert by_name["llama-same"].benchmark.sampling() == shared
    assert by_name["vllm"].benchmark.sampling() == shared
    assert by_name["llama-greedy"].benchmark.sampling() == {**shared, "temperature": 0.0, "top_k": 1}
    # Recorded in each cell's result, by the playbook's names.
    assert pending_cell(by_name["llama-greedy"])["sampling"]["top_k"] == 1
    # Sent in the body under the name each server reads: llama-server's repeat_penalty
    # (tools/server/server-schema.cpp of the pinned tree), vLLM's repetition_penalty.
    backends = registry().backends()
    for name, penalty in (("vllm", "repetition_penalty"), ("llama-same", "repeat_penalty")):
        cell = by_name[name]
        opts = RequestOptions(url="http://127.0.0.1:1/v1/chat/completions", model="m",
                              sampling=backends[cell.kind].sampling_body(cell.benchmark.sampling()))
        body = json.loads(request_body(opts, Prompt(messages=[{"role": "user", "content": "hi"}], max_tokens=4)))
        assert {k: body[k] for k in ("temperature", "top_p", "top_k", "min_p", penalty)} == \
            {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, penalty: 1.05}
        assert len({"repeat_penalty", "repetition_penalty"} & set(body)) == 1


def test_bad_sampling_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pb.yml"
    path.write_text(PLAYBOOK.replace("sampling: {temperature: 0, top_k: 1}", "sampling: {top_p: 2}"))
    proc = llmops("check", str(path), timeout=60)
    assert proc.returncode == 2
    assert f"{path}:17:29: backend.sampling.top_p" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_llama_server_applies_the_sampling_llmops_sends(provisioned: None, tmp_path: Path) -> None:
    """Real: the pinned llama-server takes the body llmops builds, and its /slots shows the values."""
    import glob
    import os
    import subprocess
    import time
    import urllib.request

    from conftest import free_port

    binary = glob.glob(os.path.expanduser("~/.cache/llmops/llama.cpp/11434.0.0-*/bin/llama-server"))[0]
    model = glob.glob(os.path.expanduser("~/.cache/llmops/models/tiny-*/tiny.gguf"))[0]
    port = free_port()
    server = subprocess.Popen([binary, "--model", model, "--host", "127.0.0.1", "--port", str(port), "-np", "1",
                               "-c", "512"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if urllib.request.urlopen(base + "/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        sampling = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "repeat_penalty": 1.05}
        opts = RequestOptions(url=base + "/v1/chat/completions", model="tiny",
                              sampling=registry().backends()["llama.cpp"].sampling_body(sampling))
        body = request_body(opts, Prompt(messages=[{"role": "user", "content": "hi"}], max_tokens=4))
        req = urllib.request.Request(opts.url, data=body, headers={"Content-Type": "application/json"})
        assert b"[DONE]" in urllib.request.urlopen(req, timeout=60).read()
        params = json.loads(urllib.request.urlopen(base + "/slots", timeout=10).read())[0]["params"]
        assert {k: round(params[k], 4) for k in sampling} == sampling
    finally:
        server.terminate()
        server.wait(timeout=30)
