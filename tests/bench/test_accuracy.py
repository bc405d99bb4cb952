"""Measured figures against the emulator's ground truth.

The emulator's truth is exact: it stamps each request with the kernel's arrival time and
logs when it wrote the first and last token (perf_counter, the same clock as ours), and its
schedule is absolute (token i due at arrival + ttft + i*gap), so the configured values hold
up to its own small lateness, which the log shows.
"""

from __future__ import annotations

import statistics

import pytest

from llmops.bench.emulator import EmulatorProcess

from .conftest import BenchRun, run_bench, timing_retries, truth_by_id

TTFT, GAP, TOKENS = 0.1, 0.01, 40


def share_within(values: list[float], limit: float) -> float:
    return sum(1 for v in values if v <= limit) / len(values)


@pytest.mark.parametrize("concurrency", [1, 8, 64])
@timing_retries
def test_burst_ttft_tpot_gen_tps_match_the_truth(emulator: EmulatorProcess, concurrency: int) -> None:
    """Exact to the emulator's log (see timing_retries for why a run may be repeated)."""
    emulator.configure({"default": {"ttft": TTFT, "gap": GAP, "output_tokens": TOKENS}})
    run = run_bench(emulator.url, concurrency=[concurrency], max_tokens=TOKENS)
    level = run.levels[0]
    records = run.measured()
    truth = truth_by_id(emulator)
    assert level["requests"] == concurrency and level["succeeded"] == concurrency
    assert level["success_rate"] == 1.0
    assert level["full_length"] == concurrency and level["tokens_source"] == {"usage": concurrency}
    assert all(r.completion_tokens == TOKENS and truth[r.response_id]["arrival_stamped"]  # type: ignore[index]
               for r in records)
    problems = timing_problems(run, truth, concurrency)
    assert not problems, problems


def timing_problems(run: BenchRun, truth: dict, concurrency: int) -> list[str]:
    level = run.levels[0]
    records = run.measured()
    clock = run.bench.clock
    problems: list[str] = []
    off_truth, send_lag, tpot_err = [], [], []
    for r in records:
        t = truth[r.response_id]
        # what the emulator really did: its first token left between these two reads of its clock,
        # after the request arrived (the kernel's stamp); how far outside that window are we?
        lo = t["t_first_write_begin"] - t["t_arrival"]
        hi = t["t_first_write"] - t["t_arrival"]
        off_truth.append(max(lo - r.ttft, r.ttft - hi, 0.0))
        send_lag.append(t["t_arrival"] - clock.to_perf(r.t_send))  # the request left when we said
        true_tpot = (t["t_last_write"] - t["t_first_write"]) / (TOKENS - 1)
        tpot_err.append(abs(r.tpot - true_tpot))
    # exact to the truth (0.5 ms) for nearly every request
    if share_within(off_truth, 0.0005) < 0.9:
        problems.append(f"TTFT vs truth: {sorted(off_truth)}")
    if min(send_lag) < -0.0001 or share_within(send_lag, 0.0005) < 0.9:
        problems.append(f"send time vs arrival: {sorted(send_lag)}")
    if share_within(tpot_err, 0.0001) < 0.9:
        problems.append(f"TPOT vs truth: {sorted(tpot_err)}")
    # Gen TPS: all tokens over the makespan, which the emulator's log bounds from both sides
    ids = {r.response_id for r in records}
    t_first = min(t["t_arrival"] for t in truth.values() if t["response_id"] in ids)
    t_last = max(t["t_last_write"] for t in truth.values() if t["response_id"] in ids)
    true_gen_tps = concurrency * TOKENS / (t_last - t_first)
    if abs(level["gen_tps"] / true_gen_tps - 1) >= 0.03:
        problems.append(f"Gen TPS {level['gen_tps']} vs {true_gen_tps}")
    # steady state: all c streams produce one token per gap
    true_gap = statistics.median((t["t_last_write"] - t["t_first_write"]) / (TOKENS - 1)
                                 for t in truth.values() if t["response_id"] in ids)
    if abs(level["steady_gen_tps"] / (concurrency / true_gap) - 1) >= 0.03:
        problems.append(f"steady {level['steady_gen_tps']} vs {concurrency / true_gap}")
    if abs(level["itl_mean_ms"] - level["tpot_mean_ms"]) >= 0.05:  # one token per event: the same mean
        problems.append(f"ITL mean {level['itl_mean_ms']} vs TPOT mean {level['tpot_mean_ms']}")
    return problems


@timing_retries
def test_configured_values_hold_roughly(emulator: EmulatorProcess) -> None:
    """The emulator's settings come through (it runs late when the CPUs are busy, hence the slack)."""
    emulator.configure({"default": {"ttft": TTFT, "gap": GAP, "output_tokens": TOKENS}})
    level = run_bench(emulator.url, concurrency=[8], max_tokens=TOKENS).levels[0]
    assert TTFT <= level["ttft_p50_s"] < TTFT + 0.02
    assert abs(level["tpot_p50_ms"] - GAP * 1000) < 1.0 and abs(level["itl_p50_ms"] - GAP * 1000) < 2.0
    nominal = 8 * TOKENS / (TTFT + (TOKENS - 1) * GAP)
    assert 0.85 * nominal < level["gen_tps"] <= 1.01 * nominal


def true_event_gap(emulator: EmulatorProcess, events: int) -> float:
    """The emulator's mean gap between its first and last write, over all requests."""
    log = emulator.log()
    return statistics.mean((t["t_last_write"] - t["t_first_write"]) / (events - 1) for t in log)


