"""/metrics beside the client: the Prometheus parser golden-tested on pages captured from the
real servers (tests/fixtures/metrics/, each with a .source), the delta logic on known
counters, and the scrape end to end against the emulator's counters (known truth)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llmops.bench import promtext, servermetrics, stats
from llmops.bench.client import RequestOptions
from llmops.bench.emulator import EmulatorProcess
from llmops.bench.engine import Bench, LoadSpec
from llmops.bench.prompts import PromptSpec
from llmops.bench.servermetrics import ClientWindow, Snapshot
from llmops.report.tables import detail_table

from .throttle import ThrottledProxy

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "metrics"


def _page(name: str) -> str:
    assert (FIXTURES / f"{name}.source").is_file(), f"{name} has no .source"
    return (FIXTURES / f"{name}.txt").read_text()


# --- the parser, on real pages ---------------------------------------------------------------

def test_llama_server_page_parses_exactly() -> None:
    page = promtext.parse(_page("llama-server-11434-after-2-requests"))
    assert page.errors == []
    assert len(page.samples) == 15 and page.types["llamacpp:tokens_predicted_total"] == "counter"
    assert page.types["llamacpp:predicted_tokens_seconds"] == "gauge"
    got = {s.name: s.value for s in page.samples}
    assert got["llamacpp:tokens_predicted_total"] == 40
    assert got["llamacpp:tokens_predicted_seconds_total"] == 0.068405
    assert got["llamacpp:prompt_tokens_total"] == 17 and got["llamacpp:prompt_tokens_cached_total"] == 3
    assert got["llamacpp:prompt_seconds_total"] == 0.002291
    assert got["llamacpp:predicted_tokens_seconds"] == 555.515
    idle = promtext.parse(_page("llama-server-11434-idle"))
    assert idle.errors == [] and all(s.value == 0 for s in idle.samples)


def test_vllm_page_parses_exactly() -> None:
    page = promtext.parse(_page("vllm-0.32.0-cpu-after-2-requests"))
    assert page.errors == []
    assert page.types["vllm:inter_token_latency_seconds"] == "histogram"
    labels = dict(next(s for s in page.samples if s.name == "vllm:generation_tokens_total").labels)
    assert labels == {"engine": "0", "model_name": "tiny"}
    assert page.total("vllm:generation_tokens_total") == 40.0
    assert page.total("vllm:prompt_tokens_total") == 18.0
    assert page.total("vllm:request_decode_time_seconds_sum") == 0.2066504179997537
    assert page.total("vllm:request_decode_time_seconds_count") == 2.0
    assert page.total("vllm:inter_token_latency_seconds_count") == 38.0
    assert page.total("vllm:e2e_request_latency_seconds_sum") == 0.24194669723510742
    # a bucket's le label, +Inf included, as the page wrote it
    les = [dict(s.labels)["le"] for s in page.samples if s.name == "vllm:e2e_request_latency_seconds_bucket"]
    assert les[-1] == "+Inf" and "0.3" in les
    assert "vllm:time_per_output_token_seconds_sum" not in page.names()  # gone in 0.32.0


def test_parser_edge_cases() -> None:
    text = ('# HELP x_total a "help" line\n# TYPE x_total counter\n'
            'x_total{path="/a\\"b\\\\c\\nd",code="200"} 1.5e+06 1700000000000\n'
            'x_total{code="500",} +Inf\n'
            "y NaN\n\n"
            "garbage here\n"
            'z{bad label} 3\n'
            "w 12abc\n")
    page = promtext.parse(text)
    assert [s.name for s in page.samples] == ["x_total", "x_total", "y"]
    assert dict(page.samples[0].labels) == {"path": '/a"b\\c\nd', "code": "200"}
    assert page.samples[0].value == 1.5e6 and page.samples[1].value == math.inf and math.isnan(page.samples[2].value)
    assert page.total("x_total") == math.inf and page.total("absent") is None
    assert [e.split(":")[0] for e in page.errors] == ["line 7", "line 8", "line 9"]


# --- snapshots and deltas --------------------------------------------------------------------

def test_llama_deltas_match_the_servers_own_rate() -> None:
    before = servermetrics.snapshot(_page("llama-server-11434-idle"), t=10.0)
    after = servermetrics.snapshot(_page("llama-server-11434-after-2-requests"), t=12.0)
    assert before.dialect == after.dialect == "llama.cpp"
    client = ClientWindow(requests=2, tokens=40, decode_tokens=38, decode_s=0.07)
    block = servermetrics.level_block(before, after, client)
    assert block["available"] and block["window_s"] == 2.0
    assert block["names"]["llamacpp:tokens_predicted_total"] == {"before": 0, "after": 40, "delta": 40}
    assert block["generated_tokens"] == 40 and block["prompt_tokens"] == 20 and block["tokens_match"]
    assert block["decode_steps"] == 38
    # Our definition (steps over the decode time) is the one the server's own gauge uses.
    assert block["server_decode_tps"] == pytest.approx(555.515, rel=1e-5)
    assert block["client_decode_tps"] == pytest.approx(38 / 0.07)
    assert block["decode_disagree_pct"] == pytest.approx((38 / 0.07 - 38 / 0.068405) / (38 / 0.068405) * 100)
    assert block["gen_tps_window"] == 20.0


def test_vllm_deltas() -> None:
    before = servermetrics.snapshot(_page("vllm-0.32.0-cpu-idle"), t=0.0)
    after = servermetrics.snapshot(_page("vllm-0.32.0-cpu-after-2-requests"), t=1.0)
    assert after.dialect == "vllm"
    block = servermetrics.level_block(before, after, ClientWindow(requests=2, tokens=40))
    assert block["available"] and block["generated_tokens"] == 40 and block["requests"] == 2
    assert block["decode_steps"] == 38  # = the per-step histogram's count
    assert block["names"]["vllm:inter_token_latency_seconds_count"]["delta"] == 38
    assert block["server_decode_tps"] == pytest.approx(38 / 0.2066504179997537)
    assert block["tpot_mean_ms"] == pytest.approx(0.010904178104334753 / 2 * 1000)
    assert block["e2e_mean_s"] == pytest.approx(0.24194669723510742 / 2)
    assert block["client_decode_tps"] is None and block["decode_disagree_pct"] is None


def test_unavailable_reasons() -> None:
    good = servermetrics.snapshot(_page("llama-server-11434-after-2-requests"), t=1.0)
    idle = servermetrics.snapshot(_page("llama-server-11434-idle"), t=2.0)
    restarted = servermetrics.level_block(good, idle, ClientWindow())
    assert not restarted["available"] and "went down" in restarted["reason"]
    junk = servermetrics.snapshot("<html>no</html>", t=0.0)
    assert junk.error is not None and "no llama.cpp or vLLM counters" in junk.error and "line 1" in junk.error
    assert servermetrics.level_block(junk, good, ClientWindow()) == {"available": False, "reason": junk.error}
    vllm = servermetrics.snapshot(_page("vllm-0.32.0-cpu-idle"), t=0.0)
    assert "changed between scrapes" in servermetrics.level_block(vllm, good, ClientWindow())["reason"]
    nan = servermetrics.snapshot("llamacpp:tokens_predicted_total NaN\n", t=3.0)
    assert "not a finite number" in servermetrics.level_block(idle, nan, ClientWindow())["reason"]


def test_settled_waits_for_the_servers_count() -> None:
    before = Snapshot(t=0, dialect="llama.cpp", values={"llamacpp:tokens_predicted_total": 100.0})
    late = Snapshot(t=1, dialect="llama.cpp", values={"llamacpp:tokens_predicted_total": 120.0})
    done = Snapshot(t=1, dialect="llama.cpp", values={"llamacpp:tokens_predicted_total": 132.0})
    client = ClientWindow(requests=2, tokens=32)
    assert not servermetrics.settled(before, late, client)
    assert servermetrics.settled(before, done, client)
    assert servermetrics.settled(before, Snapshot(t=1, error="x"), client)


def test_flag_uses_metrics_without_timings() -> None:
    rep = {"server": {"metrics": {"available": True, "decode_disagree_pct": -40.0, "client_decode_tps": 60.0,
                                  "server_decode_tps": 100.0}}}
    (flag,) = stats.repetition_flags(rep)
    assert "disagree" in flag and "/metrics" in flag and "-40.0 %" in flag
    # where timings exist they speak, not the counters
    rep["server"].update({"decode_disagree_pct": 2.0, "client_decode_tps_p50": 98.0, "server_decode_tps_p50": 96.0})
    assert stats.repetition_flags(rep) == []


# --- end to end against the emulator ---------------------------------------------------------

def _bench(url: str, concurrency: list[int], max_tokens: int, **kw) -> Bench:
    return Bench(base_url=url, opts=RequestOptions(url=url + "/v1/chat/completions", model="emulated"),
                 load=LoadSpec(concurrency=concurrency, warmup=kw.pop("warmup", 0)),
                 prompt_spec=PromptSpec(text="hello", max_tokens=max_tokens, unique=True), preflight=False,
                 metrics_path="/metrics", **kw)


@pytest.mark.parametrize("dialect", ["llama.cpp", "vllm"])
def test_scrape_counts_what_the_client_received(emulator: EmulatorProcess, dialect: str) -> None:
    gap = 0.004
    emulator.configure({"metrics": dialect, "default": {"ttft": 0.005, "gap": gap, "output_tokens": 30}})
    levels = asyncio.run(_bench(emulator.url, [1, 3], 30, warmup=1, repeat=2).run())
    for level in levels:
        for rep in level["repeats"]:
            block = rep["server"]["metrics"]
            assert block["available"] and block["dialect"] == dialect, block
            # warm-up requests are inside the scrapes: the server counted them too
            n = level["concurrency"] + 1
            assert block["generated_tokens"] == block["client_tokens"] == 30 * n and block["tokens_match"]
            assert block["decode_steps"] == 29 * n
            # The emulator sleeps at least `gap` between tokens and counts the time it really took,
            # so a busy host can only make it slower; faster than 1/gap would be a miscount.
            assert 0.5 / gap < block["server_decode_tps"] <= 1.05 / gap, block
            assert abs(block["decode_disagree_pct"]) < 10, block
    assert "/metrics" in detail_table(levels) and f"{30 * 2}/{30 * 2}" in detail_table(levels)


def test_vllm_style_server_is_flagged_through_a_throttled_tunnel(emulator: EmulatorProcess) -> None:
    """No timings (vLLM): the counters alone catch a client that receives slower than the server sends."""
    emulator.configure({"metrics": "vllm", "default": {"ttft": 0.01, "gap": 0.004, "output_tokens": 40}})
    port = urlsplit(emulator.url).port
    with ThrottledProxy(port, bytes_per_s=6000) as proxy:
        (level,) = asyncio.run(_bench(proxy.url, [1], 40).run())
    block = level["server"]["metrics"]
    assert "server_decode_tps_p50" not in level["server"]
    assert block["decode_disagree_pct"] < -10, block
    assert any("disagree" in f and "/metrics" in f for f in level["flags"]), level["flags"]


@pytest.mark.parametrize("dialect,reason", [(None, "HTTP 501"), ("garbled", "no llama.cpp or vLLM counters")])
def test_missing_or_garbled_metrics_never_fail_a_level(emulator: EmulatorProcess, dialect: str | None,
                                                       reason: str) -> None:
    emulator.configure({"metrics": dialect, "default": {"ttft": 0.005, "gap": 0.002, "output_tokens": 8}})
    (level,) = asyncio.run(_bench(emulator.url, [2], 8).run())
    assert level["succeeded"] == 2 and level["failed"] == 0
    block = level["server"]["metrics"]
    assert block["available"] is False and reason in block["reason"], block
    assert "server /metrics not read" in detail_table([level])


def test_refused_scrape_is_recorded(emulator: EmulatorProcess) -> None:
    """The scrape goes to the load's own URL; a path nobody serves answers 404, recorded as such."""
    emulator.configure({"default": {"ttft": 0.005, "gap": 0.002, "output_tokens": 4}})
    bench = _bench(emulator.url, [1], 4)
    bench.metrics_path = "/nowhere"
    (level,) = asyncio.run(bench.run())
    assert level["succeeded"] == 1 and "HTTP 404" in level["server"]["metrics"]["reason"]


