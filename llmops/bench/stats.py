"""Statistics over repetitions of a level: medians, 95 % intervals, ties. Pure functions.

A level that runs N times gives N values of each metric. The figure shown is their median (one
slow repetition cannot drag it far); the interval is Student's t 95 % interval of the mean,
mean +- t(0.975, N-1) * s / sqrt(N). We chose t over a bootstrap because N is small (3 by
default): a bootstrap of 3 values can only ever return their range, which covers the truth far
less than 95 % of the time, while the t interval is exact for normal noise at any N >= 2
(docs/metrics.md, "Repetitions").

A winner is named only when its interval and every other variant's do not overlap; otherwise it
is a tie within noise. With one repetition there is no interval, and the old rule (larger value
wins) applies, said as such.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)

# Level figures that get a median and an interval (the rest are counts or descriptions).
STAT_METRICS = ("gen_tps", "prompt_tps", "ttft_min_s", "ttft_max_s", "total_s", "request_throughput",
                "steady_gen_tps", "ttft_p50_s", "ttft_p99_s", "tpot_p50_ms", "itl_p50_ms", "itl_p99_ms",
                "e2e_p50_s", "success_rate", "goodput_rps")
# Counts: the level's total over its repetitions.
SUMMED = ("requests", "succeeded", "failed", "completion_tokens", "prompt_tokens", "full_length",
          "reasoning_tokens", "goodput_requests", "warmup_requests")
DEFAULT_PRECISION = 0.05


def t975(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def interval(values: Sequence[float]) -> dict[str, Any]:
    """{median, lo, hi, n}: the median and the 95 % t interval of the mean (lo = hi for one value)."""
    data = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(data)
    if n == 0:
        return {"median": None, "lo": None, "hi": None, "n": 0}
    median = statistics.median(data)
    if n == 1:
        return {"median": median, "lo": median, "hi": median, "n": 1}
    mean = math.fsum(data) / n
    half = t975(n - 1) * statistics.stdev(data) / math.sqrt(n)
    return {"median": median, "lo": mean - half, "hi": mean + half, "n": n}


def relative_half_width(stat: dict[str, Any]) -> float | None:
    """Half the interval's width over the median: 0.05 is "within 5 %"."""
    if not stat or stat.get("n", 0) < 2 or not stat.get("median"):
        return None
    return (stat["hi"] - stat["lo"]) / 2.0 / abs(stat["median"])


def precise_enough(stat: dict[str, Any], precision: float) -> bool:
    rel = relative_half_width(stat)
    return rel is not None and rel <= precision


