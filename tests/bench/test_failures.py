"""Every failure is counted and explained: its kind, how many, when, and one full example."""

from __future__ import annotations

import socket

from llmops.bench.emulator import EmulatorProcess

from .conftest import run_bench, timing_retries

# Arrival index i gets failure RULES[i % 8]; one in eight succeeds.
RULES = [
    {"every": 8, "offset": 0, "set": {"failure": "http_500"}},
    {"every": 8, "offset": 1, "set": {"failure": "http_429", "error_text": "rate limited"}},
    {"every": 8, "offset": 2, "set": {"failure": "reset", "fail_after": 3}},
    {"every": 8, "offset": 3, "set": {"failure": "close", "fail_after": 3}},
    {"every": 8, "offset": 4, "set": {"failure": "error_event", "fail_after": 2}},
    {"every": 8, "offset": 5, "set": {"failure": "truncate", "fail_after": 5}},
    {"every": 8, "offset": 6, "set": {"failure": "hang", "fail_after": 2}},
]


@timing_retries
def test_every_failure_is_counted_and_explained(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.02, "gap": 0.002, "output_tokens": 10}, "rules": RULES})
    run = run_bench(emulator.url, concurrency=[16], max_tokens=10, timeout=1.0)
    level = run.levels[0]
    assert (level["requests"], level["succeeded"], level["failed"]) == (16, 2, 14)
    assert level["success_rate"] == 0.125
    groups = {g["kind"]: g for g in level["errors"]}
    assert {k: g["count"] for k, g in groups.items()} == {
        "http_500": 2, "http_429": 2, "reset": 2, "closed": 2, "stream_error": 2, "truncated": 2, "timeout": 2}
    assert groups["http_500"]["status"] == 500
    assert groups["http_500"]["example"].startswith("HTTP 500 Internal Server Error: ")
    assert "emulated failure" in groups["http_500"]["example"]
    assert "rate limited" in groups["http_429"]["example"]
    assert "reset by the server mid-response" in groups["reset"]["example"]
    assert "after 3 tokens" in groups["reset"]["example"]
    assert "closed the connection mid-response" in groups["closed"]["example"]
    assert "emulated failure" in groups["stream_error"]["example"]
    assert "without [DONE] or a finish_reason after 5 tokens" in groups["truncated"]["example"]
    timeout = groups["timeout"]
    assert "--timeout 1 s" in timeout["example"] and "2 tokens so far" in timeout["example"]
    # the timeout covers the whole request (getting a connection too); after_s counts from the send
    assert 0.9 <= timeout["after_s_min"] <= timeout["after_s_max"] < 1.3
    # the failures' own records keep what they got before failing
    resets = [r for r in run.measured() if r.error_kind == "reset"]
    assert all(r.streamed_tokens == 3 and r.status == 200 and r.ttft is not None for r in resets)
    # failed requests are left out of Gen TPS, not of the makespan
    assert level["completion_tokens"] == 2 * 10


def test_a_server_that_never_answers_times_out_with_a_reason(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"failure": "hang", "fail_after": -1}})
    run = run_bench(emulator.url, concurrency=[2], timeout=0.5)
    level = run.levels[0]
    assert level["failed"] == 2 and level["ttft_max_s"] is None and level["gen_tps"] == 0.0
    (group,) = level["errors"]
    assert group["kind"] == "timeout" and "no response head yet" in group["example"]


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        run = run_bench(f"http://127.0.0.1:{port}", concurrency=[3])
    level = run.levels[0]
    assert level["failed"] == 3 and level["success_rate"] == 0.0
    (group,) = level["errors"]
    assert group["kind"] == "connect" and f"127.0.0.1:{port}" in group["example"]
    assert "refused" in group["example"].lower()


def test_a_server_that_rejects_our_extra_fields_is_asked_again_without_them(emulator: EmulatorProcess) -> None:
    emulator.configure({"reject_extras": True, "default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 5}})
    run = run_bench(emulator.url, concurrency=[2], max_tokens=5, preflight=True)
    assert run.levels[0]["succeeded"] == 2
    assert "Unrecognized request argument" in run.bench.calibration["count_extras"]
    assert run.bench.calibration["preflight"]["ok"]
