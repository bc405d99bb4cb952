"""GPU memory attributed to a server's process tree, the release check, the automatic choice of
collectors and the facts summary: pure functions fed with real captures."""

from __future__ import annotations

import json
from pathlib import Path

from llmops.plugins.registry import registry
from llmops.telemetry import facts, gpumem, select

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telemetry"
VLLM_4GPU = "amd-smi_process_json__roctop-testdata-4xR9700-rocm72-vllm.txt"
LLAMA_H200 = "nvidia-smi_query-compute-apps_csv__h200-llama-server-np4.txt"


def tool_line(collector: str, fixture: str, t: float) -> str:
    return json.dumps({"t": t, "kind": "tool", "collector": collector, "rc": 0, "timed_out": False,
                       "out": (FIXTURES / fixture).read_text(), "err": ""})


def test_tree_share_counts_each_pid_once_and_keeps_vram_and_gtt_apart() -> None:
    collectors = registry().collectors()
    samples = gpumem.read_tool_samples([tool_line("amd-smi", VLLM_4GPU, 100.0)], collectors)
    [sample] = samples
    # vLLM's tensor-parallel workers 1883505..1883508 are ours; the two small python processes are not.
    ours = {1883505, 1883506, 1883507, 1883508}
    usage = gpumem.tree_usage(sample, ours)
    expected_vram = sum(p["vram_bytes"] for p in sample.telemetry.processes if p["pid"] in ours)
    assert usage["vram_bytes"] == expected_vram > 100 * 10**9  # ~116 GB, not 4x that (listed under 4 GPUs)
    assert usage["gtt_bytes"] == sum(p["gtt_bytes"] for p in sample.telemetry.processes if p["pid"] in ours)
    assert {p["pid"] for p in usage["processes"]} == ours


def test_summary_idle_peak_and_levels() -> None:
    collectors = registry().collectors()
    lines = [tool_line("nvidia-smi-apps", LLAMA_H200, t) for t in (10.0, 20.0, 30.0)]
    samples = gpumem.read_tool_samples(lines, collectors)
    levels = [{"concurrency": 1, "t_start": 15.0, "t_end": 25.0}]
    summary = gpumem.summarize(samples, {4823}, ready_t=9.0, bench_window=(15.0, 35.0), levels=levels)
    assert summary["sources"] == ["nvidia-smi-apps"]
    assert summary["process"]["idle"] == {"vram_bytes": 2346 * 2**20, "gtt_bytes": None}
    assert summary["process"]["peak"]["vram_bytes"] == 2346 * 2**20
    assert summary["process"]["per_level"][0]["peak"]["vram_bytes"] == 2346 * 2**20
    assert gpumem.summarize(samples, {999}, 9.0, (15.0, 35.0), levels)["process"]["peak"]["vram_bytes"] is None


def test_release_check_names_what_still_holds_memory() -> None:
    collectors = registry().collectors()
    [sample] = gpumem.read_tool_samples([tool_line("nvidia-smi-apps", LLAMA_H200, 1.0)], collectors)
    holders = gpumem.still_holding(sample, {4823})
    assert holders == [{"pid": 4823, "name": "./bin/llama-server", "vram_bytes": 2346 * 2**20, "gtt_bytes": None,
                        "gpus": None}]
    assert gpumem.still_holding(sample, {1, 2}) == []


def test_failed_tools_are_reported_not_fatal() -> None:
    collectors = registry().collectors()
    lines = [json.dumps({"t": 1.0, "kind": "tool", "collector": "amd-smi", "rc": None, "timed_out": True,
                         "out": "", "err": ""}),
             json.dumps({"t": 2.0, "kind": "tool", "collector": "amd-smi", "rc": 2, "timed_out": False, "out": "",
                         "err": "RuntimeError: WARNING: User is missing the following required groups: render"}),
             "{half a line"]
    samples = gpumem.read_tool_samples(lines, collectors)
    assert [s.error for s in samples][0] == "timed out"
    assert "missing the following required groups" in samples[1].error
    summary = gpumem.summarize(samples, {1}, None, None, [])
    assert summary == {"sources": [], "errors": {"amd-smi": "timed out"}}


def test_collectors_chosen_from_facts() -> None:
    available = registry().collectors()
    names = lambda chosen: [c.name for c in chosen]  # noqa: E731
    apu = {"tools": {"amd-smi": "/opt/rocm/bin/amd-smi", "rocm-smi": "/opt/rocm/bin/rocm-smi"},
           "gpus_sysfs": [{"vendor_id": "0x1002", "mem_info_vram_total": 512 << 20, "mem_info_gtt_total": 96 << 30}]}
    assert names(select.choose(apu, available)) == ["amd-smi", "amd-smi-metric", "sysfs", "amd-smi-power", "sysfs-power"]
    old_rocm = {"tools": {"rocm-smi": "/usr/bin/rocm-smi"}, "gpus_sysfs": []}
    assert names(select.choose(old_rocm, available)) == ["rocm-smi", "rocm-smi-pids", "rocm-smi-power", "sysfs-power"]
    nvidia = {"tools": {"nvidia-smi": "/usr/bin/nvidia-smi"}, "gpus_sysfs": [{"vendor_id": "0x10de"}]}
    assert names(select.choose(nvidia, available)) == ["nvidia-smi", "nvidia-smi-apps", "nvidia-smi-power", "sysfs-power"]
    assert names(select.choose({"tools": {}, "gpus_sysfs": []}, available)) == ["sysfs-power"]
    assert select.choose({"tools": {}, "gpus_sysfs": []}, available, power=False) == []
    assert names(select.choose(apu, available, override=["sysfs"])) == ["sysfs", "amd-smi-power", "sysfs-power"]


def test_facts_summary_from_real_outputs() -> None:
    base = {"tools": {"nvidia-smi": "/usr/bin/nvidia-smi"}, "gpus_sysfs": [],
            "kernel": {"release": "6.8.0", "cmdline": "BOOT_IMAGE=/vmlinuz ro amd_iommu=off ttm.pages_limit=32505856 "
                                                          "amdgpu.gttsize=126976 quiet"}}
    raw = {"nvidia-smi-gpus": {"rc": 0, "out": "0, NVIDIA H200, GPU-1, 1, 143771\n"},
           "nvidia-smi-driver": {"rc": 0, "out": "580.95.05\n"},
           "nvidia-smi-banner": {"rc": 0, "out": "| NVIDIA-SMI 580.95.05   Driver Version: 580.95.05   CUDA Version: 13.0 |"},
           "amd-smi-version": {"rc": None, "timed_out": True, "out": ""}}
    out = facts.summarize(base, raw)
    assert out["gpus"] == [{"vendor": "NVIDIA", "index": 0, "model": "NVIDIA H200", "vram_total_bytes": 143771 << 20,
                            "gtt_total_bytes": None, "source": "nvidia-smi"}]
    assert out["versions"] == {"nvidia_driver": "580.95.05", "cuda_driver_api": "13.0"}
    assert out["kernel"]["gpu_params"] == {"amd_iommu": "off", "ttm.pages_limit": "32505856",
                                           "amdgpu.gttsize": "126976"}
    assert out["raw"]["amd-smi-version"]["timed_out"] is True