@timing_retries
def test_many_tokens_per_event_with_running_counts_give_per_token_itl(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.05, "gap": 0.0025, "output_tokens": 48, "tokens_per_chunk": 4,
                                    "counts": "usage"}})
    run = run_bench(emulator.url, concurrency=[4], max_tokens=48)
    level = run.levels[0]
    for r in run.measured():
        assert r.per_chunk_counts and r.streamed_tokens == 48 and r.completion_tokens == 48
        assert r.content_events == 12
    # an event every 10 ms bringing 4 tokens: 2.5 ms per token, not 10 ms per chunk
    assert abs(level["itl_mean_ms"] - true_event_gap(emulator, 12) * 1000 / 4) < 0.05
    assert abs(level["itl_p50_ms"] - 2.5) < 0.3  # the emulator wakes up to ~1 ms late per event


@timing_retries
def test_many_tokens_per_event_without_counts_spread_the_usage_total(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.05, "gap": 0.0025, "output_tokens": 48, "tokens_per_chunk": 4}})
    run = run_bench(emulator.url, concurrency=[2], max_tokens=48)
    level = run.levels[0]
    for r in run.measured():
        assert not r.per_chunk_counts and r.streamed_tokens == 12 and r.completion_tokens == 48
        assert r.tokens_source == "usage"
    gap = true_event_gap(emulator, 12)
    assert abs(level["itl_mean_ms"] - gap * 1000 / 4) < 0.05
    # TPOT: from the first event (tokens 0-3) to the last (44-47), 11 gaps, over 47 tokens
    assert abs(level["tpot_mean_ms"] - 11 * gap * 1000 / 47) < 0.05


@timing_retries
def test_reasoning_tokens_are_counted_apart_and_first_content_is_later(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.05, "gap": 0.005, "output_tokens": 30, "reasoning_tokens": 10}})
    run = run_bench(emulator.url, concurrency=[3], max_tokens=30)
    level = run.levels[0]
    for r in run.measured():
        assert r.ok and (r.reasoning_events, r.content_events) == (10, 20)
        assert r.reasoning_tokens == 10 and r.completion_tokens == 30
        assert r.t_first_reasoning == r.t_first_token
        assert r.ttft is not None and r.ttfc is not None
        assert abs(r.ttft - 0.05) < 0.01
        # ten reasoning tokens before the first content (the emulator may be late on either)
        assert abs((r.ttfc - r.ttft) - 10 * 0.005) < 0.004
    assert level["reasoning_tokens"] == 30
    assert level["ttfc_p50_s"] > level["ttft_p50_s"] + 0.045


def test_token_counts_usage_then_timings_then_an_estimate(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 20, "usage": False,
                                    "timings": True}})
    run = run_bench(emulator.url, concurrency=[2], max_tokens=20)
    assert run.levels[0]["tokens_source"] == {"timings": 2}
    assert all(r.completion_tokens == 20 and r.server_timings.get("predicted_n") == 20 for r in run.measured())

    emulator.configure({"default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 20, "usage": False}})
    run = run_bench(emulator.url, concurrency=[2], max_tokens=20)
    assert run.levels[0]["tokens_source"] == {"estimate": 2}
    assert all(r.completion_tokens == 20 and r.tokens_source == "estimate" for r in run.measured())


@timing_retries
def test_server_side_queueing_shows_in_ttft(emulator: EmulatorProcess) -> None:
    """Two server slots, six requests: pairs start one service time apart (FIFO), and our TTFT
    says when each one's first token really came."""
    service = 0.05 + 29 * 0.004
    emulator.configure({"slots": 2, "default": {"ttft": 0.05, "gap": 0.004, "output_tokens": 30}})
    run = run_bench(emulator.url, concurrency=[6], max_tokens=30)
    truth = truth_by_id(emulator)
    clock = run.bench.clock
    for r in run.measured():
        t = truth[r.response_id]  # type: ignore[index]
        assert r.ttft is not None
        assert t["t_first_write_begin"] - 0.0005 <= clock.to_perf(r.t_send) + r.ttft <= t["t_first_write"] + 0.001
    ttfts = sorted(r.ttft for r in run.measured() if r.ttft is not None)
    expected = [0.05, 0.05, 0.05 + service, 0.05 + service, 0.05 + 2 * service, 0.05 + 2 * service]
    for got, want in zip(ttfts, expected, strict=False):  # the emulator runs a little late, more so on a busy machine
        assert want - 0.001 < got < want + 0.03, (ttfts, expected)
    level = run.levels[0]
    # in steady state the two slots are always busy
    assert abs(level["steady_gen_tps"] / (2 / 0.004) - 1) < 0.05


def test_exact_input_tokens_through_tokenize_and_a_calibration_probe(emulator: EmulatorProcess) -> None:
    emulator.configure({"template_tokens": 7})
    run = run_bench(emulator.url, concurrency=[4], max_tokens=4, input_tokens=64)
    calibration = run.bench.calibration
    assert calibration["exact_prompt_tokens"] and calibration["template_overhead_tokens"] == 7
    level = run.levels[0]
    assert level["prompt_tokens_expected"] == 64 and level["prompt_tokens_exact"] == 4
    assert all(r.prompt_tokens == 64 for r in run.measured())
    # the calibration probe and the tokenizer calls are not part of any figure
    assert level["requests"] == 4
    prompts = {entry["prompt_tokens"] for entry in emulator.log()}
    assert prompts == {64, 8 + 7}  # the measured requests and the 8-word probe
