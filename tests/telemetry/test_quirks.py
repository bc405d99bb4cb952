"""The quirks of the fixtures README (sections 1-9), one small table or property at a time."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.errors import LlmopsError
from llmops.telemetry import amdsmi, nvidiasmi, rocmsmi, sysfs
from llmops.telemetry.parse import parse_capture
from llmops.telemetry.units import clean_name, to_bytes

MiB, GiB = 2**20, 2**30
FAST = settings(max_examples=60, deadline=None)


# --- units ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, default_unit, expected", [
    ("1.9 GB", "B", round(Decimal("1.9") * GiB)),
    ("40.4 MB", "B", round(Decimal("40.4") * MiB)),
    ("62.5 KB", "B", 64000),
    ("0.0 B", "B", 0),
    ("130013 MiB", "B", 130013 * MiB),
    ("4 MiB", "B", 4 * MiB),
    ("40874MiB", "B", 40874 * MiB),  # nvidia-smi table: no space
    ("4.13 GB", "B", round(Decimal("4.13") * GiB)),
    ("512", "MiB", 512 * MiB),  # nounits value, unit from the header tag
    (7889485824, "B", 7889485824),  # amd-smi 6.0 process JSON: plain bytes
    (8176, "MiB", 8176 * MiB),  # amd-smi 6.0 metric JSON: plain MiB
    ({"value": 196288, "unit": "MB"}, "B", 196288 * MiB),  # "MB" is MiB
    ({"value": 2353860608, "unit": "B"}, "MiB", 2353860608),  # the unit inside wins
    ({"value": 1, "unit": "GB"}, "B", GiB),
])
def test_sizes(text, default_unit, expected) -> None:
    assert to_bytes(text, default_unit) == expected


@pytest.mark.parametrize("unknown", [
    "N/A", "[N/A]", "[Not Supported]", "Not Supported", "", "  ", None, "N/A mV",
    {"value": "N/A", "unit": "MB"}, "16.0 EB", 2**64 - 1, 2**63, "8.0 EB", -1, "0 ns", "100 %", "abc",
])
def test_unknown_sizes_are_none(unknown) -> None:
    assert to_bytes(unknown, "MiB") is None


@given(st.integers(min_value=2**63, max_value=2**70))
def test_sentinels_are_none_in_every_shape(value: int) -> None:
    for shape in (value, str(value), {"value": value, "unit": "B"}, f"{value} B"):
        assert to_bytes(shape) is None


def readable(size: int) -> str:
    """What amd-smi's convert_bytes_to_readable() prints: /1024 per step, one decimal."""
    amount = float(size)
    for unit in ["B", "KB", "MB", "GB", "TB", "PB", "EB"]:
        if abs(amount) < 1024 or unit == "EB":
            return f"{amount:3.1f} {unit}"
        amount /= 1024
    raise AssertionError


@FAST
@given(st.integers(min_value=0, max_value=2**62))
def test_readable_sizes_round_trip_within_their_precision(size: int) -> None:
    text = readable(size)
    unit = 1024 ** ["B", "KB", "MB", "GB", "TB", "PB", "EB"].index(text.split()[1])
    assert abs(to_bytes(text) - size) <= 0.05 * unit + 1


@pytest.mark.parametrize("name, expected", [
    ("N/A", None), ("[Not Found]", None), ("", None), (None, None),
    ("VLLM::EngineCor", "VLLM::EngineCor"), ("/app/llama-server", "/app/llama-server"),
])
def test_placeholder_names_are_null(name, expected) -> None:
    assert clean_name(name) == expected


# --- warnings and preambles (README 1, 6, 9) ------------------------------------------------------

PROCESS_JSON = json.dumps([{"gpu": 0, "process_list": [{"process_info": {
    "name": "llama-server", "pid": 4242, "memory_usage": {
        "gtt_mem": {"value": 2 * MiB, "unit": "B"}, "cpu_mem": {"value": 0, "unit": "B"},
        "vram_mem": {"value": 9 * GiB, "unit": "B"}}, "mem_usage": {"value": 0, "unit": "B"}}}]}], indent=4)

warning_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60).filter(
    lambda line: line.strip() and not line.lstrip().startswith(("[", "{")))


