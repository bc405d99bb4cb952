"""rocm-smi: device VRAM/GTT from `--showmeminfo vram gtt` and KFD processes from `--showpids`.

Layouts read (fixtures README, section 6):

- JSON: {"card0": {"VRAM Total Memory (B)": "<bytes>", ...}, "system": {"PID123": "<packed>"}},
  every value a string; `--showpids --json` packs "name, gpu count, vram bytes, sdma, cu" into
  one string per PID;
- CSV: a "device,..." header and one "cardN,..." row per GPU (same keys as the JSON);
- text: "GPU[0]<tabs or spaces>: VRAM Total Memory (B): 536870912" lines and the tab-separated
  "KFD process information:" table, with banners and warnings around them.

`--showpids` gives a GPU *count*, never an index, so `gpus` stays null and the count is kept as
`gpu_count`. Process names are /proc/PID/comm, cut to 15 characters by the kernel.
The default concise table is not read: its VRAM% is a percentage with no byte figures.
"""

from __future__ import annotations

import csv
import re
from typing import Any

from llmops.plugins.api import Collector, Telemetry
from llmops.telemetry.common import UnrecognisedFormat, device, first_json, noise_lines, process, telemetry
from llmops.telemetry.units import clean_name, to_bytes, to_int

TOOL = "rocm-smi"

_GPU_LINE = re.compile(r"^GPU\[(\d+)\]\s*:\s*(.+?)\s*:\s*(.*?)\s*$")
_CARD = re.compile(r"^card(\d+)$")
_PID_KEY = re.compile(r"^PID(\d+)$")
# Field names of --showmeminfo (the same in text, JSON and CSV), and where each one goes.
_MEMORY_FIELDS = {
    "vram total used memory (b)": "vram_used",
    "vram total memory (b)": "vram_total",
    "gtt total used memory (b)": "gtt_used",
    "gtt total memory (b)": "gtt_total",
}
_NAME_FIELDS = ("card series", "device name")


def parse(text: str) -> Telemetry:
    """Any rocm-smi output we know: JSON, CSV, or the text of --showmeminfo / --showpids."""
    found = first_json(text)
    if found is not None:
        return parse_json(*found)
    lines = text.splitlines()
    if any(line.startswith("device,") for line in lines):
        return parse_csv(text)
    if any(_GPU_LINE.match(line) or _is_kfd_section(line) for line in lines):
        return parse_text(text)
    if any("Concise Info" in line for line in lines):
        raise UnrecognisedFormat(f"{TOOL}: the default concise table has only VRAM% (no bytes); "
                                 "run `rocm-smi --showmeminfo vram gtt --json`")
    raise UnrecognisedFormat(f"{TOOL}: unrecognised output format")


def parse_json(document: Any, warnings: list[str] | None = None) -> Telemetry:
    """A decoded rocm-smi --json document: "cardN" objects and/or "system" with "PID<n>" keys."""
    if not isinstance(document, dict):
        raise UnrecognisedFormat(f"{TOOL}: JSON is not an object of cards")
    devices, processes = [], []
    for key, fields in document.items():
        card = _CARD.match(key)
        if card and isinstance(fields, dict):
            devices.append(_card_device(int(card.group(1)), fields))
    system = document.get("system")
    for key, packed in (system.items() if isinstance(system, dict) else []):
        pid = _PID_KEY.match(key)
        if pid and isinstance(packed, str):
            processes.append(_packed_process(int(pid.group(1)), packed))
    return telemetry(TOOL, devices, processes, list(warnings or []), repeats_are_copies=False)


def parse_csv(text: str) -> Telemetry:
    """`rocm-smi ... --csv`: a "device,..." header, one "cardN,..." row per GPU."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("device,"))
    devices = []
    for row in csv.DictReader(lines[start:]):
        card = _CARD.match(row.get("device") or "")
        if card:
            devices.append(_card_device(int(card.group(1)), row))
    return telemetry(TOOL, devices, [], noise_lines(lines[:start]), repeats_are_copies=False)


def parse_text(text: str) -> Telemetry:
    """Text of `--showmeminfo ...` ("GPU[0] : KEY: value") and/or `--showpids` (KFD table)."""
    fields: dict[int, dict[str, str]] = {}
    processes: list[dict[str, Any]] = []
    warnings: list[str] = []
    columns: list[str] | None = None
    started = False
    for line in text.splitlines():
        gpu_line = _GPU_LINE.match(line)
        if gpu_line:
            fields.setdefault(int(gpu_line.group(1)), {})[gpu_line.group(2)] = gpu_line.group(3)
        elif line.startswith("=") or _is_kfd_section(line):
            columns = [] if line.startswith("KFD process information") else None
        elif columns == [] and line.startswith("PID"):
            columns = [column.upper() for column in _cells(line)]
        elif columns:
            found = _table_process(dict(zip(columns, _cells(line), strict=False)), warnings)
            if found is not None:
                processes.append(found)
        elif line.strip() and (not started or line.lstrip().startswith("WARNING")):
            warnings.append(line.strip())  # e.g. the low-power notice before the banner
        started = started or bool(gpu_line) or line.startswith("=")
    devices = [_card_device(index, values) for index, values in fields.items()]
    return telemetry(TOOL, devices, processes, warnings, repeats_are_copies=False)


def _is_kfd_section(line: str) -> bool:
    return line.startswith("KFD process information") or "No KFD PIDs currently running" in line


def _cells(line: str) -> list[str]:
    """KFD table cells: tab-separated (padded with spaces); two or more spaces if there is no tab."""
    parts = line.split("\t") if "\t" in line else re.split(r"\s{2,}", line)
    return [part.strip() for part in parts if part.strip()]


def _card_device(index: int, fields: dict[str, Any]) -> dict[str, Any]:
    by_name = {str(key).strip().lower(): value for key, value in fields.items()}
    sizes = {slot: to_bytes(by_name.get(key)) for key, slot in _MEMORY_FIELDS.items()}
    name = next((clean_name(by_name[key]) for key in _NAME_FIELDS if key in by_name), None)
    return device(index, name, **sizes)


def _packed_process(pid: int, packed: str) -> dict[str, Any]:
    """"name, gpus, vram, sdma, cu": split from the right, since only the name may hold ", "."""
    parts = [part.strip() for part in packed.rsplit(",", 4)]
    name, gpu_count, vram = (parts + [None, None, None])[:3]
    return process(pid, clean_name(name), vram=to_bytes(vram), gpu_count=to_int(gpu_count))


def _table_process(row: dict[str, str], warnings: list[str]) -> dict[str, Any] | None:
    pid = to_int(row.get("PID"))
    if pid is None:
        warnings.append(f"skipped KFD row without a numeric PID: {row}")
        return None
    return process(pid, clean_name(row.get("PROCESS NAME")), vram=to_bytes(row.get("VRAM USED")),
                   gpu_count=to_int(row.get("GPU(S)")))


class RocmSmiMemory(Collector):
    name = "rocm-smi"
    description = "Per-GPU VRAM and GTT used/total from `rocm-smi --showmeminfo vram gtt --json`"
    requires = "rocm-smi"

    def command(self) -> str:
        return "rocm-smi --showmeminfo vram gtt --json"

    def parse(self, text: str) -> Telemetry:
        return parse(text)


class RocmSmiPids(Collector):
    name = "rocm-smi-pids"
    description = "KFD (compute) processes and their VRAM from `rocm-smi --showpids --json`"
    requires = "rocm-smi"

    def command(self) -> str:
        return "rocm-smi --showpids --json"

    def parse(self, text: str) -> Telemetry:
        return parse(text)
