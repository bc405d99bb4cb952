"""Turn the many spellings of a memory size in GPU tools into bytes, or None when unknown.

The tools agree on nothing, so one function takes every shape we have seen:

- plain integers (amd-smi JSON before ROCm 6.1/6.2, rocm-smi, sysfs): the caller says the unit;
- strings with a unit: "1.9 GB", "0.0 B", "130013 MiB", "40874MiB", "4 MiB";
- amd-smi's objects {"value": 196288, "unit": "MB"}, whose value may itself be "N/A";
- placeholders: "N/A", "[N/A]", "[Not Supported]", "" ... all mean "the tool does not know".

Every unit is binary. amd-smi and nvidia-smi write "MB" for MiB: amd-smi computes
`bytes // 2**20`, and its `convert_bytes_to_readable()` divides by 1024 per step.

Values of 2**63 and above are the "not supported" sentinels of the C libraries (UINT64_MAX, which
amd-smi renders as "16.0 EB"); no GPU has that much memory, so they become None too.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

SENTINEL_MIN = 2**63



def _binary_units() -> dict[str, int]:
    """"KB", "KiB" and "K" all mean 1024 here (keys upper-cased for lookup)."""
    units = {"B": 1, "BYTES": 1}
    for power, letter in enumerate("KMGTPEZ", start=1):
        for spelling in (f"{letter}B", f"{letter}IB", letter):
            units[spelling] = 1024**power
    return units


UNIT_BYTES = _binary_units()

_SIZE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def is_missing(value: Any) -> bool:
    """True for the tools' ways of saying "unknown": None, "", "N/A", "N/A mV", "[N/A]", "[Not Supported]"."""
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        # nvidia-smi wraps every placeholder in brackets ([N/A], [Not Found], [Unknown Error]);
        # amd-smi may glue a unit to N/A ("N/A mV").
        return text == "" or text.upper().startswith("N/A") or (text.startswith("[") and text.endswith("]"))
    return False


def to_bytes(value: Any, default_unit: str = "B") -> int | None:
    """Bytes in `value` (int, str with or without unit, or amd-smi {"value","unit"}); None if unknown.

    `default_unit` applies when the value carries no unit (a bare number or a unit-less object).
    Fractions are rounded to the nearest byte: "1.9 GB" is lossy by nature.
    """
    if isinstance(value, dict):
        unit = value.get("unit") or default_unit
        return to_bytes(value.get("value"), unit if isinstance(unit, str) else default_unit)
    if isinstance(value, bool) or is_missing(value):
        return None
    if isinstance(value, int):
        return _scaled(Decimal(value), default_unit)
    if isinstance(value, float):
        return _scaled(Decimal(repr(value)), default_unit)
    if not isinstance(value, str):
        return None
    match = _SIZE.match(value)
    if not match:
        return None
    number, unit = match.groups()
    try:
        return _scaled(Decimal(number), unit or default_unit)
    except InvalidOperation:
        return None


def to_int(value: Any) -> int | None:
    """A plain integer (pid, index, count) from an int or a decimal string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def clean_name(value: Any) -> str | None:
    """A process or device name, or None when the tool printed a placeholder ("N/A", "[Not Found]")."""
    if not isinstance(value, str) or is_missing(value):
        return None
    return value.strip()


def _scaled(number: Decimal, unit: str) -> int | None:
    """number * unit in whole bytes; None for a unit that is not a size ("ns", "%") or a sentinel."""
    multiplier = UNIT_BYTES.get(unit.strip().upper())
    if multiplier is None:
        return None
    size = int(round(number * multiplier))
    if size < 0 or size >= SENTINEL_MIN:
        return None
    return size