@FAST
@given(st.lists(warning_line, max_size=5))
def test_warnings_before_json_are_kept_and_skipped(preamble: list[str]) -> None:
    text = "\n".join(preamble + [PROCESS_JSON])
    parsed = amdsmi.parse(text)
    assert parsed.processes == amdsmi.parse(PROCESS_JSON).processes
    assert parsed.warnings == [line.strip() for line in preamble]


def test_known_preambles_become_warnings() -> None:
    cases = {
        "RuntimeError: WARNING: User is missing the following required groups: render, video...": amdsmi,
        "WARNING: User is missing the following required groups: render, video. Please add user to these groups.": amdsmi,
        "WARNING: AMD GPU device(s) is/are in a low-power state.": rocmsmi,
    }
    for line, module in cases.items():
        body = PROCESS_JSON if module is amdsmi else '{"system": {"PID7": "llama-server, 1, 1024, 0, 0"}}'
        parsed = module.parse(f"{line}\n{body}\n")
        assert parsed.warnings == [line] and len(parsed.processes) == 1


def test_output_after_the_json_is_a_warning() -> None:
    parsed = amdsmi.parse(PROCESS_JSON + "\nextra text printed after the JSON\n")
    assert parsed.warnings == ["extra text printed after the JSON"]


# --- amd-smi JSON shapes across versions (README 2, 3) --------------------------------------------

def process_document(style: str) -> str:
    def size(value: int):
        return value if style == "6.0" else {"value": value, "unit": "B"}
    info = {"name": "llama-server", "pid": 4242,
            "memory_usage": {"gtt_mem": size(3 * MiB), "cpu_mem": size(0), "vram_mem": size(7 * GiB)},
            "mem_usage": size(0)}
    if style == "7.x":
        info.update(cu_occupancy="N/A", evicted_time={"value": 0, "unit": "ms"})
    return json.dumps([{"gpu": 1, "process_list": [{"process_info": info}]}])


@pytest.mark.parametrize("style", ["6.0", "6.2", "7.x"])
def test_process_json_of_every_version(style: str) -> None:
    (proc,) = amdsmi.parse(process_document(style)).processes
    assert (proc["pid"], proc["vram_bytes"], proc["gtt_bytes"], proc["gpus"]) == (4242, 7 * GiB, 3 * MiB, [1])


def metric_document(style: str) -> str:
    def size(value: int):
        return value if style == "6.0" else {"value": value, "unit": "MB"}
    record = {"gpu": 0, "mem_usage": {"total_vram": size(512), "used_vram": size(489), "free_vram": size(23),
                                      "total_gtt": size(13649), "used_gtt": size(938), "free_gtt": size(12711)}}
    return json.dumps({"gpu_data": [record]} if style == "7.x" else [record])


@pytest.mark.parametrize("style", ["6.0", "6.1", "7.x"])
def test_metric_json_of_every_version(style: str) -> None:
    (dev,) = amdsmi.parse(metric_document(style)).devices
    assert (dev["vram_used_bytes"], dev["vram_total_bytes"], dev["gtt_used_bytes"], dev["gtt_total_bytes"]) == \
        (489 * MiB, 512 * MiB, 938 * MiB, 13649 * MiB)


def test_metric_na_in_both_shapes() -> None:
    text = json.dumps([{"gpu": 0, "mem_usage": {"total_vram": "N/A", "used_vram": {"value": "N/A", "unit": "MB"},
                                                "total_gtt": {"value": 100, "unit": "MB"}}}])
    (dev,) = amdsmi.parse(text).devices
    assert (dev["vram_total_bytes"], dev["vram_used_bytes"], dev["gtt_total_bytes"]) == (None, None, 100 * MiB)


def test_process_info_na_is_a_warning_not_a_process() -> None:
    parsed = amdsmi.parse('[{"gpu": 0, "process_list": [{"process_info": "N/A"}]}]')
    assert parsed.processes == [] and parsed.warnings == ["GPU 0: no process details (process_info is 'N/A')"]


@pytest.mark.parametrize("text", [
    '[{"gpu": 0, "process_list": [{"process_info": "No running processes detected"}]}]',
    '[{"gpu": 0, "process_list": []}]',
    "GPU: 0\n    PROCESS_INFO: No running processes detected\n",
    "GPU: 0\n    PROCESS_INFO:\n        No running processes detected\n",
])
def test_no_running_processes(text: str) -> None:
    parsed = amdsmi.parse(text)
    assert parsed.processes == [] and parsed.warnings == []


