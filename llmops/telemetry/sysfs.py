"""amdgpu's sysfs memory counters: /sys/class/drm/cardN/device/mem_info_{vram,gtt}_{total,used}.

Each file holds one decimal number of bytes. Our collector prints them all in one pass as

    card=card1 pci=0000:c5:00.0
    card=card1 vendor=0x1002
    card=card1 mem_info_vram_total=536870912
    ...

and we also read what people paste: `cat` transcripts ("$ cat /sys/.../mem_info_gtt_total"
followed by the number) and `grep . /sys/class/drm/card*/device/mem_info_*` ("path:number").

The device index is the DRM card number, which is machine-specific and is not the amd-smi or
HIP index; match devices across tools by `bdf` (from the listing) instead.
"""

from __future__ import annotations

import re
from typing import Any

from llmops.plugins.api import Collector, Telemetry
from llmops.telemetry.common import UnrecognisedFormat, device, telemetry
from llmops.telemetry.units import to_bytes

TOOL = "sysfs"
FILES = ("vendor", "device", "mem_info_vram_total", "mem_info_vram_used", "mem_info_gtt_total",
         "mem_info_gtt_used")

# POSIX sh. Connector entries (card0-DP-1) also have a device link, so names with '-' are skipped;
# cards without mem_info files (not amdgpu) are skipped; `if` keeps the exit status 0.
COMMAND = (
    "for d in /sys/class/drm/card[0-9]*/device; do "
    "c=${d%/device}; c=${c##*/}; "
    "case $c in *-*) continue;; esac; "
    "[ -r \"$d/mem_info_vram_total\" ] || continue; "
    "p=$(cd -P \"$d\" 2>/dev/null && pwd -P); "
    "echo \"card=$c pci=${p##*/}\"; "
    f"for f in {' '.join(FILES)}; do "
    "if [ -r \"$d/$f\" ]; then echo \"card=$c $f=$(cat \"$d/$f\" 2>/dev/null)\"; fi; "
    "done; done"
)

_LISTING = re.compile(r"^card=card(\d+)\s+(\w+)=(.*?)\s*$")
_PATH = re.compile(r"/sys/(?:class/drm|devices/\S*?)/card(\d+)/device/(\w+)$")
_CAT = re.compile(r"^\$\s*cat\s+(\S+)\s*$")
_GREP = re.compile(r"^(/sys/\S+):\s*(\S+)\s*$")


def parse(text: str) -> Telemetry:
    """Our collector's listing, or a transcript of `cat`/`grep` on the sysfs files."""
    lines = text.splitlines()
    if not text.strip():
        return Telemetry(TOOL)  # COMMAND prints nothing on a host without amdgpu cards
    if any(_LISTING.match(line) for line in lines):
        return parse_listing(text)
    if any(_CAT.match(line) or _GREP.match(line) for line in lines):
        return parse_transcript(text)
    raise UnrecognisedFormat(f"{TOOL}: expected `card=cardN key=value` lines or a `cat`/`grep` transcript "
                             "of /sys/class/drm/cardN/device files (a bare number does not say which file)")


def parse_listing(text: str) -> Telemetry:
    """The output of COMMAND."""
    values: dict[int, dict[str, str]] = {}
    warnings = []
    for line in text.splitlines():
        match = _LISTING.match(line)
        if match:
            values.setdefault(int(match.group(1)), {})[match.group(2)] = match.group(3)
        elif line.strip():
            warnings.append(line.strip())
    return _devices(values, warnings)


def parse_transcript(text: str) -> Telemetry:
    """Pasted `$ cat <file>` + value pairs, or `grep . <files>` lines; other lines are ignored."""
    values: dict[int, dict[str, str]] = {}
    pending: re.Match[str] | None = None
    for line in text.splitlines():
        cat, grep = _CAT.match(line), _GREP.match(line)
        if cat:
            pending = _PATH.search(cat.group(1))
        elif grep and (path := _PATH.search(grep.group(1))):
            values.setdefault(int(path.group(1)), {})[path.group(2)] = grep.group(2)
        elif pending and line.strip():
            values.setdefault(int(pending.group(1)), {})[pending.group(2)] = line.strip()
            pending = None
    return _devices(values, [])


def _devices(values: dict[int, dict[str, str]], warnings: list[str]) -> Telemetry:
    devices: list[dict[str, Any]] = []
    for card, files in values.items():
        devices.append(device(card, None,
                              vram_used=to_bytes(files.get("mem_info_vram_used")),
                              vram_total=to_bytes(files.get("mem_info_vram_total")),
                              gtt_used=to_bytes(files.get("mem_info_gtt_used")),
                              gtt_total=to_bytes(files.get("mem_info_gtt_total")),
                              card=f"card{card}", bdf=files.get("pci") or None,
                              pci_vendor=files.get("vendor") or None, pci_device=files.get("device") or None))
    return telemetry(TOOL, devices, [], warnings, repeats_are_copies=False)


class SysfsMemory(Collector):
    name = "sysfs"
    description = "Per-card VRAM and GTT used/total from amdgpu's sysfs mem_info_* files"
    requires = None  # plain sh and cat

    def command(self) -> str:
        return COMMAND

    def parse(self, text: str) -> Telemetry:
        return parse(text)
