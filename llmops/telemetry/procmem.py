"""System memory of a server's process tree, from the agent's /proc samples (pure functions).

A sample is one line of the agent's sampler: {"t": host time, "kind": "proc", "procs": [{pid,
ppid, comm, rss_kb, pss_kb, swap_kb}]}. PSS (proportional set size) splits shared pages
between the processes that map them, so summing it over vLLM's API server, EngineCore and
workers does not count shared libraries three times; RSS is the fallback when PSS is not
readable (old kernels without smaps_rollup, or another user's processes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class TreeSample:
    t: float  # controller clock
    bytes: int
    source: str  # pss | rss
    procs: list[dict[str, Any]]
    # A container's memory cgroup at this sample (agent's cgroup_memory): what the kernel charges
    # to the container, page cache included, beside the PSS of its processes.
    cgroup: dict[str, Any] | None = None


def tree_bytes(procs: list[dict[str, Any]]) -> tuple[int, str]:
    """Sum over the tree; PSS when every process has it, else RSS."""
    if procs and all(p.get("pss_kb") is not None for p in procs):
        return sum(int(p["pss_kb"]) for p in procs) * 1024, "pss"
    return sum(int(p.get("rss_kb") or 0) for p in procs) * 1024, "rss"


def read_samples(lines: Iterable[str], clock_offset: float = 0.0) -> list[TreeSample]:
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: skip it, keep the rest
        if doc.get("kind") != "proc":
            continue
        procs = doc.get("procs") or []
        if not procs:
            continue
        total, source = tree_bytes(procs)
        cgroup = doc.get("cgroup") if isinstance(doc.get("cgroup"), dict) else None
        out.append(TreeSample(t=float(doc["t"]) - clock_offset, bytes=total, source=source, procs=procs,
                              cgroup=cgroup))
    return out


def peak_between(samples: list[TreeSample], start: float, end: float) -> TreeSample | None:
    window = [s for s in samples if start <= s.t <= end]
    return max(window, key=lambda s: s.bytes) if window else None


def by_process(sample: TreeSample) -> list[dict[str, Any]]:
    """Per-process view for reports: who holds what (vLLM's EngineCore, workers...)."""
    rows = []
    for p in sample.procs:
        value = p.get("pss_kb") if sample.source == "pss" else p.get("rss_kb")
        rows.append({"pid": p.get("pid"), "comm": p.get("comm"), "bytes": int(value or 0) * 1024})
    return sorted(rows, key=lambda r: -r["bytes"])


def summarize(samples: list[TreeSample], idle: TreeSample | None, levels: list[dict[str, Any]],
              bench_window: tuple[float, float] | None) -> dict[str, Any]:
    """idle (after ready), peak (during the benchmark), per-level peaks, and the timeline."""
    source = idle.source if idle else (samples[0].source if samples else None)
    out: dict[str, Any] = {"source": source, "idle_bytes": idle.bytes if idle else None, "peak_bytes": None,
                           "samples": len(samples)}
    if idle:
        out["idle_processes"] = by_process(idle)
    if bench_window:
        peak = peak_between(samples, *bench_window)
        if peak is not None:
            out["peak_bytes"] = max(peak.bytes, idle.bytes if idle else 0)
            out["peak_processes"] = by_process(peak)
    if out["peak_bytes"] is None:
        candidates = [s.bytes for s in samples] + ([idle.bytes] if idle else [])
        out["peak_bytes"] = max(candidates) if candidates else None
    per_level = []
    for level in levels:
        start, end = level.get("t_start"), level.get("t_end")
        if start is None or end is None:
            continue
        peak = peak_between(samples, start, end)
        per_level.append({"concurrency": level.get("concurrency"), "peak_bytes": peak.bytes if peak else None})
    out["per_level"] = per_level
    cgroup = cgroup_summary(samples, idle, bench_window)
    if cgroup:
        out["cgroup"] = cgroup
    return out


def cgroup_summary(samples: list[TreeSample], idle: TreeSample | None,
                   bench_window: tuple[float, float] | None) -> dict[str, Any] | None:
    """The container's cgroup figures: at idle and the peak of the benchmark. Usage is what
    `podman stats` shows (seen here, cgroup v1); the working set (usage less inactive file cache)
    is what docker's CLI shows, by its documentation."""
    marked = [s for s in samples if s.cgroup]
    first = (idle.cgroup if idle and idle.cgroup else None) or (marked[0].cgroup if marked else None)
    if first is None:
        return None
    idle_cg = idle.cgroup if idle and idle.cgroup else None
    # The peak is over the benchmark (samples taken while the container shut down do not count),
    # and never below the idle reading.
    window = [s for s in marked if bench_window is None or bench_window[0] <= s.t <= bench_window[1]]

    def peak(key: str) -> int | None:
        values = [int(s.cgroup[key]) for s in window if s.cgroup and s.cgroup.get(key) is not None]
        if idle_cg and idle_cg.get(key) is not None:
            values.append(int(idle_cg[key]))
        return max(values) if values else None

    return {"version": first.get("version"), "path": first.get("path"),
            "idle_working_set_bytes": idle_cg.get("working_set_bytes") if idle_cg else None,
            "idle_usage_bytes": idle_cg.get("usage_bytes") if idle_cg else None,
            "peak_working_set_bytes": peak("working_set_bytes"), "peak_usage_bytes": peak("usage_bytes"),
            "samples": len(marked)}