def test_several_processes_under_one_gpu_in_text() -> None:
    block = "    PROCESS_INFO:\n        NAME: {name}\n        PID: {pid}\n        MEMORY_USAGE:\n" \
            "            GTT_MEM: 0.0 B\n            CPU_MEM: 0.0 B\n            VRAM_MEM: {vram}\n        MEM_USAGE: 0.0 B\n"
    text = "GPU: 0\n" + block.format(name="a", pid=1, vram="1.0 GB") + block.format(name="b", pid=2, vram="2.0 GB")
    assert [(p["pid"], p["vram_bytes"]) for p in amdsmi.parse(text).processes] == [(1, GiB), (2, 2 * GiB)]


def test_mem_usage_is_not_taken_as_vram() -> None:
    text = "GPU: 0\n    PROCESS_INFO:\n        NAME: N/A\n        PID: 9\n        MEMORY_USAGE:\n" \
           "            GTT_MEM: 0.0 B\n            CPU_MEM: 0.0 B\n            VRAM_MEM: 10.1 GB\n        MEM_USAGE: 0.0 B\n"
    (proc,) = amdsmi.parse(text).processes
    assert proc["vram_bytes"] == round(Decimal("10.1") * GiB) and proc["mem_usage_bytes"] == 0
    assert proc["name"] is None


def test_16_eb_is_not_a_size() -> None:
    text = "GPU: 0\n    PROCESS_INFO:\n        NAME: x\n        PID: 9\n        MEMORY_USAGE:\n" \
           "            GTT_MEM: 16.0 EB\n            CPU_MEM: 0.0 B\n            VRAM_MEM: 1.0 GB\n        MEM_USAGE: 16.0 EB\n"
    (proc,) = amdsmi.parse(text).processes
    assert (proc["gtt_bytes"], proc["vram_bytes"], proc.get("mem_usage_bytes")) == (None, GiB, None)


def test_apu_weights_in_gtt_stay_in_gtt() -> None:
    """Strix Halo with a 512 MB carve-out: the model is GTT, VRAM is tiny; nothing is swapped."""
    text = "GPU: 0\n    PROCESS_INFO:\n        NAME: llama-server\n        PID: 77\n        MEMORY_USAGE:\n" \
           "            GTT_MEM: 24.1 GB\n            CPU_MEM: 0.0 B\n            VRAM_MEM: 5.2 MB\n        MEM_USAGE: 0.0 B\n"
    (proc,) = amdsmi.parse(text).processes
    assert proc["gtt_bytes"] == round(Decimal("24.1") * GiB) and proc["vram_bytes"] == round(Decimal("5.2") * MiB)


# --- one entry per PID (README 2, 8) --------------------------------------------------------------

def amd_rows(pid: int, per_gpu: list[tuple[int, int]]) -> str:
    return json.dumps([{"gpu": gpu, "process_list": [{"process_info": {
        "name": "w", "pid": pid, "memory_usage": {"vram_mem": {"value": vram, "unit": "B"},
                                                  "gtt_mem": {"value": 0, "unit": "B"}}}}]}
        for gpu, vram in per_gpu])


@FAST
@given(st.lists(st.integers(0, 15), min_size=1, max_size=8, unique=True), st.integers(0, 2**40))
def test_amd_smi_identical_rows_count_once(gpus: list[int], vram: int) -> None:
    (proc,) = amdsmi.parse(amd_rows(4242, [(gpu, vram) for gpu in gpus])).processes
    assert proc["vram_bytes"] == vram and proc["gpus"] == sorted(gpus)


@FAST
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 2**40)), min_size=2, max_size=8,
                unique_by=lambda row: row[0]).filter(lambda rows: len({vram for _, vram in rows}) > 1))
def test_amd_smi_differing_rows_are_per_gpu_and_add_up(rows: list[tuple[int, int]]) -> None:
    (proc,) = amdsmi.parse(amd_rows(4242, rows)).processes
    assert proc["vram_bytes"] == sum(vram for _, vram in rows) and proc["gpus"] == sorted(g for g, _ in rows)


