"""Energy per benchmark level from the power collectors' samples (pure; docs/metrics.md, "Energy").

Two kinds of source, both turned into a cumulative energy curve E(t) in joules:

- counters (RAPL energy_uj, hwmon energy1_input): differenced sample to sample; a value below
  the previous one is a wrap, and max_energy_range_uj is added back (a counter without a known
  range that goes down is a reset: that step counts nothing);
- sampled power (amd-smi, rocm-smi, nvidia-smi, hwmon power1_*): integrated by the trapezoid
  rule between samples.

A window's energy is E(end) - E(start), with E interpolated linearly at the window's edges, so
a level shorter than the sampling interval still gets the share of the bracketing interval it
spans. Where the samples cover only part of the window, the mean power over the covered part
stands for the whole window and `covered_s` says how much was seen.

Several devices of one source (8 GPUs, two CPU packages) are added up. Different sources are
never added (amd-smi socket power and RAPL on an APU measure the same silicon): one is chosen,
GPU tools first, and every source found is listed under `by_source`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

ORDER = ("amd-smi", "rocm-smi", "nvidia-smi", "rapl", "hwmon")
COLLECTOR_SOURCE = {"amd-smi-power": "amd-smi", "rocm-smi-power": "rocm-smi", "nvidia-smi-power": "nvidia-smi"}
NO_SOURCE = "no power source (no RAPL, hwmon power, amd-smi, rocm-smi or nvidia-smi on this host)"

Curve = list[tuple[float, float]]  # (t, joules so far), t increasing


def unwrap(values: list[tuple[float, int]], max_range: int | None) -> Curve:
    """Cumulative joules from (t, microjoule counter) pairs: wraps added back, resets skipped."""
    curve: Curve = []
    total = 0.0
    previous: int | None = None
    for t, value in values:
        if previous is not None:
            step = value - previous
            if step < 0:
                step = step + max_range if max_range else 0
            total += step / 1e6
        previous = value
        curve.append((t, total))
    return curve


def integrate(values: list[tuple[float, float]]) -> Curve:
    """Cumulative joules from (t, watts) samples by the trapezoid rule."""
    curve: Curve = []
    total = 0.0
    for i, (t, watts) in enumerate(values):
        if i:
            t0, w0 = values[i - 1]
            total += (t - t0) * (w0 + watts) / 2
        curve.append((t, total))
    return curve


def add_curves(curves: list[Curve]) -> Curve:
    """The sum of several devices' curves at the times they were all sampled together."""
    if len(curves) == 1:
        return curves[0]
    common = sorted(set.intersection(*(set(t for t, _ in c) for c in curves))) if curves else []
    lookup = [dict(c) for c in curves]
    return [(t, sum(d[t] for d in lookup)) for t in common]


def at(curve: Curve, t: float) -> float:
    """E(t) by linear interpolation; t must lie within the curve."""
    times = [p[0] for p in curve]
    i = bisect_left(times, t)
    if i < len(curve) and curve[i][0] == t:
        return curve[i][1]
    (t0, e0), (t1, e1) = curve[i - 1], curve[i]
    return e0 + (e1 - e0) * (t - t0) / (t1 - t0)


def window(curve: Curve, start: float, end: float) -> dict[str, Any] | None:
    """joules, mean_watts, seconds, covered_s and samples of [start, end]; None if nothing covers it."""
    if len(curve) < 2 or end <= start:
        return None
    a, b = max(start, curve[0][0]), min(end, curve[-1][0])
    if b <= a:
        return None
    covered = b - a
    mean = (at(curve, b) - at(curve, a)) / covered
    seconds = end - start
    out = {"joules": mean * seconds, "mean_watts": mean, "seconds": seconds,
           "samples": sum(1 for t, _ in curve if start <= t <= end)}
    if covered < seconds - 1e-9:
        out["covered_s"] = covered
    return out


# --- samples to curves ----------------------------------------------------------------------------