def test_a_response_that_arrived_in_one_read_keeps_the_servers_figure_and_is_flagged() -> None:
    """Through a buffering tunnel every token of a response can arrive at once: the client then
    has no decode time of its own, but the server's timings still count, and the level says so."""
    from llmops.bench.client import RequestRecord
    from llmops.bench.metrics import server_crosscheck
    from llmops.bench.stats import repetition_flags

    def record(t_first: float, t_last: float) -> RequestRecord:
        return RequestRecord(level=0, concurrency=1, index=0, phase="measure", t_send=0.0, t_first_token=t_first,
                             t_last_token=t_last, ok=True, completion_tokens=16,
                             server_timings={"predicted_n": 16, "predicted_ms": 15.0})
    together = server_crosscheck([record(0.1, 0.1)])
    assert together is not None
    assert together["server_decode_tps_p50"] == 1000.0 and together["client_decode_tps_p50"] is None
    assert together["client_unmeasured"] == 1 and together["decode_disagree_pct"] is None
    assert any("arrived in one read" in f for f in repetition_flags({"server": together}))
    apart = server_crosscheck([record(0.1, 0.115)])
    assert apart["client_unmeasured"] == 0 and apart["client_decode_tps_p50"] == 1000.0
    assert not repetition_flags({"server": apart})
