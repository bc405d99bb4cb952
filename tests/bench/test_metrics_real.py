"""/metrics of the real servers through the load generator: the cached llama-server started with
--metrics, and vLLM's CPU build (both as in test_real_servers.py). The counters' deltas must count
exactly the tokens the client received, and the server's two accounts of its decode speed (counters
and timings) must agree, being one definition."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from llmops.bench.client import RequestOptions
from llmops.bench.engine import Bench, LoadSpec
from llmops.bench.prompts import PromptSpec

from .test_real_servers import _start_llama, vllm_server  # noqa: F401 - the module-scoped vLLM fixture


@pytest.fixture(scope="module")
def llama_metrics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _start_llama(tmp_path_factory, ["--metrics"])


def _levels(url: str, concurrency: list[int], max_tokens: int) -> list[dict]:
    bench = Bench(base_url=url, opts=RequestOptions(url=url + "/v1/chat/completions", model="tiny", ignore_eos=True),
                  load=LoadSpec(concurrency=concurrency),
                  prompt_spec=PromptSpec(text="Tell me a story", max_tokens=max_tokens, unique=True),
                  preflight=False, metrics_path="/metrics")
    return asyncio.run(bench.run())


def test_llama_server_metrics(llama_metrics_server: str) -> None:
    for level in _levels(llama_metrics_server, [1, 2], 32):
        block = level["server"]["metrics"]
        print(f"c={level['concurrency']}: {block}")
        assert block["available"] and block["dialect"] == "llama.cpp", block
        assert block["generated_tokens"] == level["completion_tokens"] == 32 * level["concurrency"]
        assert block["decode_steps"] == 31 * level["concurrency"]
        if level["concurrency"] == 1:  # one request: counters and timings are the same figure
            assert block["server_decode_tps"] == pytest.approx(level["server"]["server_decode_tps_p50"], rel=1e-3)


def test_vllm_metrics(vllm_server: str) -> None:  # noqa: F811
    for level in _levels(vllm_server, [1, 2], 24):
        block = level["server"]["metrics"]
        print(f"c={level['concurrency']}: {block}")
        assert block["available"] and block["dialect"] == "vllm", block
        assert block["generated_tokens"] == level["completion_tokens"] == 24 * level["concurrency"]
        assert block["requests"] == level["concurrency"] and block["decode_steps"] == 23 * level["concurrency"]
        assert block["names"]["vllm:inter_token_latency_seconds_count"]["delta"] == block["decode_steps"]
        assert block["server_decode_tps"] > 0 and block["e2e_mean_s"] > 0
        # no timings from vLLM: the counters are the server's only account, and they are compared
        assert "server_decode_tps_p50" not in level["server"] and block["decode_disagree_pct"] is not None