def test_nvidia_rows_of_one_pid_add_up() -> None:
    """nvidia-smi memory is per (GPU, process): llama-server split over two A6000s."""
    table = (Path(__file__).parent.parent / "fixtures/telemetry/"
             "nvidia-smi_default_table__es-notes-2xa6000-vllm-llamaserver-drv580.txt").read_text()
    (server,) = [p for p in nvidiasmi.parse(table).processes if p["pid"] == 3041554]
    assert server["vram_bytes"] == (262 + 300) * MiB and server["gpus"] == [0, 1]


# --- rocm-smi (README 6) --------------------------------------------------------------------------

@FAST
@given(st.lists(st.sampled_from(["\t", " ", "  "]), min_size=1, max_size=4).map("".join),
       st.sampled_from(["", " ", "\t"]), st.integers(0, 2**40), st.integers(0, 2**40))
def test_rocm_smi_text_with_tabs_or_spaces(pad: str, after: str, total: int, used: int) -> None:
    text = (f"=== ROCm System Management Interface ===\nGPU[3]{pad}:{after}VRAM Total Memory (B): {total}\n"
            f"GPU[3]{pad}:{after}VRAM Total Used Memory (B): {used}\n"
            f"GPU[3]{pad}:{after}GTT Total Memory (B): {total}\n=== End of ROCm SMI Log ===\n")
    (dev,) = rocmsmi.parse(text).devices
    assert (dev["index"], dev["vram_total_bytes"], dev["vram_used_bytes"], dev["gtt_total_bytes"]) == (3, total, used, total)


def test_rocm_smi_json_values_are_strings() -> None:
    text = json.dumps({"card1": {"VRAM Total Memory (B)": "536870912", "VRAM Total Used Memory (B)": "512",
                                 "GTT Total Memory (B)": "134217728000", "GTT Total Used Memory (B)": "N/A"},
                       "system": {"Driver version": "6.12.12"}})
    (dev,) = rocmsmi.parse(text).devices
    assert (dev["index"], dev["vram_total_bytes"], dev["vram_used_bytes"], dev["gtt_total_bytes"], dev["gtt_used_bytes"]) \
        == (1, 536870912, 512, 134217728000, None)


@pytest.mark.parametrize("packed, name, count, vram", [
    ("llama-server, 1, 2353860608, 11011, 0", "llama-server", 1, 2353860608),
    ("VLLM::EngineCor, 2, 1024, 0, UNKNOWN", "VLLM::EngineCor", 2, 1024),  # comm cut to 15 chars
    ("odd, name, 1, 5, 0, 0", "odd, name", 1, 5),  # only the name may hold ", "
])
def test_rocm_smi_showpids_json_is_packed(packed: str, name: str, count: int, vram: int) -> None:
    (proc,) = rocmsmi.parse(json.dumps({"system": {"PID31": packed}})).processes
    assert (proc["pid"], proc["name"], proc["gpu_count"], proc["vram_bytes"], proc["gpus"]) == (31, name, count, vram, None)


def test_rocm_smi_showpids_without_processes() -> None:
    text = "==== ROCm System Management Interface ====\n==== KFD Processes ====\nNo KFD PIDs currently running\n====\n"
    assert rocmsmi.parse(text).processes == []


def test_rocm_smi_concise_table_is_refused_with_advice() -> None:
    text = "==== ROCm System Management Interface ====\n==== Concise Info ====\nDevice  Node  VRAM%  GPU%\n0  1  3%  0%\n"
    with pytest.raises(LlmopsError, match="--showmeminfo vram gtt"):
        parse_capture("rocm-smi", text)


# --- nvidia-smi (README 8) ------------------------------------------------------------------------

app_row = st.tuples(st.integers(1, 2**22), st.sampled_from(["./bin/llama-server", "VLLM::EngineCore", "[Not Found]",
                                                           "/usr/bin/python3"]),
                    st.one_of(st.integers(0, 200000), st.just(None)))


