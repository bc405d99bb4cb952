"""Closed loop with warm-up, open loop with client queueing, goodput, prompts."""

from __future__ import annotations

import pytest

from llmops.bench.emulator import EmulatorProcess
from llmops.bench.engine import LoadSpec, arrival_times, level_plans
from llmops.bench.metrics import Slo
from llmops.bench.prompts import PromptSource, PromptSpec

from .conftest import run_bench, timing_retries


def test_closed_loop_keeps_c_in_flight_and_leaves_warmup_out(emulator: EmulatorProcess) -> None:
    # the four warm-up requests (arrivals 0-3) are slow; if they were measured, TTFT max would show it
    emulator.configure({"default": {"ttft": 0.02, "gap": 0.002, "output_tokens": 5},
                        "rules": [{"first": 4, "set": {"ttft": 0.3}}]})
    run = run_bench(emulator.url, concurrency=[4], max_tokens=5, load={"requests": 12, "warmup": 4})
    level = run.levels[0]
    assert level["requests"] == 12 and level["warmup_requests"] == 4 and level["succeeded"] == 12
    assert len(emulator.log()) == 16
    assert level["ttft_max_s"] < 0.1
    # closed loop: never more than c requests in flight
    spans = sorted((r.t_send, r.t_end) for r in run.records if r.t_end)
    for t, _ in spans:
        assert sum(1 for a, b in spans if a <= t < b) <= 4
    # the first four requests are the warm-up: each worker's first; measured ones follow them
    warmups = [r for r in run.records if r.phase == "warmup"]
    assert sorted(r.index for r in warmups) == [0, 1, 2, 3]
    assert min(r.t_start for r in run.measured()) >= min(r.t_end for r in warmups)  # type: ignore[type-var]


@timing_retries
def test_closed_loop_for_a_duration(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.02, "gap": 0.002, "output_tokens": 5}})
    run = run_bench(emulator.url, concurrency=[2], max_tokens=5, load={"duration": 0.5})
    level = run.levels[0]
    # each request takes ~28 ms: about 0.5 s / 28 ms * 2 of them, and none issued after 0.5 s
    assert 20 <= level["requests"] <= 40
    first = min(r.t_start for r in run.measured())  # type: ignore[type-var]
    assert max(r.t_start for r in run.measured()) - first < 0.5  # type: ignore[operator]


@timing_retries
def test_open_loop_reports_client_queue_time(emulator: EmulatorProcess) -> None:
    """Arrivals every ~10 ms, each request takes ~30 ms, at most one in flight: a queue builds."""
    emulator.configure({"default": {"ttft": 0.03, "gap": 0.001, "output_tokens": 1}})
    run = run_bench(emulator.url, concurrency=[1], max_tokens=1, load={"rate": [100.0], "requests": 15,
                                                                       "burstiness": 1000.0})
    level = run.levels[0]
    assert level["rate"] == 100.0 and level["succeeded"] == 15
    assert 80 < level["offered_rps"] < 125  # nearly constant gaps at this burstiness
    records = sorted(run.measured(), key=lambda r: r.t_scheduled)  # type: ignore[arg-type,return-value]
    for prev, cur in zip(records, records[1:], strict=False):
        # with a cap of one, a request waits until the one before it is done (and the event loop
        # gets round to it: on a busy machine that can take a few ms)
        expected = max(0.0, prev.t_end - cur.t_scheduled)  # type: ignore[operator]
        assert expected - 0.001 < cur.queue_s < expected + 0.02, (cur.queue_s, expected)  # type: ignore[operator]
    assert level["queue_max_s"] > 0.2
    # queue time is not part of TTFT: the server answered each one in ~30 ms
    assert level["ttft_p50_s"] < 0.05


@timing_retries
def test_open_loop_without_cap_sends_on_schedule(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.03, "gap": 0.001, "output_tokens": 1}})
    run = run_bench(emulator.url, concurrency=[], max_tokens=1, load={"rate": [200.0], "requests": 20})
    level = run.levels[0]
    assert level["concurrency"] == 0 and level["succeeded"] == 20
    assert level["queue_p90_s"] < 0.01  # the event loop wakes up on a 1 ms grid, later when the CPUs are busy


def test_goodput_counts_requests_within_every_limit(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.02, "gap": 0.002, "output_tokens": 10},
                        "rules": [{"every": 2, "set": {"ttft": 0.15}}]})
    run = run_bench(emulator.url, concurrency=[8], max_tokens=10, slo=Slo(ttft_ms=100, tpot_ms=10))
    level = run.levels[0]
    assert level["goodput_requests"] == 4
    assert level["goodput_rps"] == pytest.approx(4 / level["total_s"])
    run = run_bench(emulator.url, concurrency=[8], max_tokens=10, slo=Slo(tpot_ms=1))
    assert run.levels[0]["goodput_requests"] == 0  # 2 ms per token is over 1 ms


def test_arrival_schedule_is_seeded_and_has_the_asked_mean_rate() -> None:
    a = arrival_times(2000, 50.0, 1.0, seed=3)
    assert a == arrival_times(2000, 50.0, 1.0, seed=3) and a[0] == 0.0
    assert (len(a) - 1) / a[-1] == pytest.approx(50.0, rel=0.1)
    assert level_plans(LoadSpec(concurrency=[4], rate=[1.0, 2.0]))[1].label == "rate 2/s"


def test_prompts_unique_shared_prefix_and_exact_length() -> None:
    words = [f"w{i}" for i in range(100)]
    source = PromptSource(PromptSpec(input_tokens=20, shared_prefix_tokens=8, max_tokens=4), words,
                          reported_tokens=25)
    a, b = source.next(), source.next()
    wa, wb = a.messages[0]["content"].split(), b.messages[0]["content"].split()
    assert len(wa) == len(wb) == 20 and wa[:8] == wb[:8] and wa != wb
    assert a.expected_prompt_tokens == 25
    fixed = PromptSource(PromptSpec(text="same", unique=False))
    assert fixed.next().messages == fixed.next().messages
    nonce = PromptSource(PromptSpec(text="same", unique=True))
    assert nonce.next().messages != nonce.next().messages


def test_a_run_unfreezes_only_what_it_froze(emulator: EmulatorProcess) -> None:
    """The bench freezes the heap for its run (shorter collector pauses). A caller's own frozen
    heap stays frozen afterwards; without one, the run leaves nothing frozen."""
    import gc

    emulator.configure({"default": {"ttft": 0.001, "gap": 0.001, "output_tokens": 2}})
    gc.freeze()  # as a caller (here, tests/conftest.py after collection) may have done
    try:
        before = gc.get_freeze_count()
        assert before > 0
        run_bench(emulator.url, max_tokens=2, load={"requests": 1})
        assert gc.get_freeze_count() >= before
        gc.unfreeze()
        run_bench(emulator.url, max_tokens=2, load={"requests": 1})
        assert gc.get_freeze_count() == 0
    finally:
        gc.freeze()
