"""Per-level metrics from request records: pure functions, defined in docs/metrics.md.

The seven llmapibenchmark columns keep that tool's meaning (so tables stay comparable);
everything else is ours: percentiles, per-token ITL, steady-state throughput, goodput,
errors grouped by kind. Every figure is a finite float or None (never NaN or infinity), so
the result serialises as strict JSON.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from llmops.bench.client import RequestRecord

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method)."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    rank = (p / 100.0) * (n - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def summary(values: Iterable[float], scale: float = 1.0) -> dict[str, float | None]:
    data = sorted(values)
    if not data:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None, "min": None}
    out: dict[str, float | None] = {"mean": scale * math.fsum(data) / len(data), "min": scale * data[0],
                                    "max": scale * data[-1]}
    for p in PERCENTILES:
        value = percentile(data, p)
        out[f"p{p}"] = None if value is None else scale * value
    return out


@dataclass
class Slo:
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    itl_ms: float | None = None
    e2e_ms: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.itl_ms, self.e2e_ms))

    def met(self, r: RequestRecord, itl_max_ms: float | None) -> bool:
        """A successful request within every given limit (limits are inclusive)."""
        if not r.ok:
            return False
        checks = [(self.ttft_ms, r.ttft), (self.tpot_ms, r.tpot), (self.e2e_ms, r.e2e)]
        for limit, value in checks:
            if limit is not None and (value is None or value * 1000.0 > limit):
                return False
        if self.itl_ms is not None and (itl_max_ms is None or itl_max_ms > self.itl_ms):
            return False
        return True


def itl_samples(r: RequestRecord) -> list[float]:
    """Per-token inter-token latencies of one request (seconds).

    Each gap between two reads that brought tokens is shared by the tokens the later read
    brought. Tokens that came in the same read as the first token have no gap to measure and
    are left out. When the server did not say how many tokens each event carried and its
    final count disagrees with the number of events, the request's tokens are taken to be
    spread evenly over its events.
    """
    times, tokens = r.chunk_times, r.chunk_tokens
    if len(times) < 2:
        return []
    scale = 1.0
    streamed = r.streamed_tokens
    if (not r.per_chunk_counts and r.tokens_source in ("usage", "timings") and r.completion_tokens
            and streamed and r.completion_tokens != streamed):
        scale = streamed / r.completion_tokens
    out: list[float] = []
    prev = times[0]
    for i in range(1, len(times)):
        t = times[i]
        k = tokens[i]
        share = (t - prev) / k * scale
        prev = t
        if k == 1:
            out.append(share)
        else:
            out.extend([share] * k)
    return out


def level_metrics(records: list[RequestRecord], *, concurrency: int, level_index: int, slo: Slo | None = None,
                  rate: float | None = None) -> dict[str, Any]:
    """All figures for one level from its measured (non-warmup) requests."""
    measured = [r for r in records if r.phase == "measure"]
    ok = [r for r in measured if r.ok]
    failed = [r for r in measured if not r.ok]
    n = len(measured)
    t_first = min((r.t_start if r.t_start is not None else r.t_send for r in measured), default=0.0)
    t_stop = max((r.t_end or r.t_send for r in measured), default=0.0)
    total_s = max(t_stop - t_first, 0.0)
    completion = sum(r.completion_tokens or 0 for r in ok)
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    ttft_max = max(ttfts) if ttfts else None
    itls: list[float] = []
    itl_max_per_req: dict[int, float | None] = {}
    for r in ok:
        samples = itl_samples(r)
        itls.extend(samples)
        itl_max_per_req[id(r)] = max(samples) * 1000.0 if samples else None

    level: dict[str, Any] = {
        "level": level_index,
        "concurrency": concurrency,
        "requests": n,
        "succeeded": len(ok),
        "failed": len(failed),
        "success_rate": (len(ok) / n) if n else 0.0,
        # llmapibenchmark's Gen TPS: completion tokens of successful requests over the makespan
        "gen_tps": completion / total_s if total_s > 0 else 0.0,
        # llmapibenchmark's Prompt TPS: prompt tokens over the slowest first token
        "prompt_tps": prompt / ttft_max if ttft_max else 0.0,
        "ttft_min_s": min(ttfts) if ttfts else None,
        "ttft_max_s": ttft_max,
        "total_s": total_s,
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "request_throughput": len(ok) / total_s if total_s > 0 else 0.0,
        "steady_gen_tps": steady_gen_tps(ok),
    }
    if rate is not None:
        level["rate"] = rate
        sched = sorted(r.t_scheduled for r in measured if r.t_scheduled is not None)
        if len(sched) > 1 and sched[-1] > sched[0]:
            level["offered_rps"] = (len(sched) - 1) / (sched[-1] - sched[0])
    for name, values, scale, unit in (
        ("ttft", ttfts, 1.0, "s"),
        ("ttfc", [r.ttfc for r in ok if r.ttfc is not None], 1.0, "s"),
        ("tpot", [r.tpot for r in ok if r.tpot is not None], 1000.0, "ms"),
        ("itl", itls, 1000.0, "ms"),
        ("e2e", [r.e2e for r in ok if r.e2e is not None], 1.0, "s"),
        ("queue", [r.queue_s for r in measured if r.queue_s is not None], 1.0, "s"),
        ("connect", [r.connect_s for r in measured if r.connect_s is not None and r.t_headers is not None], 1.0, "s"),
    ):
        if name in ("queue", "connect") and not values:
            continue
        for key, value in summary(values, scale).items():
            level[f"{name}_{key}_{unit}"] = value
    prefill = [(r.prompt_tokens or 0) / r.ttft for r in ok if r.ttft and r.prompt_tokens]
    level["prefill_tps_p50"] = percentile(sorted(prefill), 50)
    level["full_length"] = sum(1 for r in ok if r.completion_tokens is not None and r.completion_tokens >= r.max_tokens)
    level["reasoning_tokens"] = sum(r.reasoning_tokens or 0 for r in ok)
    level["tokens_source"] = _sources(ok)
    level["prompt_tokens_mean"] = (prompt / len(ok)) if ok else None
    expected = {r.expected_prompt_tokens for r in ok if r.expected_prompt_tokens is not None}
    if expected:
        level["prompt_tokens_expected"] = sorted(expected)[0] if len(expected) == 1 else sorted(expected)
        level["prompt_tokens_exact"] = sum(1 for r in ok if r.prompt_tokens == r.expected_prompt_tokens)
    if slo is not None and slo.any():
        good = sum(1 for r in measured if slo.met(r, itl_max_per_req.get(id(r))))
        level["goodput_rps"] = good / total_s if total_s > 0 else 0.0
        level["goodput_requests"] = good
    level["errors"] = error_groups(failed)
    server = server_crosscheck(ok)
    if server:
        level["server"] = server
    return level


# Client and server disagreeing by more than this on generation speed means something between
# them (the client's own CPU, a tunnel, a proxy) is the bottleneck, not the server.
DISAGREE_PCT = 10.0


def server_crosscheck(ok: list[RequestRecord]) -> dict[str, Any] | None:
    """The server's own per-response speeds (llama-server `timings`) beside ours.

    Compared per request on decode speed, both sides on one definition: tokens after the first
    over the time from the first token to the last. Ours is 1/TPOT (as received). The server's
    is `(predicted_n - 1) / predicted_ms`, computed here rather than taken from its
    `predicted_per_second`: the pinned llama-server (11434.0.0) divides those same n - 1 decode
    steps by predicted_ms, but older builds divided all n tokens by it, which reads n/(n-1)
    faster (docs/metrics.md, "Cross-check with the server"). Medians over the level's requests;
    None when the server sent no timings.
    """
    server_decode, client_decode, server_prefill = [], [], []
    unmeasured = 0
    for r in ok:
        t = r.server_timings
        n, ms = t.get("predicted_n"), t.get("predicted_ms")
        pps = (n - 1) / ms * 1000.0 if n and n >= 2 and ms and ms > 0 else t.get("predicted_per_second")
        if not pps:
            continue
        server_decode.append(float(pps))
        if t.get("prompt_per_second"):
            server_prefill.append(float(t["prompt_per_second"]))
        # The server's figure stands on its own; ours needs the tokens to arrive apart. A tunnel
        # or proxy that hands the whole response over in one read leaves nothing to time.
        if r.tpot is None or r.tpot <= 0:
            unmeasured += 1
        else:
            client_decode.append(1.0 / r.tpot)
    if not server_decode:
        return None
    srv = percentile(sorted(server_decode), 50)
    cli = percentile(sorted(client_decode), 50) if client_decode else None
    out: dict[str, Any] = {"source": "timings", "requests": len(server_decode),
                           "server_decode_tps_p50": srv, "client_decode_tps_p50": cli,
                           "server_prompt_tps_p50": percentile(sorted(server_prefill), 50),
                           "client_unmeasured": unmeasured}
    out["decode_disagree_pct"] = (cli - srv) / srv * 100.0 if srv and cli is not None else None
    return out


def _sources(records: list[RequestRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        key = r.tokens_source or "none"
        out[key] = out.get(key, 0) + 1
    return out


def error_groups(failed: list[RequestRecord]) -> list[dict[str, Any]]:
    """Failures by kind: how many, how long after sending, and one full example each."""
    groups: dict[str, dict[str, Any]] = {}
    for r in failed:
        key = r.error_kind or "unknown"
        g = groups.setdefault(key, {"kind": key, "count": 0, "example": r.error, "status": r.status,
                                    "after_s": []})
        g["count"] += 1
        if r.t_end is not None:
            g["after_s"].append(r.t_end - r.t_send)
    out = []
    for g in groups.values():
        times = sorted(g.pop("after_s"))
        g["after_s_min"] = times[0] if times else None
        g["after_s_max"] = times[-1] if times else None
        out.append(g)
    return sorted(out, key=lambda g: -g["count"])


def steady_gen_tps(ok: list[RequestRecord]) -> float | None:
    """Tokens/s while the most streams of the level were producing at once.

    A stream is producing from its first token to its last. In a burst with a server that
    admits all c requests that is the window where all c streams are active; with fewer
    server slots than c, it is the time every slot was busy. Tokens are those arriving in
    the window (the reads at its start excluded, at its end included).
    """
    intervals = [(r.t_first_token, r.t_last_token) for r in ok
                 if r.t_first_token is not None and r.t_last_token is not None and r.t_last_token > r.t_first_token]
    if not intervals:
        return None
    events: list[tuple[float, int]] = []
    for a, b in intervals:
        events.append((a, 1))
        events.append((b, -1))
    events.sort(key=lambda e: (e[0], -e[1]))
    active = target = 0
    for _, delta in events:
        active += delta
        target = max(target, active)
    windows: list[tuple[float, float]] = []
    active = 0
    start: float | None = None
    for t, delta in events:
        active += delta
        if active >= target and start is None:
            start = t
        elif active < target and start is not None:
            if t > start:
                windows.append((start, t))
            start = None
    duration = sum(b - a for a, b in windows)
    if duration <= 0:
        return None
    tokens = 0
    for r in ok:
        times = r.chunk_times
        if not times:
            continue
        cum = list(accumulate(r.chunk_tokens))
        for a, b in windows:
            lo, hi = bisect_right(times, a), bisect_right(times, b)
            if hi > lo:
                tokens += cum[hi - 1] - (cum[lo - 1] if lo else 0)
    return tokens / duration