@FAST
@given(st.lists(app_row, min_size=1, max_size=6, unique_by=lambda row: row[0]), st.booleans(), st.booleans())
def test_compute_apps_csv_with_and_without_header_and_units(rows, header: bool, units: bool) -> None:
    def memory(mib):
        return "[N/A]" if mib is None else f"{mib} MiB" if units else str(mib)
    lines = ["pid, process_name, used_gpu_memory [MiB]"] if header else []
    lines += [f"{pid}, {name}, {memory(mib)}" for pid, name, mib in rows]
    parsed = nvidiasmi.parse("\n".join(lines) + "\n")
    expected = sorted((pid, None if name == "[Not Found]" else name, None if mib is None else mib * MiB)
                      for pid, name, mib in rows)
    assert [(p["pid"], p["name"], p["vram_bytes"]) for p in parsed.processes] == expected
    assert all(p["gpus"] is None for p in parsed.processes)


def test_query_gpu_noheader_nounits_in_our_column_order() -> None:
    text = "0, NVIDIA H200, GPU-a44622e3-2296-6285-0a86-84d0f6c67900, 130013, 143771\n" \
           "1, NVIDIA H200, GPU-4f31bb83-f8dc-d0af-029e-bc4356e6afeb, [N/A], 143771\n"
    first, second = nvidiasmi.parse(text).devices
    assert (first["index"], first["name"], first["vram_used_bytes"], first["vram_total_bytes"]) == \
        (0, "NVIDIA H200", 130013 * MiB, 143771 * MiB)
    assert second["vram_used_bytes"] is None and second["uuid"] == "GPU-4f31bb83-f8dc-d0af-029e-bc4356e6afeb"


def test_our_compute_apps_order_and_a_name_with_a_comma() -> None:
    text = "4823, ./bin/llama-server, 2346, GPU-a44622e3-2296-6285-0a86-84d0f6c67900\n" \
           "4900, python, worker, 10, GPU-a44622e3-2296-6285-0a86-84d0f6c67900\n"
    parsed = nvidiasmi.parse(text, uuid_index={"GPU-a44622e3-2296-6285-0a86-84d0f6c67900": 3})
    assert [(p["pid"], p["name"], p["vram_bytes"], p["gpus"]) for p in parsed.processes] == \
        [(4823, "./bin/llama-server", 2346 * MiB, [3]), (4900, "python, worker", 10 * MiB, [3])]


def test_no_compute_apps_prints_nothing() -> None:
    assert nvidiasmi.parse("").processes == [] and nvidiasmi.parse("\n").warnings == []


def test_unknown_noheader_order_is_refused() -> None:
    with pytest.raises(LlmopsError, match="unknown column order"):
        nvidiasmi.parse("abc, def, ghi\n")


@pytest.mark.parametrize("dtd", ["nvsmi_device_v10.dtd", "nvsmi_device_v11.dtd", "nvsmi_device_v12.dtd", "nvsmi_device_v13.dtd"])
def test_xml_of_any_dtd_version(dtd: str) -> None:
    xml = (f'<?xml version="1.0" ?>\n<!DOCTYPE nvidia_smi_log SYSTEM "{dtd}">\n<nvidia_smi_log>\n'
           '<gpu id="00000000:01:00.0"><product_name>NVIDIA H200</product_name><uuid>GPU-1</uuid>'
           "<fb_memory_usage><total>143771 MiB</total><reserved>0 MiB</reserved><used>2346 MiB</used></fb_memory_usage>"
           "<processes><process_info><pid>4823</pid><type>C</type><process_name>./bin/llama-server</process_name>"
           "<used_memory>2346 MiB</used_memory></process_info></processes></gpu></nvidia_smi_log>\n")
    parsed = nvidiasmi.parse(xml)
    assert parsed.devices[0]["vram_used_bytes"] == 2346 * MiB
    assert [(p["pid"], p["vram_bytes"], p["gpus"]) for p in parsed.processes] == [(4823, 2346 * MiB, [0])]


def test_default_table_before_mig_has_no_gi_ci_columns() -> None:
    table = ("+-----------------------------------------------------------------------------+\n"
             "| NVIDIA-SMI 418.67       Driver Version: 418.67       CUDA Version: 10.1     |\n"
             "|   0  Tesla T4            On   | 00000000:00:1E.0 Off |                    0 |\n"
             "| N/A   43C    P0    26W /  70W |    951MiB / 15079MiB |      0%      Default |\n"
             "+-----------------------------------------------------------------------------+\n"
             "| Processes:                                                       GPU Memory |\n"
             "|  GPU       PID   Type   Process name                             Usage      |\n"
             "|    0     17350      C   python3                                      941MiB |\n"
             "+-----------------------------------------------------------------------------+\n")
    parsed = nvidiasmi.parse(table)
    assert (parsed.devices[0]["name"], parsed.devices[0]["vram_used_bytes"]) == ("Tesla T4", 951 * MiB)
    assert [(p["pid"], p["vram_bytes"], p["gpus"]) for p in parsed.processes] == [(17350, 941 * MiB, [0])]


