"""Run directories to report on: the recorded ones, and copies edited to show GPUs or regressions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent.parent
RUNS = TESTS / "data" / "runs"
GOLDEN = TESTS / "golden" / "report"
ARTIFACTS = TESTS.parent / "test-artifacts"
MIB = 1024 ** 2


def copy_run(tmp_path: Path, name: str, as_name: str | None = None) -> Path:
    target = tmp_path / (as_name or name)
    shutil.copytree(RUNS / name, target)
    return target


def edit_results(run: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = run / "results.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def cell(results: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in results["cells"] if c["name"] == name)


def level(c: dict[str, Any], concurrency: int) -> dict[str, Any]:
    return next(lv for lv in c["levels"] if lv["concurrency"] == concurrency)


# What the blog post in shared/reference saw with amd-smi: llama-server holds ~1.9 GB of GTT and
# little VRAM, vLLM ~37.6 GB of GTT. Per-process figures as the executor summarises them.
GPU_HELD = {"llama.cpp-np1": (40 * MIB, 1900 * MIB), "llama.cpp-np4": (42 * MIB, 2000 * MIB),
            "vllm": (3 * MIB, 37600 * MIB)}


def add_gpu(run: Path) -> None:
    """Give every variant GPU memory figures, and np4 a per-process GPU timeline in memory.jsonl."""
    def change(results: dict[str, Any]) -> None:
        for c in results["cells"]:
            vram, gtt = GPU_HELD[c["name"]]
            idle = {"vram_bytes": vram, "gtt_bytes": gtt}
            peak = {"vram_bytes": vram + 2 * MIB, "gtt_bytes": gtt + 100 * MIB}
            c["memory"]["gpu"] = {
                "sources": ["nvidia-smi-apps"],
                "process": {"idle": idle, "peak": peak,
                            "per_level": [{"concurrency": lv["concurrency"], "peak": peak} for lv in c["levels"]],
                            "holders": [{"pid": 1, "name": c["backend"], **peak, "gpus": [0]}]},
                "device": {"idle": {"vram_used_bytes": vram + 150 * MIB, "vram_total_bytes": 512 * MIB,
                                    "gtt_used_bytes": gtt, "gtt_total_bytes": 120 * 1024 * MIB, "devices": 1},
                           "peak": {"vram_used_bytes": vram + 152 * MIB, "vram_total_bytes": 512 * MIB,
                                    "gtt_used_bytes": gtt + 100 * MIB, "gtt_total_bytes": 120 * 1024 * MIB,
                                    "devices": 1},
                           "note": "whole GPUs: every process, not only the server"},
            }
    edit_results(run, change)
    # The collector's raw output, as the sampler stores it: one line per tick, parsed at report time.
    memory = run / "cells" / "localhost" / "llama.cpp-np4" / "memory.jsonl"
    lines = memory.read_text().splitlines()
    procs = [json.loads(line) for line in lines if '"proc"' in line]
    pid = procs[0]["procs"][0]["pid"]
    extra = []
    for k, sample in enumerate(procs[::4]):
        used_mib = 2000 + 10 * k
        extra.append(json.dumps({"t": sample["t"] + 0.1, "kind": "tool", "collector": "nvidia-smi-apps", "rc": 0,
                                 "timed_out": False, "out": f"{pid}, llama-server, {used_mib}, GPU-0\n", "err": ""}))
    memory.write_text("\n".join(lines + extra) + "\n")


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    return copy_run(tmp_path, "quickstart-cpu")


@pytest.fixture
def llama_only(tmp_path: Path) -> Path:
    return copy_run(tmp_path, "llama-only")


@pytest.fixture
def gpu_run(tmp_path: Path) -> Path:
    run = copy_run(tmp_path, "quickstart-cpu", "gpu-run")
    add_gpu(run)
    return run


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/report/NAME; UPDATE_GOLDEN=1 rewrites it (then read the diff)."""
    import os

    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file (UPDATE_GOLDEN=1 rewrites)"
