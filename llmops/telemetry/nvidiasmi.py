"""nvidia-smi: per-GPU memory from `--query-gpu`, per-process memory from `--query-compute-apps`.

Layouts read (fixtures README, section 8):

- CSV of `--query-gpu=...` / `--query-compute-apps=...`, with or without the header (whose names
  carry unit tags, "memory.used [MiB]") and with or without units in the values ("130013 MiB").
  Without a header the columns are recognised by their shape among a few known orders, our
  collectors' orders first. Placeholders ("[N/A]", "[Not Found]") become null;
- `nvidia-smi -q -x` XML (any DTD version): fb_memory_usage and processes/process_info;
- the default table: "used MiB / total MiB" per GPU and the Processes box.

nvidia-smi reports memory per (GPU, process), so a PID seen on several GPUs has its rows added up.
The XML and the table know the GPU index of each process; `--query-compute-apps` only knows the
GPU's UUID, so `gpus` is filled only when the caller passes the UUID -> index map of
`--query-gpu=index,uuid` (see uuid_index()).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from llmops.plugins.api import Collector, Telemetry
from llmops.telemetry.common import UnrecognisedFormat, device, noise_lines, process, telemetry
from llmops.telemetry.units import clean_name, is_missing, to_bytes, to_int

TOOL = "nvidia-smi"

GPU_QUERY = "index,name,uuid,memory.used,memory.total"
APPS_QUERY = "pid,process_name,used_memory,gpu_uuid"

# Column orders tried, in turn, on CSV without a header: ours first, then ones seen in the wild.
GPU_LAYOUTS = [tuple(GPU_QUERY.split(","))]
APPS_LAYOUTS = [
    tuple(APPS_QUERY.split(",")),
    ("pid", "process_name", "used_memory"),
    ("gpu_uuid", "pid", "process_name", "used_memory"),
    ("timestamp", "gpu_name", "pid", "process_name", "used_memory"),
]
# The header says "used_gpu_memory" even when the query asked for "used_memory".
_ALIASES = {"used_gpu_memory": "used_memory"}
_HEADER_CELL = re.compile(r"^([a-z_.]+)(?: \[([^\]]+)\])?$")
_KNOWN_FIELDS = {"index", "name", "uuid", "memory.used", "memory.total", "memory.free", "pid", "process_name",
                 "used_gpu_memory", "used_memory", "gpu_uuid", "gpu_name", "gpu_bus_id", "timestamp"}


def parse(text: str, uuid_index: dict[str, int] | None = None) -> Telemetry:
    """Any nvidia-smi output we know: -q -x XML, the default table, or --query-* CSV."""
    if "<nvidia_smi_log" in text:
        return parse_xml(text)
    if "NVIDIA-SMI" in text and any(line.startswith("+-") for line in text.splitlines()):
        return parse_table(text)
    return parse_csv(text, uuid_index)


def uuid_index(gpus: Telemetry) -> dict[str, int]:
    """UUID -> index from a parsed `--query-gpu=index,uuid,...`, for parse(..., uuid_index=...)."""
    return {dev["uuid"]: dev["index"] for dev in gpus.devices if dev.get("uuid")}


# --- CSV ------------------------------------------------------------------------------------------

def parse_csv(text: str, uuid_index: dict[str, int] | None = None) -> Telemetry:
    """`--query-gpu=...` or `--query-compute-apps=...` with --format=csv[,noheader][,nounits]."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    warnings = [line for line in lines if ", " not in line and not _is_header([line])]
    lines = [line for line in lines if line not in warnings]
    if not lines:
        if warnings:
            raise UnrecognisedFormat(f"{TOOL}: unrecognised output format (starts with {warnings[0][:80]!r})")
        return Telemetry(TOOL)  # no compute apps: nvidia-smi prints nothing at all
    rows = [line.split(", ") for line in lines]
    if _is_header(rows[0]):
        columns, units = _read_header(rows.pop(0))
    else:
        columns, units = _guess_layout(rows), {}
    if "pid" in columns:
        return _apps(columns, units, rows, warnings, uuid_index)
    return _gpus(columns, units, rows, warnings)


def _is_header(cells: list[str]) -> bool:
    names = [match.group(1) for match in map(_HEADER_CELL.match, cells) if match]
    return len(names) == len(cells) and bool(set(names) & _KNOWN_FIELDS)


