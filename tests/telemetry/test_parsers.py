"""Golden tests: every capture in tests/fixtures/telemetry parses to its checked JSON.

The golden files under tests/golden/telemetry were written by hand from reading each capture and
then compared with the parser; they are not parser output. `UPDATE_GOLDEN=1 pytest ...` rewrites
them from the parser: check the diff against the capture before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmops.errors import LlmopsError
from llmops.plugins.api import Collector
from llmops.telemetry import amdsmi, nvidiasmi, rocmsmi, sysfs
from llmops.telemetry.parse import TOOLS, parse_capture

TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures" / "telemetry"
GOLDEN = TESTS / "golden" / "telemetry"
CAPTURES = sorted(FIXTURES.glob("*.txt"))


def tool_of(capture: Path) -> str:
    """Captures are named <tool>_<command>__<origin>.txt."""
    return capture.name.split("_", 1)[0]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.stem)
def test_capture_matches_golden(capture: Path) -> None:
    parsed = parse_capture(tool_of(capture), capture.read_text(encoding="utf-8"))
    golden = GOLDEN / f"{capture.stem}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(parsed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(json.dumps(parsed)) == json.loads(golden.read_text(encoding="utf-8"))


def test_every_capture_has_its_source_and_golden() -> None:
    assert len(CAPTURES) >= 60
    for capture in CAPTURES:
        assert capture.with_suffix(".source").is_file(), capture.name
        assert (GOLDEN / f"{capture.stem}.json").is_file(), capture.name
        assert tool_of(capture) in TOOLS, capture.name
    assert {path.stem for path in GOLDEN.glob("*.json")} == {path.stem for path in CAPTURES}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.stem)
def test_golden_keeps_the_contract(capture: Path) -> None:
    """Keys always present, bytes as ints, sorted records, one record per PID."""
    data = json.loads((GOLDEN / f"{capture.stem}.json").read_text(encoding="utf-8"))
    assert data["tool"] == tool_of(capture)
    for dev in data["devices"]:
        assert {"index", "name", "vram_used_bytes", "vram_total_bytes", "gtt_used_bytes", "gtt_total_bytes"} <= set(dev)
    for proc in data["processes"]:
        assert {"pid", "name", "vram_bytes", "gtt_bytes", "gpus"} <= set(proc)
        assert proc["name"] != "N/A"
        assert proc["gpus"] is None or proc["gpus"] == sorted(set(proc["gpus"]))
    for record in data["devices"] + data["processes"]:
        for key, value in record.items():
            if key.endswith("_bytes"):
                assert value is None or (isinstance(value, int) and 0 <= value < 2**63), (key, value)
    assert [d["index"] for d in data["devices"]] == sorted({d["index"] for d in data["devices"]})
    assert [p["pid"] for p in data["processes"]] == sorted({p["pid"] for p in data["processes"]})


# --- collectors ------------------------------------------------------------------------------------

COLLECTORS = {
    "amd-smi": (amdsmi.AmdSmiProcesses, "amd-smi", "amd-smi process --json"),
    "amd-smi-metric": (amdsmi.AmdSmiMetric, "amd-smi", "amd-smi metric -m --json"),
    "rocm-smi": (rocmsmi.RocmSmiMemory, "rocm-smi", "rocm-smi --showmeminfo vram gtt --json"),
    "rocm-smi-pids": (rocmsmi.RocmSmiPids, "rocm-smi", "rocm-smi --showpids --json"),
    "nvidia-smi": (nvidiasmi.NvidiaSmiGpus, "nvidia-smi",
                   "nvidia-smi --query-gpu=index,name,uuid,memory.used,memory.total --format=csv,noheader,nounits"),
    "nvidia-smi-apps": (nvidiasmi.NvidiaSmiApps, "nvidia-smi",
                        "nvidia-smi --query-compute-apps=pid,process_name,used_memory,gpu_uuid --format=csv,noheader,nounits"),
}


@pytest.mark.parametrize("name", sorted(COLLECTORS))
def test_collector_declares_its_command(name: str) -> None:
    cls, requires, command = COLLECTORS[name]
    collector = cls()  # the plugin registry builds collectors without arguments
    assert isinstance(collector, Collector)
    assert (collector.name, collector.requires, collector.command()) == (name, requires, command)
    assert collector.description


def test_sysfs_collector() -> None:
    collector = sysfs.SysfsMemory()
    assert collector.name == "sysfs" and "mem_info_vram_used" in collector.command()
    assert collector.parse("card=card0 mem_info_vram_used=5\n").devices[0]["vram_used_bytes"] == 5


@pytest.mark.parametrize("collector, capture", [
    (amdsmi.AmdSmiProcesses(), "amd-smi_process_json__roctop-testdata-4xR9700-rocm72-vllm"),
    (amdsmi.AmdSmiMetric(), "amd-smi_metric_json__supermicro-fan-notes-rx6600-rocm61x"),
    (rocmsmi.RocmSmiMemory(), "rocm-smi_showmeminfo_vram_json__hfl-test-mi300x-llamaserver-TRIMMED"),
    (rocmsmi.RocmSmiPids(), "rocm-smi_showpids_json__hfl-test-mi300x-llamaserver-TRIMMED"),
    (nvidiasmi.NvidiaSmiGpus(), "nvidia-smi_query-gpu_csv__exp23-log-h200-8gpu"),
    (nvidiasmi.NvidiaSmiApps(), "nvidia-smi_query-compute-apps_csv_noheader_nounits__beta-red-rtx3080-vllm"),
    (sysfs.SysfsMemory(), "sysfs_mem_info_gtt_vram_total__gpu-utils-issue118-rx570"),
], ids=lambda value: value if isinstance(value, str) else type(value).__name__)
def test_collector_parse_is_the_golden_parse(collector: Collector, capture: str) -> None:
    parsed = collector.parse((FIXTURES / f"{capture}.txt").read_text(encoding="utf-8")).to_json()
    assert json.loads(json.dumps(parsed)) == json.loads((GOLDEN / f"{capture}.json").read_text(encoding="utf-8"))


def test_compute_apps_are_placed_on_gpus_with_the_uuid_map() -> None:
    gpus = nvidiasmi.parse((FIXTURES / "nvidia-smi_query-gpu_csv__exp23-log-h200-8gpu.txt").read_text())
    index = nvidiasmi.uuid_index(gpus)
    assert index["GPU-28780eb0-24d5-1f13-59b8-ae5c23617a72"] == 7
    apps_text = (FIXTURES / "nvidia-smi_query-compute-apps_csv__exp23-log-h200-8gpu-notfound.txt").read_text()
    placed = {p["pid"]: p["gpus"] for p in nvidiasmi.NvidiaSmiApps(uuid_index=index).parse(apps_text).processes}
    assert placed == {1328667: [0], 1328668: [1], 1425258: [2], 1328669: [3], 1425259: [4], 1425260: [5],
                      1425261: [6], 1758887: [7]}


# --- errors ---------------------------------------------------------------------------------------

def test_unknown_tool_is_a_clear_error() -> None:
    with pytest.raises(LlmopsError, match=r"unknown telemetry tool 'gpustat' \(known: amd-smi, nvidia-smi, rocm-smi, sysfs\)"):
        parse_capture("gpustat", "")


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_unrecognised_output_is_a_one_line_error(tool: str) -> None:
    with pytest.raises(LlmopsError) as caught:
        parse_capture(tool, "Segmentation fault (core dumped)\nsomething else entirely\n")
    message = str(caught.value)
    assert "\n" not in message and tool in message