def combine(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """One level from its repetitions: medians at the top level (old readers keep working),
    counts summed, every repetition under `repeats` and the spread under `stats`."""
    if len(repeats) == 1 and "repeats" in repeats[0]:
        return repeats[0]
    stats = {key: interval([r[key] for r in repeats if isinstance(r.get(key), (int, float))])
             for key in STAT_METRICS if any(isinstance(r.get(key), (int, float)) for r in repeats)}
    # Descriptions (errors, token sources, percentiles without a stat) come from the repetition
    # whose Gen TPS is the median, so they describe a run that really happened.
    order = sorted(range(len(repeats)), key=lambda i: repeats[i].get("gen_tps") or 0.0)
    level = dict(repeats[order[(len(order) - 1) // 2]])
    for key, stat in stats.items():
        level[key] = stat["median"]
    for key in SUMMED:
        if any(key in r for r in repeats):
            level[key] = sum(r.get(key) or 0 for r in repeats)
    level["t_start"] = min(r.get("t_start", 0.0) for r in repeats)
    level["t_end"] = max(r.get("t_end", 0.0) for r in repeats)
    level["errors"] = _merge_errors(repeats)
    level["repeats"] = [{k: v for k, v in r.items() if k not in ("repeats", "stats")} for r in repeats]
    level["stats"] = stats
    level["flags"] = sorted({f for r in repeats for f in r.get("flags") or []})
    noisy = [r["host_noise"] for r in repeats if r.get("host_noise")]
    if noisy:  # the busiest repetition speaks for the level: a verdict must know the worst
        level["host_noise"] = max(noisy, key=lambda h: h.get("other_cores") or 0.0)
    servers = [r["server"] for r in repeats if r.get("server")]
    if servers:
        level["server"] = dict(servers[order[(len(order) - 1) // 2]] if len(servers) == len(repeats) else servers[0])
        worst = [s["decode_disagree_pct"] for s in servers if s.get("decode_disagree_pct") is not None]
        if worst:
            level["server"]["decode_disagree_pct_worst"] = max(worst, key=abs)
    return level


BUSY_CORES = 0.5  # other processes using this much CPU during a level make it "host busy"


def repetition_flags(rep: dict[str, Any], disagree_pct: float = 10.0, busy_cores: float = BUSY_CORES) -> list[str]:
    """Why one repetition's figures may not be the server's: a busy host, or client and server
    disagreeing on generation speed (a client or tunnel bottleneck)."""
    flags = []
    noise = rep.get("host_noise") or {}
    other = noise.get("other_cores")
    if other is not None and other >= busy_cores:
        flags.append(f"host busy: {other:.1f} cores used by other processes")
    if noise.get("throttled"):
        flags.append(f"host throttled: {noise['throttled']}")
    server = rep.get("server") or {}
    if server.get("client_unmeasured"):
        flags.append(f"client could not time the tokens of {server['client_unmeasured']} response(s): each arrived "
                     "in one read (a tunnel or proxy buffered it), so its decode speed is the server's word only")
    pct = server.get("decode_disagree_pct")
    if pct is not None and abs(pct) > disagree_pct:
        flags.append(f"client and server disagree on generation speed: client {server['client_decode_tps_p50']:.1f}"
                     f" tok/s, server {server['server_decode_tps_p50']:.1f} tok/s ({pct:+.1f} %)")
    # Without per-response timings (vLLM) the server's counters (/metrics) speak for it.
    scraped = server.get("metrics") or {}
    pct = scraped.get("decode_disagree_pct") if server.get("decode_disagree_pct") is None else None
    if pct is not None and abs(pct) > disagree_pct:
        flags.append(f"client and server disagree on generation speed: client {scraped['client_decode_tps']:.1f}"
                     f" tok/s, server {scraped['server_decode_tps']:.1f} tok/s by /metrics ({pct:+.1f} %)")
    return flags


def _merge_errors(repeats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for r in repeats:
        for e in r.get("errors") or []:
            g = groups.get(e["kind"])
            if g is None:
                groups[e["kind"]] = dict(e)
                continue
            g["count"] += e["count"]
            for key, pick in (("after_s_min", min), ("after_s_max", max)):
                known = [x for x in (g.get(key), e.get(key)) if x is not None]
                g[key] = pick(known) if known else None
    return sorted(groups.values(), key=lambda g: -g["count"])


def stat_of(level: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The level's interval for `key`; an old level (one run, no stats) reads as n = 1."""
    if level is None:
        return None
    stat = (level.get("stats") or {}).get(key)
    if stat is not None:
        return stat
    value = level.get(key)
    if not isinstance(value, (int, float)):
        return None
    return {"median": float(value), "lo": float(value), "hi": float(value), "n": 1}


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["lo"] <= b["hi"] and b["lo"] <= a["hi"]


def verdict(entries: list[tuple[str, dict[str, Any] | None]], higher_is_better: bool = True) -> dict[str, Any]:
    """Who wins, or a tie within noise.

    {"kind": "winner" | "tie" | "none", "name", "value", "names" (tied), "n" (fewest repetitions
    any entry rests on), "tested": whether intervals decided it}."""
    known = [(name, s) for name, s in entries if s is not None and s.get("median") is not None]
    if not known:
        return {"kind": "none", "names": [], "n": 0, "tested": False}
    sign = 1.0 if higher_is_better else -1.0
    known.sort(key=lambda p: -sign * p[1]["median"])
    best_name, best = known[0]
    n = min(s["n"] for _, s in known)
    if len(known) == 1:
        return {"kind": "winner", "name": best_name, "value": best["median"], "names": [best_name], "n": n,
                "tested": False}
    if n < 2:  # no interval: the larger value wins, as before repetitions existed
        tied = [name for name, s in known if s["median"] == best["median"]]
        kind = "winner" if len(tied) == 1 else "tie"
        return {"kind": kind, "name": best_name, "value": best["median"], "names": tied, "n": n, "tested": False}
    tied = [name for name, s in known if name == best_name or overlap(best, s)]
    kind = "winner" if len(tied) == 1 else "tie"
    return {"kind": kind, "name": best_name, "value": best["median"], "names": tied, "n": n, "tested": True}


def fmt_interval(stat: dict[str, Any] | None, digits: int = 2) -> str:
    """'123.45 ±2.1 %' (the half-width relative to the median); the bare value for one run."""
    if stat is None or stat.get("median") is None:
        return "-"
    rel = relative_half_width(stat)
    if rel is None:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} ±{100 * rel:.1f}%"


def repeat_note(level: dict[str, Any]) -> str:
    """What the terminal line adds for a repeated or flagged level: ' (median of 3, ±2.1%; host busy: ...)'."""
    parts = []
    stat = (level.get("stats") or {}).get("gen_tps")
    if stat and stat.get("n", 1) > 1:
        rel = relative_half_width(stat)
        parts.append(f"median of {stat['n']}" + (f", ±{100 * rel:.1f}%" if rel is not None else ""))
    flags = level.get("flags") or []
    text = "; ".join(parts + list(flags))
    return f" ({text})" if text else ""
