"""Which GPU collectors to run on a host, chosen from its facts unless the user says otherwise.

amd-smi when present (it knows GTT and per-process memory), else rocm-smi; nvidia-smi for
NVIDIA; sysfs for AMD cards as a cheap second opinion on device totals. Power collectors
(energy per level) come after them: the GPU tool's power query and sysfs RAPL/hwmon. The /proc collector
is not listed here: the agent's sampler always reads /proc itself.

Every collector's `requires` (the program it runs) is honoured: a collector whose program is
not on the host is never chosen, and a third-party collector (any name not built in) is chosen
exactly when its program is there (or when it requires nothing), so installing a plugin for a
tool the host has is enough to get it sampled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.errors import LlmopsError
from llmops.plugins.api import Collector

AMD_VENDOR = "0x1002"
NVIDIA_VENDOR = "0x10de"
PROCESS_COLLECTORS = ("amd-smi", "rocm-smi-pids", "nvidia-smi-apps")
# Chosen by the vendor rules below; any other installed collector is chosen by its `requires`.
BUILTIN = ("amd-smi", "amd-smi-metric", "rocm-smi", "rocm-smi-pids", "nvidia-smi", "nvidia-smi-apps", "sysfs",
           "amd-smi-power", "rocm-smi-power", "nvidia-smi-power", "sysfs-power")


def required_programs(available: Mapping[str, Collector]) -> list[str]:
    """Programs the installed collectors need, for the facts to look up on each host."""
    return sorted({c.requires for c in available.values() if getattr(c, "requires", None)})


def _present(collector: Collector, tools: Mapping[str, Any]) -> bool:
    needed = getattr(collector, "requires", None)
    return not needed or bool(tools.get(needed))


def choose(facts: Mapping[str, Any], available: Mapping[str, Collector],
           override: list[str] | None = None, *, power: bool = True) -> list[Collector]:
    """Memory collectors (the override, else by facts), then power collectors (by facts, unless
    the override names one of them itself, or power is off)."""
    if override is not None:
        unknown = [n for n in override if n not in available and n != "proc"]
        if unknown:
            raise LlmopsError(f"unknown collector(s) {', '.join(unknown)}; installed: {', '.join(sorted(available))}")
        chosen = [available[n] for n in override if n != "proc"]
        if power and not any(getattr(c, "measures", "memory") == "power" for c in chosen):
            chosen += power_collectors(facts, available)
        return chosen
    chosen = _memory(facts, available)  # built-in power collectors are not among these
    return chosen + (power_collectors(facts, available) if power else [])


def power_collectors(facts: Mapping[str, Any], available: Mapping[str, Collector]) -> list[Collector]:
    """One power collector per GPU tool present, and sysfs (RAPL, hwmon), which needs only sh."""
    tools = facts.get("tools") or {}
    names = ["amd-smi-power" if tools.get("amd-smi") else "rocm-smi-power" if tools.get("rocm-smi") else "",
             "nvidia-smi-power" if tools.get("nvidia-smi") else "", "sysfs-power"]
    return [available[n] for n in names if n in available and _present(available[n], tools)]


def _memory(facts: Mapping[str, Any], available: Mapping[str, Collector]) -> list[Collector]:
    tools = facts.get("tools") or {}
    cards = facts.get("gpus_sysfs") or []
    names: list[str] = []
    if tools.get("amd-smi"):
        names += ["amd-smi", "amd-smi-metric"]
    elif tools.get("rocm-smi"):
        names += ["rocm-smi", "rocm-smi-pids"]
    if tools.get("nvidia-smi"):
        names += ["nvidia-smi", "nvidia-smi-apps"]
    if any(c.get("vendor_id") == AMD_VENDOR and "mem_info_vram_total" in c for c in cards):
        names.append("sysfs")
    names += [n for n in sorted(available) if n not in BUILTIN]
    return [available[n] for n in names if n in available and _present(available[n], tools)]
