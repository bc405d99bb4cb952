"""How busy the host was with other work during a level: the difference of two `hostagent
noise` snapshots (taken at the level's start and end). Pure; docs/metrics.md, "Host noise".

"Other work" is CPU time the kernel counted as busy (/proc/stat: everything but idle and
iowait, steal included) minus the server's process tree and minus the processes the
controller named as its own (the load generator, when it runs on the same host). Summing the
whole machine rather than every other process catches processes that started or ended during
the level too.
"""

from __future__ import annotations

from typing import Any

from llmops.telemetry.select import PROCESS_COLLECTORS


def between(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """Cores used by other processes (and the rest) between snapshots a and b; None when unusable."""
    try:
        wall = float(b["t"]) - float(a["t"])
        total = int(b["cpu_total"]) - int(a["cpu_total"])
        idle = int(b["cpu_idle"]) - int(a["cpu_idle"])
        hz = float(b.get("clk_tck") or 100)
        ncpu = int(b.get("ncpu") or 1)
    except (KeyError, TypeError, ValueError):
        return None
    if wall <= 0 or total <= 0:
        return None
    # Cores from ticks: ticks over all CPUs in the interval, scaled to the number of CPUs.
    cores = ncpu / total
    busy = max(total - idle, 0)
    tree = max(int(b.get("tree_ticks") or 0) - int(a.get("tree_ticks") or 0), 0)
    own = max(int(b.get("excluded_ticks") or 0) - int(a.get("excluded_ticks") or 0), 0)
    other = max(busy - tree - own, 0)
    out: dict[str, Any] = {
        "seconds": wall,
        "ncpu": ncpu,
        "busy_cores": busy * cores,
        "steal_cores": max(int(b.get("cpu_steal") or 0) - int(a.get("cpu_steal") or 0), 0) * cores,
        "server_cores": tree / hz / wall,
        "controller_cores": own / hz / wall,
        "other_cores": other * cores,
        "loadavg_1m": (b.get("loadavg") or [None])[0],
    }
    if b.get("freq_cur_khz") and b.get("freq_max_khz"):
        out["freq_ratio"] = b["freq_cur_khz"] / b["freq_max_khz"]
    if a.get("throttle_count") is not None and b.get("throttle_count") is not None:
        events = b["throttle_count"] - a["throttle_count"]
        out["throttle_events"] = events
        if events > 0:
            out["throttled"] = f"{events} thermal throttle events"
    return out


def gpu_others(samples: list[Any], tree_pids: set[int], start: float, end: float) -> list[dict[str, Any]] | None:
    """Processes outside the server's tree that held GPU memory between start and end, from the
    process-listing GPU collectors' samples (GpuSample); None when no such sample covers it."""
    seen: dict[int, dict[str, Any]] = {}
    covered = False
    for s in samples:
        if s.telemetry is None or not (start <= s.t <= end) or s.collector not in PROCESS_COLLECTORS:
            continue
        covered = True
        for p in s.telemetry.processes:
            pid = p.get("pid")
            if pid is None or pid in tree_pids:
                continue
            held = (p.get("vram_bytes") or 0) + (p.get("gtt_bytes") or 0)
            known = seen.get(pid)
            if known is None or held > known["bytes"]:
                seen[pid] = {"pid": pid, "name": p.get("name"), "bytes": held}
    return sorted(seen.values(), key=lambda p: -p["bytes"]) if covered else None


def mark_gpu_others(levels: list[dict[str, Any]], samples: list[Any], tree_pids: set[int]) -> None:
    """Add `gpu_other_processes` to each repetition's and level's host_noise, and a flag where
    another process held the GPU during it (the samples come home only after the server stops)."""
    for level in levels:
        for rep in level.get("repeats") or [level]:
            others = gpu_others(samples, tree_pids, rep.get("t_start", 0.0), rep.get("t_end", 0.0))
            if others is None:
                continue
            rep.setdefault("host_noise", {})["gpu_other_processes"] = others
            if others:
                mib = sum(p["bytes"] for p in others) / 1048576
                flag = f"GPU shared: {len(others)} other processes held {mib:.0f} MiB"
                for target in {id(rep): rep, id(level): level}.values():
                    if flag not in target.setdefault("flags", []):
                        target["flags"].append(flag)
