"""Which GPU collectors to run on a host, chosen from its facts unless the user says otherwise.

amd-smi when present (it knows GTT and per-process memory), else rocm-smi; nvidia-smi for
NVIDIA; sysfs for AMD cards as a cheap second opinion on device totals. The /proc collector
is not listed here: the agent's sampler always reads /proc itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.errors import LlmopsError
from llmops.plugins.api import Collector

AMD_VENDOR = "0x1002"
NVIDIA_VENDOR = "0x10de"
PROCESS_COLLECTORS = ("amd-smi", "rocm-smi-pids", "nvidia-smi-apps")


def choose(facts: Mapping[str, Any], available: Mapping[str, Collector],
           override: list[str] | None = None) -> list[Collector]:
    if override is not None:
        unknown = [n for n in override if n not in available and n != "proc"]
        if unknown:
            raise LlmopsError(f"unknown collector(s) {', '.join(unknown)}; installed: {', '.join(sorted(available))}")
        return [available[n] for n in override if n != "proc"]
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
    return [available[n] for n in names if n in available]
