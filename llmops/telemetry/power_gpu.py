"""GPU power from the vendor tools: amd-smi socket power, rocm-smi average power, nvidia-smi power.draw.

Each reading is a device record {"index", "name", "power_watts"} (null when the tool says N/A,
as APUs and virtual functions often do), plus "power_cap_watts" where the same output gives it.
Power is a sampled figure; llmops.telemetry.energy integrates it over a level.

Layouts read (captures in tests/fixtures/telemetry and tests/fixtures/power):

- amd-smi `metric -p --json` (6.1+: {"value", "unit"} objects; 7.x: {"gpu_data": [...]}) and its
  text ("POWER:" / "SOCKET_POWER: 234 W"); `monitor` tables (POWER column, "305 W"); the
  default table of a bare `amd-smi` (7.x, "Power-Usage" as "734/750 W", "N/A/0 W" on APUs);
- rocm-smi's default concise table ("Power (Avg)" column, "6.0W"), and the JSON of
  `--showpower --json` ("Average/Current Socket Graphics Package Power (W)");
- nvidia-smi `--query-gpu=...power.draw...` CSV (header names the columns) and `-q -x` XML
  (power_readings or gpu_power_readings/power_draw, "26.84 W").
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from llmops.plugins.api import Collector, Telemetry
from llmops.telemetry import amdsmi
from llmops.telemetry.common import UnrecognisedFormat, first_json, noise_lines
from llmops.telemetry.units import clean_name, is_missing, to_int

_WATTS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(W|mW|uW|µW)?\s*$")
_SCALE = {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "µW": 1e-6}


def to_watts(value: Any, default_unit: str = "W") -> float | None:
    """Watts in 6, "234 W", "6.0W", {"value": 6, "unit": "W"}; None for N/A and the like."""
    if isinstance(value, dict):
        return to_watts(value.get("value"), value.get("unit") or default_unit)
    if isinstance(value, bool) or is_missing(value):
        return None
    if isinstance(value, (int, float)):
        return float(value) * _SCALE.get(default_unit, 1.0)
    if not isinstance(value, str):
        return None
    match = _WATTS.match(value)
    if not match:
        return None
    return float(match.group(1)) * _SCALE[match.group(2) or default_unit]


def reading(index: int, name: str | None, watts: float | None, cap: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"index": index, "name": name, "power_watts": watts}
    if cap is not None:
        record["power_cap_watts"] = cap
    return record


def _power(tool: str, devices: list[dict[str, Any]], warnings: list[str]) -> Telemetry:
    return Telemetry(tool=tool, devices=sorted(devices, key=lambda d: d["index"]), warnings=warnings)


# --- amd-smi --------------------------------------------------------------------------------------

# Socket power under the names the versions use; the first one present wins.
_AMD_KEYS = ("socket_power", "current_socket_power", "average_socket_power")


def parse_amdsmi(text: str) -> Telemetry:
    found = first_json(text)
    if found is not None:
        document, warnings = found
        records = document.get("gpu_data") if isinstance(document, dict) else document
        if isinstance(document, dict) and "gpu" in document:
            records = [document]
        if not isinstance(records, list):
            raise UnrecognisedFormat("amd-smi: JSON is neither a list of GPUs nor {\"gpu_data\": [...]}")
        return _power("amd-smi", [r for r in map(_amd_record, records) if r], list(warnings))
    lines = text.splitlines()
    if any(line.startswith("+") for line in lines) and any("AMD-SMI" in line for line in lines):
        return _amd_default_table(lines)
    if any(amdsmi._BLOCK.match(line) for line in lines):
        records, warnings = amdsmi._read_blocks(lines)
        return _power("amd-smi", [r for r in map(_amd_record, records) if r], warnings)
    if any(amdsmi._MONITOR_HEADER.match(line) for line in lines):
        return _amd_monitor(lines)
    raise UnrecognisedFormat("amd-smi: no power figures in this output (expected `amd-smi metric -p --json`)")


def _amd_record(record: Any) -> dict[str, Any] | None:
    if not isinstance(record, dict) or to_int(record.get("gpu")) is None:
        return None
    power = record.get("power")
    if not isinstance(power, dict):
        return None
    value = next((power[key] for key in _AMD_KEYS if key in power), None)
    return reading(int(record["gpu"]), None, to_watts(value))


def _amd_monitor(lines: list[str]) -> Telemetry:
    start = next(i for i, line in enumerate(lines) if amdsmi._MONITOR_HEADER.match(line))
    columns = lines[start].split()
    devices, warnings = [], noise_lines(lines[:start])
    if "POWER" not in columns:
        raise UnrecognisedFormat("amd-smi: this monitor table has no POWER column")
    for line in lines[start + 1:]:
        if not line.strip() or line.strip() == "PROCESS INFO:":
            break
        row = dict(zip(columns, re.split(r"\s{2,}", line.strip()), strict=False))
        index = to_int(row.get("GPU"))
        if index is not None:
            devices.append(reading(index, None, to_watts(row.get("POWER")), to_watts(row.get("PWR_CAP"))))
    return _power("amd-smi", devices, warnings)


_TABLE_POWER = re.compile(r"\s(\d+|N/A)/(\d+|N/A) W\s*\|\s*$")
_TABLE_INDEX = re.compile(r"^\|\s*(\d+)\s")


def _amd_default_table(lines: list[str]) -> Telemetry:
    """Bare `amd-smi` (7.x): "used/cap W" ends a GPU's first row, its index starts the second."""
    start = next(i for i, line in enumerate(lines) if line.startswith("+"))
    devices: list[dict[str, Any]] = []
    pending: tuple[float | None, float | None] | None = None
    for line in lines[start:]:
        if "Processes:" in line:
            break
        if (power := _TABLE_POWER.search(line)) and amdsmi._TABLE_NAME.match(line):
            cap = to_watts(power.group(2))
            pending = (to_watts(power.group(1)), cap or None)  # "N/A/0 W": an APU has no cap to show
        elif pending and (row := _TABLE_INDEX.match(line)):
            devices.append(reading(int(row.group(1)), None, *pending))
            pending = None
    return _power("amd-smi", devices, noise_lines(lines[:start]))


