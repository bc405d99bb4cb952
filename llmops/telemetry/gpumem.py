"""GPU memory of a server's process tree, from collector samples (pure functions).

A sample is one line of the agent's sampler: {"t", "kind": "tool", "collector", "rc",
"timed_out", "out", "err"}. Each is parsed by its collector into the normalised telemetry
(devices + processes); the server's share is the sum over the processes whose PID belongs to
its tree (vLLM's EngineCore and workers included), VRAM and GTT kept apart. Device-level
totals are reported alongside and labelled as such: they include every other process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmops.plugins.api import Collector, Telemetry


@dataclass
class GpuSample:
    t: float  # controller clock
    collector: str
    telemetry: Telemetry | None
    error: str | None = None


def read_tool_samples(lines: Iterable[str], collectors: Mapping[str, Collector],
                      clock_offset: float = 0.0) -> list[GpuSample]:
    out: list[GpuSample] = []
    uuid_map: dict[str, int] | None = None
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("kind") != "tool":
            continue
        name = doc.get("collector", "?")
        t = float(doc.get("t", 0.0)) - clock_offset
        if doc.get("timed_out"):
            out.append(GpuSample(t, name, None, "timed out"))
            continue
        if doc.get("rc") not in (0, None):
            out.append(GpuSample(t, name, None, f"exit {doc.get('rc')}: {(doc.get('err') or doc.get('out') or '')[-300:]}"))
            continue
        collector = collectors.get(name)
        if collector is None:
            out.append(GpuSample(t, name, None, "no such collector installed"))
            continue
        try:
            telemetry = parse_with(collector, name, doc.get("out") or "", uuid_map)
        except Exception as exc:  # noqa: BLE001 - one bad capture must not lose the others
            out.append(GpuSample(t, name, None, f"{type(exc).__name__}: {exc}"))
            continue
        if name == "nvidia-smi":
            from llmops.telemetry import nvidiasmi

            uuid_map = nvidiasmi.uuid_index(telemetry)
        out.append(GpuSample(t, name, telemetry))
    return out


def parse_with(collector: Collector, name: str, text: str, uuid_map: dict[str, int] | None) -> Telemetry:
    if name == "nvidia-smi-apps" and uuid_map:
        from llmops.telemetry import nvidiasmi

        return nvidiasmi.parse(text, uuid_index=uuid_map)
    return collector.parse(text)


def tree_usage(sample: GpuSample, pids: set[int]) -> dict[str, Any] | None:
    """VRAM and GTT held by the tree's processes in one sample (None: this tool has no processes)."""
    if sample.telemetry is None or sample.collector not in ("amd-smi", "rocm-smi-pids", "nvidia-smi-apps"):
        return None
    vram = gtt = 0
    seen_vram = seen_gtt = False
    holders = []
    for p in sample.telemetry.processes:
        if p.get("pid") not in pids:
            continue
        if p.get("vram_bytes") is not None:
            vram += int(p["vram_bytes"])
            seen_vram = True
        if p.get("gtt_bytes") is not None:
            gtt += int(p["gtt_bytes"])
            seen_gtt = True
        holders.append({"pid": p.get("pid"), "name": p.get("name"), "vram_bytes": p.get("vram_bytes"),
                        "gtt_bytes": p.get("gtt_bytes"), "gpus": p.get("gpus")})
    return {"vram_bytes": vram if seen_vram else None, "gtt_bytes": gtt if seen_gtt else None,
            "processes": holders}


def device_usage(sample: GpuSample) -> dict[str, Any] | None:
    """Whole-device totals (every process on the GPUs, not only the server's)."""
    if sample.telemetry is None or not sample.telemetry.devices:
        return None
    out: dict[str, Any] = {}
    for key in ("vram_used_bytes", "vram_total_bytes", "gtt_used_bytes", "gtt_total_bytes"):
        values = [d.get(key) for d in sample.telemetry.devices if d.get(key) is not None]
        out[key] = sum(values) if values else None
    out["devices"] = len(sample.telemetry.devices)
    return out if any(out[k] is not None for k in out if k != "devices") else None


def _total(u: Mapping[str, Any] | None) -> int:
    if not u:
        return -1
    return int(u.get("vram_bytes") or u.get("vram_used_bytes") or 0) + int(u.get("gtt_bytes") or u.get("gtt_used_bytes") or 0)


def summarize(samples: list[GpuSample], pids: set[int], ready_t: float | None,
              bench_window: tuple[float, float] | None, levels: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Idle (first sample after ready), peak (during the benchmark) and per-level peaks, for the
    tree (`process`) and for the devices (`device`); None when no GPU collector produced data."""
    if not samples:
        return None
    errors: dict[str, str] = {}
    for s in samples:
        if s.error:
            errors.setdefault(s.collector, s.error)
    tree = [(s.t, u) for s in samples if (u := tree_usage(s, pids)) is not None]
    dev = [(s.t, u) for s in samples if (u := device_usage(s)) is not None]

    def idle_of(series: list[tuple[float, dict[str, Any]]]) -> dict[str, Any] | None:
        if not series:
            return None
        start = ready_t if ready_t is not None else series[0][0]
        end = bench_window[0] if bench_window else float("inf")
        window = [u for t, u in series if start <= t <= end]
        if window:
            return window[0]
        before = [u for t, u in series if t <= end]
        return before[-1] if before else series[0][1]

    def peak_of(series: list[tuple[float, dict[str, Any]]], start: float, end: float) -> dict[str, Any] | None:
        window = [u for t, u in series if start <= t <= end]
        return max(window, key=_total) if window else None

    out: dict[str, Any] = {"sources": sorted({s.collector for s in samples if s.telemetry is not None})}
    if errors:
        out["errors"] = errors
    if tree:
        idle = idle_of(tree)
        peak = peak_of(tree, *bench_window) if bench_window else None
        out["process"] = {"idle": _strip(idle), "peak": _strip(peak or idle),
                          "per_level": [{"concurrency": lv.get("concurrency"),
                                         "peak": _strip(peak_of(tree, lv["t_start"], lv["t_end"]))}
                                        for lv in levels if lv.get("t_start") is not None],
                          "holders": (peak or idle or {}).get("processes", [])}
    if dev:
        idle_d = idle_of(dev)
        peak_d = peak_of(dev, *bench_window) if bench_window else None
        out["device"] = {"idle": idle_d, "peak": peak_d or idle_d, "note": "whole GPUs: every process, not only the server"}
    return out if ("process" in out or "device" in out or errors) else None


def _strip(u: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"vram_bytes": u.get("vram_bytes"), "gtt_bytes": u.get("gtt_bytes")}


def still_holding(sample: GpuSample, pids: set[int]) -> list[dict[str, Any]]:
    """After stop: processes of the server that still hold GPU memory (they should be none)."""
    usage = tree_usage(sample, pids)
    if not usage:
        return []
    return [p for p in usage["processes"] if (p.get("vram_bytes") or 0) > 0 or (p.get("gtt_bytes") or 0) > 0]
