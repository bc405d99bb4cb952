"""CPU/board power from sysfs: RAPL energy counters (powercap) and hwmon power/energy files.

- /sys/class/powercap/intel-rapl:N[:M]/energy_uj (also amd-rapl:* on some AMD kernels): a
  counter in microjoules that wraps at max_energy_range_uj. Since Linux 5.10 (CVE-2020-8694) it
  is readable by root only, so a non-root user sees the zone but not its counter: we say so.
- /sys/class/hwmon/hwmonN/power1_average or power1_input (microwatts, sampled by the driver:
  amdgpu, k10temp/zenpower and others) and energy1_input (microjoules, a counter: amd_energy).

The collector prints one `key=value` line per file in a single pass; the root ("/sys") is a
parameter so tests and lab setups can point it at a fake tree. Records (one per RAPL zone or
hwmon device), in the order printed:

    {"index", "name", "source": "rapl"|"hwmon", "path", "energy_uj", "max_energy_range_uj",
     "power_watts", "denied": [file, ...], "top": bool (RAPL: a zone, not a subzone)}
"""

from __future__ import annotations

import re
from typing import Any

from llmops.plugins.api import Collector, Telemetry
from llmops.shell import shell_word

TOOL = "sysfs-power"
RAPL_FILES = ("energy_uj", "max_energy_range_uj")
HWMON_FILES = ("power1_average", "power1_input", "energy1_input")


def command(root: str = "/sys") -> str:
    """POSIX sh: every RAPL zone and hwmon device that has one of our files; `denied` for a file
    that exists but that we may not read, `unreadable` for one whose read fails (EIO, ENODATA)."""
    item = ('if [ -e "$d/$f" ]; then if [ -r "$d/$f" ]; then v=$(cat "$d/$f" 2>/dev/null) || v=unreadable; '
            'else v=denied; fi; echo "$k=$n $f=$v"; fi; ')
    return (
        f"R={shell_word(root, reveal=True)}; "
        'for d in "$R"/class/powercap/intel-rapl:* "$R"/class/powercap/amd-rapl:*; do '
        '[ -d "$d" ] || continue; n=${d##*/}; k=rapl; '
        'echo "rapl=$n name=$(cat "$d/name" 2>/dev/null)"; '
        f"for f in {' '.join(RAPL_FILES)}; do {item}done; done; "
        'for d in "$R"/class/hwmon/hwmon*; do '
        '[ -d "$d" ] || continue; n=${d##*/}; k=hwmon; '
        f"has=; for f in {' '.join(HWMON_FILES)}; do [ -e \"$d/$f\" ] && has=1; done; "
        '[ -n "$has" ] || continue; '
        'echo "hwmon=$n name=$(cat "$d/name" 2>/dev/null)"; '
        f"for f in {' '.join(HWMON_FILES)}; do {item}done; done; true"
    )


_LINE = re.compile(r"^(rapl|hwmon)=(\S+) (\w+)=(.*?)\s*$")


def parse(text: str) -> Telemetry:
    """The output of command(); empty output means no power files at all (a VM, a container)."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    warnings: list[str] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            if line.strip():
                warnings.append(line.strip())
            continue
        source, node, key, value = match.groups()
        record = records.setdefault((source, node), _record(len(records), source, node))
        if key == "name":
            record["name"] = value or None
        elif value in ("denied", "unreadable"):
            record.setdefault(value, []).append(key)
        elif value.isdigit():
            _store(record, key, int(value))
        else:
            warnings.append(f"{source} {node} {key}: not a number: {value[:40]!r}")
    return Telemetry(tool=TOOL, devices=list(records.values()), warnings=warnings)


def _record(index: int, source: str, node: str) -> dict[str, Any]:
    base = "class/powercap" if source == "rapl" else "class/hwmon"
    record: dict[str, Any] = {"index": index, "name": None, "source": source, "path": f"{base}/{node}"}
    if source == "rapl":
        record["top"] = node.count(":") == 1  # intel-rapl:0 is a zone, intel-rapl:0:1 a subzone
    return record


def _store(record: dict[str, Any], key: str, value: int) -> None:
    if key in ("energy_uj", "energy1_input"):
        record["energy_uj"] = value
    elif key == "max_energy_range_uj":
        record["max_energy_range_uj"] = value
    elif key in ("power1_average", "power1_input") and "power_watts" not in record:
        record["power_watts"] = value / 1e6  # microwatts; power1_average wins when both exist


class SysfsPower(Collector):
    name = "sysfs-power"
    description = "RAPL energy counters and hwmon power/energy from /sys (root configurable)"
    requires = None  # plain sh and cat
    measures = "power"

    def __init__(self, root: str = "/sys") -> None:
        self.root = root

    def configure(self, telemetry: Any) -> SysfsPower:
        return SysfsPower(getattr(telemetry, "sysfs_root", None) or "/sys")

    def command(self) -> str:
        return command(self.root)

    def parse(self, text: str) -> Telemetry:
        return parse(text)
