"""Pieces every telemetry parser shares: the record shapes, noise around the data, merging by PID.

The normalised shapes (see docs/telemetry.md) always carry these keys, null where the capture
does not say; parsers may add extra keys (bdf, uuid, cpu_bytes, ...):

    device:  index, name, vram_used_bytes, vram_total_bytes, gtt_used_bytes, gtt_total_bytes
    process: pid, name, vram_bytes, gtt_bytes, gpus

Extra keys appear only when the capture gives them a value, so that a reader can tell the
contract's nulls ("unknown") from fields a tool never has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from llmops.errors import LlmopsError
from llmops.plugins.api import Telemetry


class UnrecognisedFormat(LlmopsError):
    """The text is not any output of the tool that we know how to read."""


def device(index: int, name: str | None = None, *, vram_used: int | None = None,
           vram_total: int | None = None, gtt_used: int | None = None, gtt_total: int | None = None,
           **extra: Any) -> dict[str, Any]:
    record = {"index": index, "name": name, "vram_used_bytes": vram_used, "vram_total_bytes": vram_total,
              "gtt_used_bytes": gtt_used, "gtt_total_bytes": gtt_total}
    record.update({key: value for key, value in extra.items() if value is not None})
    return record


def process(pid: int, name: str | None = None, *, vram: int | None = None, gtt: int | None = None,
            gpus: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    record = {"pid": pid, "name": name, "vram_bytes": vram, "gtt_bytes": gtt, "gpus": gpus}
    record.update({key: value for key, value in extra.items() if value is not None})
    return record


def first_json(text: str) -> tuple[Any, list[str]] | None:
    """The first JSON document in `text` and the non-blank lines around it, or None if there is none.

    Tools print warnings into the same stream as their JSON (group warnings, low-power notices,
    extra output after `amd-smi partition --json`), so the document may start on any line that
    begins with '[' or '{'. A line like "[output truncated]" also begins with '[' and simply
    fails to decode, and the search moves on.
    """
    decoder = json.JSONDecoder()
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith(("[", "{")):
            start = offset + len(line) - len(stripped)
            try:
                value, end = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                pass
            else:
                return value, noise_lines(text[:start]) + noise_lines(text[end:])
        offset += len(line)
    return None


def noise_lines(text: str | Iterable[str]) -> list[str]:
    """Non-blank lines, stripped: what we keep of preambles and trailers as warnings."""
    lines = text.splitlines() if isinstance(text, str) else text
    return [line.strip() for line in lines if line.strip()]


def merge_processes(rows: list[dict[str, Any]], *, repeats_are_copies: bool) -> list[dict[str, Any]]:
    """One record per PID, sorted by PID; `gpus` becomes the sorted union of where it appeared.

    The tools list a process once per GPU. What the repeated numbers mean depends on the tool:

    - nvidia-smi reports memory per (GPU, process) context, so the rows are added up
      (`repeats_are_copies=False`).
    - amd-smi (`repeats_are_copies=True`) is ambiguous across versions. ROCm 7.2 prints the same
      process-wide numbers under every GPU (4 vLLM workers x 4 GPUs, identical rows), so
      identical rows are one report and count once. Rows whose numbers differ (ROCm 6.x/7.0,
      e.g. rvs on 8 MI300X with 2.0-2.3 GB each) can only be per-GPU figures, and are added up.
    """
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_pid.setdefault(row["pid"], []).append(row)
    return [_merge_one(group, repeats_are_copies) for _, group in sorted(by_pid.items())]


def _merge_one(group: list[dict[str, Any]], repeats_are_copies: bool) -> dict[str, Any]:
    merged = dict(group[0])
    if len(group) == 1:
        return merged
    size_keys = sorted({key for row in group for key in row if key.endswith("_bytes")})
    sizes = [tuple(row.get(key) for key in size_keys) for row in group]
    if not (repeats_are_copies and len(set(sizes)) == 1):
        for position, key in enumerate(size_keys):
            known = [size[position] for size in sizes if size[position] is not None]
            merged[key] = sum(known) if known else None
    for key in {key for row in group for key in row} - set(size_keys) - {"pid"}:
        values = [row.get(key) for row in group if row.get(key) is not None]
        if values and all(isinstance(value, list) for value in values):
            merged[key] = sorted({item for value in values for item in value})
        else:
            merged[key] = values[0] if values else None
    return merged


def merge_devices(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per index, sorted; a later row fills or replaces what an earlier one said."""
    by_index: dict[int, dict[str, Any]] = {}
    for row in rows:
        target = by_index.setdefault(row["index"], dict(row))
        target.update({key: value for key, value in row.items() if value is not None})
    return [by_index[index] for index in sorted(by_index)]


def telemetry(tool: str, devices: list[dict[str, Any]], processes: list[dict[str, Any]],
              warnings: list[str], *, repeats_are_copies: bool) -> Telemetry:
    return Telemetry(tool=tool, devices=merge_devices(devices),
                     processes=merge_processes(processes, repeats_are_copies=repeats_are_copies),
                     warnings=warnings)