# --- amd-smi default table (README 1) -------------------------------------------------------------

def test_default_table_long_name_without_separator_and_process_rows() -> None:
    table = ("+------------------------------------------------------------------------------+\n"
             "| AMD-SMI 26.2.0+021c61fc      amdgpu version: Linuxver ROCm version: 7.1.1    |\n"
             "|=====================================+========================================|\n"
             "| 0000:03:00.0AMD Radeon AI PRO R9700 | 2 %      36 \u00b0C   0           23/300 W |\n"
             "|   0       0     N/A             N/A | 4 %      0.0 %          29000/32624 MB |\n"
             "+-------------------------------------+----------------------------------------+\n"
             "| Processes:                                                                   |\n"
             "|  GPU        PID  Process Name          GTT_MEM  VRAM_MEM  MEM_USAGE     CU % |\n"
             "|==============================================================================|\n"
             "|    0       4823  VLLM::EngineCore       8.2 MB   27.4 GB     0.0 B     0.0 % |\n"
             "+------------------------------------------------------------------------------+\n")
    parsed = amdsmi.parse(table)
    (dev,) = parsed.devices
    assert (dev["bdf"], dev["name"], dev["vram_used_bytes"], dev["vram_total_bytes"]) == \
        ("0000:03:00.0", "AMD Radeon AI PRO R9700", 29000 * MiB, 32624 * MiB)
    (proc,) = parsed.processes
    assert (proc["name"], proc["gtt_bytes"], proc["vram_bytes"], proc["mem_usage_bytes"]) == \
        ("VLLM::EngineCore", round(Decimal("8.2") * MiB), round(Decimal("27.4") * GiB), 0)


# --- sysfs (README 7) -----------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")
def test_sysfs_command_on_a_fake_tree(tmp_path: Path) -> None:
    pci = tmp_path / "devices" / "pci0000:00" / "0000:c5:00.0"
    pci.mkdir(parents=True)
    files = {"vendor": "0x1002", "device": "0x1586", "mem_info_vram_total": "536870912",
             "mem_info_vram_used": "168820736", "mem_info_gtt_total": "134217728000", "mem_info_gtt_used": "52613349376"}
    for name, value in files.items():
        (pci / name).write_text(value + "\n")
    drm = tmp_path / "drm"
    (drm / "card1").mkdir(parents=True)
    (drm / "card1" / "device").symlink_to(pci)
    (drm / "card1-DP-1").mkdir()
    (drm / "card1-DP-1" / "device").symlink_to(drm / "card1")  # connectors link back to their card
    (drm / "card0").mkdir()  # a card that is not amdgpu: no mem_info files
    (drm / "card0" / "device").symlink_to(tmp_path / "devices")
    command = sysfs.SysfsMemory().command().replace("/sys/class/drm", str(drm))
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True, timeout=10)
    (dev,) = sysfs.parse(result.stdout).devices
    assert dev == {"index": 1, "name": None, "vram_used_bytes": 168820736, "vram_total_bytes": 536870912,
                   "gtt_used_bytes": 52613349376, "gtt_total_bytes": 134217728000, "card": "card1",
                   "bdf": "0000:c5:00.0", "pci_vendor": "0x1002", "pci_device": "0x1586"}


def test_sysfs_grep_transcript_and_empty_listing() -> None:
    text = "/sys/class/drm/card1/device/mem_info_vram_used:168820736\n/sys/class/drm/card1/device/mem_info_gtt_used:5\n"
    (dev,) = sysfs.parse(text).devices
    assert (dev["index"], dev["vram_used_bytes"], dev["gtt_used_bytes"]) == (1, 168820736, 5)
    assert sysfs.parse("").devices == []


def test_sysfs_bare_number_is_refused() -> None:
    with pytest.raises(LlmopsError, match=re.escape("a bare number does not say which file")):
        parse_capture("sysfs", "4294967296\n")
