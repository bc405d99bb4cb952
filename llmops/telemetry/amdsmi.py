"""amd-smi: per-process and per-device GPU memory, from every output layout of ROCm 6.0 to 7.x.

Layouts read (the fixtures README, sections 1-5, documents each one):

- JSON of `process`, `metric`, `static`, `list`: a list of per-GPU records (6.x, and `process` in
  every version) or {"gpu_data": [...]} (7.x metric/static). Sizes are plain integers before
  6.1/6.2 (bytes for processes, MiB for mem_usage and vram.size) and {"value", "unit"} after.
- the text of the same commands ("GPU: 0" blocks of indented "KEY: value" lines), which we read
  into the same nested dict as the JSON so one interpreter serves both;
- `process --csv` (raw bytes);
- the default table of a bare `amd-smi` (7.x): Mem-Usage per GPU and the Processes box;
- `monitor` tables, including the `-q` process table.

Per-process memory is vram_mem/gtt_mem; MEM_USAGE is kept only as `mem_usage_bytes` because it is
0 for most processes in real captures. Processes repeated under several GPUs are merged by PID
(see common.merge_processes for how their numbers are combined).
"""

from __future__ import annotations

import csv
import re
from typing import Any

from llmops.plugins.api import Collector, Telemetry
from llmops.telemetry.common import UnrecognisedFormat, device, first_json, noise_lines, process, telemetry
from llmops.telemetry.units import clean_name, to_bytes, to_int

TOOL = "amd-smi"

# A human-readable size as amd-smi prints it ("2.0 GB", "0.0 B"), or N/A.
_SIZE = r"(?:\d+(?:\.\d+)?\s?[KMGTPEZ]?i?B|N/A)"
_BLOCK = re.compile(r"^(GPU|CPU):\s*(\d+)\s*$")


def parse(text: str) -> Telemetry:
    """Any amd-smi output we know: JSON, CSV, the default table, monitor tables or plain text."""
    found = first_json(text)
    if found is not None:
        return parse_json(*found)
    lines = text.splitlines()
    if any(line.startswith("+") for line in lines) and any("AMD-SMI" in line for line in lines):
        return parse_default_table(text)
    if any(_BLOCK.match(line) for line in lines):
        return parse_text(text)
    if any(_MONITOR_HEADER.match(line) or line.strip() == "PROCESS INFO:" for line in lines):
        return parse_monitor(text)
    if any(line.lower().startswith("gpu,") for line in lines):
        return parse_csv(text)
    raise UnrecognisedFormat(f"{TOOL}: unrecognised output format (starts with {_first_line(text)!r})")


# --- JSON and text: per-GPU records --------------------------------------------------------------

def parse_json(document: Any, warnings: list[str] | None = None) -> Telemetry:
    """A decoded `amd-smi <process|metric|static|list> --json` document (any ROCm version)."""
    if isinstance(document, dict) and isinstance(document.get("gpu_data"), list):
        records = document["gpu_data"]  # 7.x metric/static wrapper
    elif isinstance(document, dict) and "gpu" in document:
        records = [document]
    elif isinstance(document, list):
        records = document
    else:
        raise UnrecognisedFormat(f"{TOOL}: JSON is neither a list of GPUs nor {{\"gpu_data\": [...]}}")
    return _from_records([r for r in records if isinstance(r, dict)], list(warnings or []))


def parse_text(text: str) -> Telemetry:
    """The text of `amd-smi process|metric|static|list`: "GPU: N" blocks of indented KEY: value."""
    records, warnings = _read_blocks(text.splitlines())
    return _from_records(records, warnings)


def _from_records(records: list[dict[str, Any]], warnings: list[str]) -> Telemetry:
    devices, processes = [], []
    for record in records:
        gpu = to_int(record.get("gpu"))
        for info in _process_infos(record):
            if isinstance(info, dict):
                row = _process_row(info, gpu, warnings)
                if row is not None:
                    processes.append(row)
            elif isinstance(info, str) and "no running processes" not in info.lower():
                # ROCm 6.0/6.1 JSON: the per-process query failed (it needed root then).
                warnings.append(f"GPU {gpu}: no process details (process_info is {info!r})")
        if gpu is not None and _has_device_data(record):
            devices.append(_device_row(record, gpu))
    return telemetry(TOOL, devices, processes, warnings, repeats_are_copies=True)


def _process_infos(record: dict[str, Any]) -> list[Any]:
    """JSON nests process_info in process_list items; our text reader leaves them on the record."""
    infos: list[Any] = []
    for item in record.get("process_list") or []:
        infos.append(item.get("process_info") if isinstance(item, dict) else item)
    inline = record.get("process_info")
    if inline is not None:
        infos.extend(inline if isinstance(inline, list) else [inline])
    return infos