def _read_header(cells: list[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    columns, units = [], {}
    for cell in cells:
        name, unit = _HEADER_CELL.match(cell).groups()  # type: ignore[union-attr]
        name = _ALIASES.get(name, name)
        columns.append(name)
        if unit:
            units[name] = unit
    return tuple(columns), units


def _guess_layout(rows: list[list[str]]) -> tuple[str, ...]:
    for layout in GPU_LAYOUTS + APPS_LAYOUTS:
        if all(_fits(_fold(cells, layout), layout) for cells in rows):
            return layout
    raise UnrecognisedFormat(f"{TOOL}: CSV without a header in an unknown column order "
                             f"(first row {', '.join(rows[0])[:80]!r}); expected --query-gpu={GPU_QUERY} "
                             f"or --query-compute-apps={APPS_QUERY}")


_SHAPES: dict[str, Callable[[str], bool]] = {
    "index": lambda cell: to_int(cell) is not None,
    "pid": lambda cell: to_int(cell) is not None,
    "uuid": lambda cell: cell.startswith(("GPU-", "MIG-")),
    "gpu_uuid": lambda cell: cell.startswith(("GPU-", "MIG-")),
    "timestamp": lambda cell: re.match(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d", cell) is not None,
    "memory.used": lambda cell: is_missing(cell) or to_bytes(cell, "MiB") is not None,
    "memory.total": lambda cell: is_missing(cell) or to_bytes(cell, "MiB") is not None,
    "used_memory": lambda cell: is_missing(cell) or to_bytes(cell, "MiB") is not None,
}


def _fits(cells: list[str], layout: tuple[str, ...]) -> bool:
    return len(cells) == len(layout) and all(_SHAPES.get(col, lambda _: True)(cell)
                                             for col, cell in zip(layout, cells, strict=False))


def _fold(cells: list[str], columns: tuple[str, ...]) -> list[str]:
    """Glue back a name that contained ", " (nvidia-smi does not quote CSV fields)."""
    extra = len(cells) - len(columns)
    free = next((columns.index(c) for c in ("process_name", "name", "gpu_name") if c in columns), None)
    if extra <= 0 or free is None:
        return cells
    return cells[:free] + [", ".join(cells[free:free + extra + 1])] + cells[free + extra + 1:]


def _records(columns: tuple[str, ...], rows: list[list[str]], warnings: list[str]) -> list[dict[str, str]]:
    records = []
    for cells in rows:
        cells = _fold(cells, columns)
        if len(cells) != len(columns):
            row = ", ".join(cells)
            warnings.append(f"skipped a row with {len(cells)} fields, expected {len(columns)}: {row!r}")
            continue
        records.append(dict(zip(columns, cells, strict=False)))
    return records


def _gpus(columns: tuple[str, ...], units: dict[str, str], rows: list[list[str]],
          warnings: list[str]) -> Telemetry:
    devices = []
    for position, record in enumerate(_records(columns, rows, warnings)):
        index = to_int(record.get("index"))
        devices.append(device(position if index is None else index, clean_name(record.get("name")),
                              vram_used=to_bytes(record.get("memory.used"), units.get("memory.used", "MiB")),
                              vram_total=to_bytes(record.get("memory.total"), units.get("memory.total", "MiB")),
                              uuid=clean_name(record.get("uuid"))))
    return telemetry(TOOL, devices, [], warnings, repeats_are_copies=False)


def _apps(columns: tuple[str, ...], units: dict[str, str], rows: list[list[str]], warnings: list[str],
          uuid_index: dict[str, int] | None) -> Telemetry:
    processes = []
    for record in _records(columns, rows, warnings):
        pid = to_int(record["pid"])
        if pid is None:
            warnings.append(f"skipped a process without a numeric pid: {record['pid']!r}")
            continue
        uuid = clean_name(record.get("gpu_uuid"))
        gpus = None
        if uuid and uuid_index is not None:
            gpus = [uuid_index[uuid]] if uuid in uuid_index else None
            if gpus is None:
                warnings.append(f"process {pid}: GPU {uuid} is not in the given UUID map")
        processes.append(process(pid, clean_name(record.get("process_name")),
                                 vram=to_bytes(record.get("used_memory"), units.get("used_memory", "MiB")),
                                 gpus=gpus, gpu_uuids=[uuid] if uuid else None))
    return telemetry(TOOL, [], processes, warnings, repeats_are_copies=False)


# --- XML (-q -x) ----------------------------------------------------------------------------------

def parse_xml(text: str) -> Telemetry:
    """`nvidia-smi -q -x`: GPUs in index order, each with fb_memory_usage and its processes."""
    start = text.find("<?xml")
    start = text.find("<nvidia_smi_log") if start < 0 else start
    end = text.find("</nvidia_smi_log>")
    if end < 0:
        raise UnrecognisedFormat(f"{TOOL}: XML without its closing </nvidia_smi_log> (cut short?)")
    end += len("</nvidia_smi_log>")
    warnings = noise_lines(text[:start]) + noise_lines(text[end:])
    try:
        root = ET.fromstring(text[start:end])
    except ET.ParseError as exc:
        raise UnrecognisedFormat(f"{TOOL}: XML does not parse: {exc}") from None
    devices, processes = [], []
    # No element holds nvidia-smi's index (minor_number is the /dev node): the order is the index.
    for index, gpu in enumerate(root.findall("gpu")):
        devices.append(device(index, clean_name(gpu.findtext("product_name")),
                              vram_used=to_bytes(gpu.findtext("fb_memory_usage/used")),
                              vram_total=to_bytes(gpu.findtext("fb_memory_usage/total")),
                              uuid=clean_name(gpu.findtext("uuid")), bdf=gpu.get("id")))
        for info in gpu.findall("processes/process_info"):
            pid = to_int(info.findtext("pid"))
            if pid is None:
                warnings.append(f"GPU {index}: skipped a process without a numeric pid")
                continue
            processes.append(process(pid, clean_name(info.findtext("process_name")),
                                     vram=to_bytes(info.findtext("used_memory")), gpus=[index],
                                     type=clean_name(info.findtext("type"))))
    return telemetry(TOOL, devices, processes, warnings, repeats_are_copies=False)


# --- the default table ----------------------------------------------------------------------------

_BUS_ID = r"[0-9A-Fa-f]+:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]"
_TABLE_GPU = re.compile(rf"^\|\s+(\d+)\s+(.+?)\s+(?:On|Off|N/A)\s+\|\s+({_BUS_ID})")
_TABLE_MEMORY = re.compile(r"\|\s+(\d+)MiB\s*/\s*(\d+)MiB\s+\|")
# GPU, [GI, CI,] PID, Type, name, memory; drivers before MIG have no GI/CI columns.
_TABLE_PROCESS = re.compile(
    r"^\|\s+(\d+)\s+(?:\S+\s+\S+\s+)?(\d+)\s+(C\+G|M\+C|C|G|M)\s+(.*?)\s+(\d+MiB|N/A)\s*\|$")
_TIMESTAMP = re.compile(r"^\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4}$")


def parse_table(text: str) -> Telemetry:
    """Plain `nvidia-smi`. GPU names may be cut ("NVIDIA GeForce RTX 4070 ...") and process names
    cut from the left ("...bin/python3"): they are kept as printed."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("+-"))
    warnings = [line for line in noise_lines(lines[:start]) if not _TIMESTAMP.match(line)]
    devices, processes = [], []
    section = "gpus"
    pending: tuple[int, str | None, str] | None = None
    for line in lines[start:]:
        if "MIG devices:" in line or "Processes:" in line:
            section = "other" if "MIG devices:" in line else "processes"
        elif section == "gpus" and (gpu := _TABLE_GPU.match(line)):
            pending = (int(gpu.group(1)), clean_name(gpu.group(2)), gpu.group(3))
        elif section == "gpus" and pending and (memory := _TABLE_MEMORY.search(line)):
            index, name, bdf = pending
            devices.append(device(index, name, vram_used=to_bytes(memory.group(1), "MiB"),
                                  vram_total=to_bytes(memory.group(2), "MiB"), bdf=bdf))
            pending = None
        elif section == "processes" and (row := _TABLE_PROCESS.match(line)):
            gpu_index, pid, kind, name, used = row.groups()
            processes.append(process(int(pid), clean_name(name), vram=to_bytes(used), gpus=[int(gpu_index)],
                                     type=kind))
    return telemetry(TOOL, devices, processes, warnings, repeats_are_copies=False)


# --- collectors -----------------------------------------------------------------------------------

class NvidiaSmiGpus(Collector):
    name = "nvidia-smi"
    description = "Per-GPU memory used/total from `nvidia-smi --query-gpu`"
    requires = "nvidia-smi"

    def command(self) -> str:
        return f"nvidia-smi --query-gpu={GPU_QUERY} --format=csv,noheader,nounits"

    def parse(self, text: str) -> Telemetry:
        return parse(text)


class NvidiaSmiApps(Collector):
    name = "nvidia-smi-apps"
    description = "Per-process GPU memory from `nvidia-smi --query-compute-apps`"
    requires = "nvidia-smi"

    def __init__(self, uuid_index: dict[str, int] | None = None) -> None:
        self.uuid_index = uuid_index  # from the nvidia-smi collector's output, when the caller has it

    def command(self) -> str:
        return f"nvidia-smi --query-compute-apps={APPS_QUERY} --format=csv,noheader,nounits"

    def parse(self, text: str) -> Telemetry:
        return parse(text, self.uuid_index)