# --- rocm-smi -------------------------------------------------------------------------------------

_ROCM_JSON_KEY = re.compile(r"(average|current).*package power \(w\)", re.IGNORECASE)
_CONCISE_ROW = re.compile(r"^(\d+)\s")
_WATT_CELL = re.compile(r"(?<!\S)(\d+(?:\.\d+)?)W(?!\S)")


def parse_rocmsmi(text: str) -> Telemetry:
    found = first_json(text)
    if found is not None:
        document, warnings = found
        devices = []
        for key, fields in (document.items() if isinstance(document, dict) else []):
            card = re.fullmatch(r"card(\d+)", key)
            if card and isinstance(fields, dict):
                value = next((v for k, v in fields.items() if _ROCM_JSON_KEY.search(k)), None)
                devices.append(reading(int(card.group(1)), None, to_watts(value)))
        return _power("rocm-smi", devices, list(warnings))
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("Device") and "Power" in line), None)
    if header is None:
        raise UnrecognisedFormat("rocm-smi: no power figures in this output (expected the default table "
                                 "with its Power column, or `rocm-smi --showpower --json`)")
    devices = []
    for line in lines[header + 1:]:
        if not _CONCISE_ROW.match(line):
            continue
        # The first "N.NW" cell is Power (Avg); the last one, when there are two, is PwrCap.
        watts = _WATT_CELL.findall(line)
        devices.append(reading(int(line.split()[0]), None, float(watts[0]) if watts else None,
                               float(watts[-1]) if len(watts) > 1 else None))
    return _power("rocm-smi", devices, [])


# --- nvidia-smi -----------------------------------------------------------------------------------

NVIDIA_QUERY = "index,name,power.draw,power.limit"


def parse_nvidiasmi(text: str) -> Telemetry:
    if "<nvidia_smi_log" in text:
        return _nvidia_xml(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if "power.draw" in line), None)
    if header is None:
        raise UnrecognisedFormat("nvidia-smi: no power.draw column (expected "
                                 f"`nvidia-smi --query-gpu={NVIDIA_QUERY} --format=csv,nounits`)")
    columns = [cell.split(" [")[0].strip() for cell in lines[header].split(", ")]
    units = {cell.split(" [")[0].strip(): cell.split(" [")[1].rstrip("]") for cell in lines[header].split(", ")
             if " [" in cell}
    devices = []
    for position, line in enumerate(lines[header + 1:]):
        row = dict(zip(columns, line.split(", "), strict=False))
        # Without an index column (the netdata capture) the row order is nvidia-smi's index.
        index = to_int(row.get("index"))
        devices.append(reading(position if index is None else index, clean_name(row.get("name")),
                               to_watts(row.get("power.draw"), units.get("power.draw", "W")),
                               to_watts(row.get("power.limit"), units.get("power.limit", "W"))))
    return _power("nvidia-smi", devices, noise_lines(lines[:header]))


def _nvidia_xml(text: str) -> Telemetry:
    start = text.find("<nvidia_smi_log")
    end = text.find("</nvidia_smi_log>")
    if end < 0:
        raise UnrecognisedFormat("nvidia-smi: XML without its closing </nvidia_smi_log> (cut short?)")
    try:
        root = ET.fromstring(text[start:end + len("</nvidia_smi_log>")])
    except ET.ParseError as exc:
        raise UnrecognisedFormat(f"nvidia-smi: XML does not parse: {exc}") from None
    devices = []
    for index, gpu in enumerate(root.findall("gpu")):
        # Driver 535+ moved the block to gpu_power_readings; newer ones add average/instant draws.
        block = gpu.find("gpu_power_readings")
        block = gpu.find("power_readings") if block is None else block
        draw = cap = None
        if block is not None:
            for tag in ("power_draw", "average_power_draw", "instant_power_draw"):
                draw = to_watts(block.findtext(tag))
                if draw is not None:
                    break
            cap = to_watts(block.findtext("current_power_limit") or block.findtext("power_limit"))
        devices.append(reading(index, clean_name(gpu.findtext("product_name")), draw, cap))
    return _power("nvidia-smi", devices, [])


# --- collectors -----------------------------------------------------------------------------------

class AmdSmiPower(Collector):
    name = "amd-smi-power"
    description = "Per-GPU socket power (W) from `amd-smi metric -p --json`"
    requires = "amd-smi"
    measures = "power"

    def command(self) -> str:
        return "amd-smi metric -p --json"

    def parse(self, text: str) -> Telemetry:
        return parse_amdsmi(text)


class RocmSmiPower(Collector):
    name = "rocm-smi-power"
    description = "Per-GPU average package power (W) from rocm-smi's default table"
    requires = "rocm-smi"
    measures = "power"

    def command(self) -> str:
        return "rocm-smi"

    def parse(self, text: str) -> Telemetry:
        return parse_rocmsmi(text)


class NvidiaSmiPower(Collector):
    name = "nvidia-smi-power"
    description = "Per-GPU power.draw (W) from `nvidia-smi --query-gpu`"
    requires = "nvidia-smi"
    measures = "power"

    def command(self) -> str:
        return f"nvidia-smi --query-gpu={NVIDIA_QUERY} --format=csv,nounits"

    def parse(self, text: str) -> Telemetry:
        return parse_nvidiasmi(text)