def _process_row(info: dict[str, Any], gpu: int | None, warnings: list[str]) -> dict[str, Any] | None:
    pid = to_int(info.get("pid"))
    if pid is None:
        warnings.append(f"GPU {gpu}: skipped a process without a numeric pid ({info.get('pid')!r})")
        return None
    usage = info.get("memory_usage")
    usage = usage if isinstance(usage, dict) else {}
    total = info.get("mem_usage", info.get("mem"))  # 7.x docs print the total as "MEM:"
    return process(pid, clean_name(info.get("name")),
                   vram=to_bytes(usage.get("vram_mem")), gtt=to_bytes(usage.get("gtt_mem")),
                   gpus=[gpu] if gpu is not None else None,
                   cpu_bytes=to_bytes(usage.get("cpu_mem")), mem_usage_bytes=to_bytes(total))


def _has_device_data(record: dict[str, Any]) -> bool:
    """metric/static/list records describe the GPU; process records only carry its index."""
    return bool(set(record) - {"gpu", "process_list", "process_info"})


def _device_row(record: dict[str, Any], gpu: int) -> dict[str, Any]:
    usage = _section(record, "mem_usage")
    asic, bus, vram = _section(record, "asic"), _section(record, "bus"), _section(record, "vram")
    # mem_usage and vram.size are whole MiB in every version, with or without a unit attached.
    total = to_bytes(usage.get("total_vram"), "MiB")
    if total is None:
        total = to_bytes(vram.get("size"), "MiB")
    return device(gpu, clean_name(asic.get("market_name")),
                  vram_used=to_bytes(usage.get("used_vram"), "MiB"), vram_total=total,
                  gtt_used=to_bytes(usage.get("used_gtt"), "MiB"),
                  gtt_total=to_bytes(usage.get("total_gtt"), "MiB"),
                  bdf=clean_name(record.get("bdf") or bus.get("bdf")), uuid=clean_name(record.get("uuid")))