def curves_by_source(samples: Iterable[Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{source: {"curve", "kind", "devices"}} and notes on what could not be read (for the reason).

    `samples` are gpumem.GpuSample of power collectors (t on the controller's clock)."""
    power: dict[str, dict[str, list[tuple[float, float]]]] = {}
    counters: dict[str, dict[str, list[tuple[float, int]]]] = {}
    ranges: dict[str, int] = {}
    notes: list[str] = []
    for s in sorted(samples, key=lambda s: s.t):
        if s.telemetry is None:
            note = f"{s.collector}: {s.error}"
            if note not in notes:
                notes.append(note)
            continue
        for d in s.telemetry.devices:
            source = COLLECTOR_SOURCE.get(s.collector) or d.get("source") or s.collector
            label = _label(d)
            for file in d.get("denied") or []:
                note = (f"permission denied: /sys/{d.get('path')}/{file} is readable by root only "
                        "(Linux 5.10+); run as root or grant read access to measure RAPL energy")
                if note not in notes:
                    notes.append(note)
            if source == "rapl" and not d.get("top"):
                continue  # subzones (core, uncore, dram) are inside their package's figure
            if source == "rapl" and (d.get("name") or "").startswith("psys") and _has_packages(s):
                continue  # psys is the whole platform, packages included
            if d.get("energy_uj") is not None:
                counters.setdefault(source, {}).setdefault(label, []).append((s.t, int(d["energy_uj"])))
                if d.get("max_energy_range_uj"):
                    ranges[f"{source}/{label}"] = int(d["max_energy_range_uj"])
            elif d.get("power_watts") is not None:
                power.setdefault(source, {}).setdefault(label, []).append((s.t, float(d["power_watts"])))
    out: dict[str, dict[str, Any]] = {}
    for source, devices in counters.items():
        curves = [unwrap(v, ranges.get(f"{source}/{label}")) for label, v in sorted(devices.items())]
        out[source] = {"curve": add_curves(curves), "kind": "energy counter", "devices": sorted(devices)}
    for source, devices in power.items():
        if source in out:  # a counter beats sampled power of the same source; say what was left out
            notes.append(f"{source}: sampled power of {', '.join(sorted(devices))} not added "
                         f"(the energy counters of {', '.join(out[source]['devices'])} are used)")
            continue
        curves = [integrate(v) for _, v in sorted(devices.items())]
        out[source] = {"curve": add_curves(curves), "kind": "sampled power", "devices": sorted(devices)}
    for source in ("amd-smi", "rocm-smi", "nvidia-smi"):
        collector = f"{source}-power"
        if source not in out and any(s.collector == collector and s.telemetry is not None for s in samples):
            notes.append(f"{source} reports no power reading (N/A) on this host's GPUs")
    return out, notes


def _label(d: dict[str, Any]) -> str:
    name = d.get("name")
    if d.get("source") in ("rapl", "hwmon"):
        return f"{d.get('path', '').rsplit('/', 1)[-1]}" + (f" ({name})" if name else "")
    return f"GPU {d.get('index')}" + (f" ({name})" if name else "")


def _has_packages(sample: Any) -> bool:
    return any(d.get("top") and (d.get("name") or "").startswith("package") for d in sample.telemetry.devices)


# --- levels ---------------------------------------------------------------------------------------

def measured_window(level: dict[str, Any]) -> tuple[float, float] | None:
    """The measured requests' span: the last total_s seconds of the level (warm-up comes first)."""
    start, end = level.get("t_start"), level.get("t_end")
    if start is None or end is None:
        return None
    total = level.get("total_s") or 0.0
    return (max(start, end - total), end) if 0 < total <= end - start + 1e-6 else (start, end)


def choose(sources: dict[str, dict[str, Any]], wanted: str | None = None) -> str | None:
    if wanted:
        return wanted if wanted in sources else None
    return next((s for s in ORDER if s in sources), next(iter(sorted(sources)), None))


def mark_levels(levels: list[dict[str, Any]], samples: list[Any], idle_window: tuple[float, float] | None,
                *, wanted: str | None = None, enabled: bool = True) -> dict[str, Any]:
    """Add `energy` to every level (and each of its repetitions); return the cell's summary
    {source, idle_watts, idle_s, kind, devices, by_source} or {source: None, reason}."""
    sources: dict[str, dict[str, Any]] = {}
    if not enabled:
        summary: dict[str, Any] = {"source": None, "reason": "power sampling is off (telemetry.power: false)"}
    else:
        sources, notes = curves_by_source(samples)
        chosen = choose(sources, wanted)
        if chosen is None:
            reason = NO_SOURCE if not notes else "; ".join(notes)
            if wanted and sources:
                reason = f"telemetry.power_source {wanted!r} gave no readings (found: {', '.join(sorted(sources))})"
            summary = {"source": None, "reason": reason}
        else:
            summary = _summary(sources, chosen, idle_window, notes)
    for level in levels:
        level["energy"] = _level_energy(level, summary, sources if summary.get("source") else {})
    return summary


def _summary(sources: dict[str, dict[str, Any]], chosen: str, idle_window: tuple[float, float] | None,
             notes: list[str]) -> dict[str, Any]:
    info = sources[chosen]
    idle = window(info["curve"], *idle_window) if idle_window else None
    summary: dict[str, Any] = {"source": chosen, "kind": info["kind"], "devices": info["devices"],
                               "idle_watts": idle["mean_watts"] if idle else None,
                               "idle_s": idle["seconds"] if idle else None}
    if idle is None:
        summary["idle_note"] = ("no idle measurement (telemetry.idle_power_s is 0, or no power collector "
                                "gave a reading when the server became ready)" if not idle_window
                                else "too few samples in the idle window")
    if len(sources) > 1:
        summary["by_source"] = {}
        for name, other in sorted(sources.items()):
            idle_other = window(other["curve"], *idle_window) if idle_window else None
            summary["by_source"][name] = {"kind": other["kind"], "devices": other["devices"],
                                          "idle_watts": idle_other["mean_watts"] if idle_other else None}
    if notes:
        summary["notes"] = notes
    return summary


def _level_energy(level: dict[str, Any], summary: dict[str, Any], sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not summary.get("source"):
        return {"source": None, "reason": summary["reason"]}
    reps = level.get("repeats") or []
    parts = []
    for rep in reps or [level]:
        span = measured_window(rep)
        got = window(sources[summary["source"]]["curve"], *span) if span else None
        if reps:
            rep["energy"] = _figures(summary, got, rep.get("completion_tokens"))
        if got is not None:
            parts.append(got)
    if not parts:
        return {"source": summary["source"], "joules": None,
                "reason": "no power samples cover this level (the sampler started late or stopped early)"}
    total = {"joules": sum(p["joules"] for p in parts), "seconds": sum(p["seconds"] for p in parts),
             "samples": sum(p["samples"] for p in parts)}
    total["mean_watts"] = total["joules"] / total["seconds"]
    covered = [p.get("covered_s", p["seconds"]) for p in parts]
    if sum(covered) < total["seconds"] - 1e-9:
        total["covered_s"] = sum(covered)
    return _figures(summary, total, level.get("completion_tokens"))


def _figures(summary: dict[str, Any], got: dict[str, Any] | None, tokens: int | None) -> dict[str, Any]:
    if got is None:
        return {"source": summary["source"], "joules": None, "reason": "no power samples during this window"}
    idle = summary.get("idle_watts")
    out = {"source": summary["source"], "joules": got["joules"], "mean_watts": got["mean_watts"],
           "idle_watts": idle, "joules_above_idle": got["joules"] - idle * got["seconds"] if idle is not None else None,
           "tokens_per_joule": tokens / got["joules"] if tokens and got["joules"] > 0 else None,
           "seconds": got["seconds"], "samples": got["samples"]}
    if "covered_s" in got:
        out["covered_s"] = got["covered_s"]
    return out