def _section(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _read_blocks(lines: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Read "GPU: N" blocks into nested dicts with lower-case keys, like the JSON of the same command.

    A key repeated at one level becomes a list. A bare line under "KEY:" becomes KEY's value, which
    is how 7.x prints "PROCESS_INFO:" followed by "No running processes detected" on its own line.
    CPU blocks (E-SMI, MI300A) are skipped; unindented lines before the first block are warnings.
    """
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    record: dict[str, Any] | None = None
    seen_block = False
    # Each frame: (indent of the "KEY:" line, its dict, the dict holding it, KEY).
    stack: list[tuple[int, dict[str, Any], dict[str, Any] | None, str]] = []
    for line in lines:
        if not line.strip():
            continue
        block = _BLOCK.match(line)
        if block:
            seen_block = True
            record = {"gpu": int(block.group(2))} if block.group(1) == "GPU" else None
            if record is not None:
                records.append(record)
                stack = [(-1, record, None, "")]
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            if not seen_block:
                warnings.append(line.strip())
            continue  # "[output truncated]", "..." after the data
        if record is None:
            continue
        while stack[-1][0] >= indent:
            stack.pop()
        _, node, owner, owner_key = stack[-1]
        key, colon, value = line.strip().partition(":")
        if not colon:
            if not node and owner is not None:
                _replace_last(owner, owner_key, line.strip())
            continue
        key, value = key.strip().lower(), value.strip()
        if value:
            _put(node, key, value)
        else:
            child: dict[str, Any] = {}
            _put(node, key, child)
            stack.append((indent, child, node, key))
    return records, warnings


def _put(node: dict[str, Any], key: str, value: Any) -> None:
    if key not in node:
        node[key] = value
    elif isinstance(node[key], list):
        node[key].append(value)
    else:
        node[key] = [node[key], value]


def _replace_last(owner: dict[str, Any], key: str, value: str) -> None:
    if isinstance(owner[key], list):
        owner[key][-1] = value
    else:
        owner[key] = value


# --- CSV ------------------------------------------------------------------------------------------

def parse_csv(text: str) -> Telemetry:
    """`amd-smi process --csv`: one row per (GPU, process), memory in raw bytes."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("gpu,"))
    warnings = noise_lines(lines[:start])
    rows = list(csv.DictReader(lines[start:]))
    if rows and "pid" not in rows[0]:
        raise UnrecognisedFormat(f"{TOOL}: CSV without a pid column is not supported")
    processes = []
    for row in rows:
        gpu = to_int(row.get("gpu"))
        info = {"pid": row.get("pid"), "name": row.get("name"), "mem_usage": row.get("mem_usage"),
                "memory_usage": {key: row.get(key) for key in ("gtt_mem", "cpu_mem", "vram_mem")}}
        found = _process_row(info, gpu, warnings)
        if found is not None:
            processes.append(found)
    return telemetry(TOOL, [], processes, warnings, repeats_are_copies=True)


# --- the default table (bare `amd-smi`, ROCm >= 7.0) ----------------------------------------------

_TABLE_NAME = re.compile(r"^\|\s*([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F])\s*(.*?)\s*\|")
_TABLE_MEMORY = re.compile(r"^\|\s*(\d+)\s.*\s(\d+|N/A)/(\d+|N/A) MB\s*\|\s*$")
_TABLE_PROCESS = re.compile(
    rf"^\|\s*(\d+)\s+(\d+)\s+(.*?)\s+({_SIZE})\s+({_SIZE})\s+({_SIZE})\s+(?:\S+ %|N/A)\s*\|\s*$")


def parse_default_table(text: str) -> Telemetry:
    """The box table of a bare `amd-smi`: "used/total MB" per GPU and the Processes box.

    Mem-Usage is read as VRAM. On APUs it is the BIOS carve-out (and newer builds may switch it to
    GTT), so use `amd-smi metric -m` for APU memory; this view cannot tell the pools apart.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("+")), len(lines))
    warnings = noise_lines(lines[:start])
    devices, processes = [], []
    name, bdf = None, None
    for line in lines[start:]:
        if (named := _TABLE_NAME.match(line)):
            bdf, name = named.group(1), named.group(2) or None
        elif (memory := _TABLE_MEMORY.match(line)):
            used, total = (to_bytes(value, "MiB") for value in memory.group(2, 3))
            devices.append(device(int(memory.group(1)), name, vram_used=used, vram_total=total, bdf=bdf))
            name, bdf = None, None
        elif (row := _TABLE_PROCESS.match(line)):
            gpu, pid, proc_name, gtt, vram, total = row.groups()
            processes.append(process(int(pid), clean_name(proc_name), vram=to_bytes(vram),
                                     gtt=to_bytes(gtt), gpus=[int(gpu)], mem_usage_bytes=to_bytes(total)))
    return telemetry(TOOL, devices, processes, warnings, repeats_are_copies=True)


# --- monitor --------------------------------------------------------------------------------------

_MONITOR_HEADER = re.compile(r"^GPU\s{2,}[A-Z]")
_MONITOR_PROCESS = re.compile(
    rf"^\s*(\d+)\s+(.+?)\s+(\d+)\s+({_SIZE})\s+({_SIZE})\s+({_SIZE})\s+({_SIZE})(?:\s|$)")


def parse_monitor(text: str) -> Telemetry:
    """`amd-smi monitor` (6.2 VRAM_USED/VRAM_TOTAL, 6.4 VRAM_USAGE used/total, GTT_* on APUs with
    rocm-systems#1967) and the process table that `-q` / `--process` adds under "PROCESS INFO:".

    Columns are separated by two or more spaces; a value and its unit by one ("199 W").
    """
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if _MONITOR_HEADER.match(line) or line.strip() == "PROCESS INFO:")
    warnings = noise_lines(lines[:start])
    devices, processes = [], []
    columns: list[str] | None = None
    in_processes = False
    for line in lines[start:]:
        if line.strip() == "PROCESS INFO:":
            in_processes, columns = True, None
        elif _MONITOR_HEADER.match(line):
            columns = line.split()
        elif in_processes and (row := _MONITOR_PROCESS.match(line)):
            gpu, name, pid, gtt, cpu, vram, total = row.groups()
            processes.append(process(int(pid), clean_name(name), vram=to_bytes(vram), gtt=to_bytes(gtt),
                                     gpus=[int(gpu)], cpu_bytes=to_bytes(cpu), mem_usage_bytes=to_bytes(total)))
        elif columns and not in_processes and line.strip():
            values = re.split(r"\s{2,}", line.strip())
            if len(values) != len(columns):
                warnings.append(f"monitor row does not match its header: {line.strip()!r}")
                continue
            found = _monitor_device(dict(zip(columns, values, strict=False)))
            if found is not None:
                devices.append(found)
    return telemetry(TOOL, devices, processes, warnings, repeats_are_copies=True)


def _monitor_device(row: dict[str, str]) -> dict[str, Any] | None:
    index = to_int(row.get("GPU"))
    if index is None:
        return None
    used, total = to_bytes(row.get("VRAM_USED"), "MiB"), to_bytes(row.get("VRAM_TOTAL"), "MiB")
    if "VRAM_USAGE" in row:  # 6.4: "3.0/191.7 GB", one unit for both numbers
        used, total = _used_of_total(row["VRAM_USAGE"])
    return device(index, None, vram_used=used, vram_total=total,
                  gtt_used=to_bytes(row.get("GTT_USED"), "MiB"), gtt_total=to_bytes(row.get("GTT_TOTAL"), "MiB"))


def _used_of_total(cell: str) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*(\S+)/(\S+)\s+(\S+)\s*", cell)
    if not match:
        return None, None
    used, total, unit = match.groups()
    return to_bytes(used, unit), to_bytes(total, unit)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:80]


# --- collectors -----------------------------------------------------------------------------------

class AmdSmiProcesses(Collector):
    name = "amd-smi"
    description = "Per-process GPU memory (VRAM, GTT) from `amd-smi process --json`"
    requires = "amd-smi"

    def command(self) -> str:
        return "amd-smi process --json"

    def parse(self, text: str) -> Telemetry:
        return parse(text)


class AmdSmiMetric(Collector):
    name = "amd-smi-metric"
    description = "Per-GPU VRAM and GTT used/total from `amd-smi metric -m --json`"
    requires = "amd-smi"

    def command(self) -> str:
        return "amd-smi metric -m --json"

    def parse(self, text: str) -> Telemetry:
        return parse(text)
