"""A container's memory as its engine reports it (`docker|podman stats`): a command and a pure parse.

Recorded beside llmops's own reading of the container's memory cgroup, so that a report can show
that both agree (they read the same kernel counter; the engine prints it rounded, podman in
decimal units "13.55MB", docker in binary ones "13.2MiB").
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmops.shell import shell_word

_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B)\s*$", re.IGNORECASE)


def command(engine: str, name: str) -> str:
    # One JSON document for podman; docker prints one JSON object per line with --format json.
    return f"{engine} stats --no-stream --format json {shell_word(name, reveal=True)} 2>&1"


def parse_size(text: str) -> int | None:
    m = _SIZE.match(text or "")
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse(text: str) -> dict[str, Any] | None:
    """{"memory_bytes", "limit_bytes", "pids", "raw"} from `stats --format json`, or None."""
    text = (text or "").strip()
    try:
        doc: Any = json.loads(text)
    except ValueError:
        try:  # docker: a JSON object per line
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            return None
    if isinstance(doc, list):
        doc = doc[0] if doc and isinstance(doc[0], dict) else None
    if not isinstance(doc, dict):
        return None
    usage = str(doc.get("mem_usage") or doc.get("MemUsage") or "")
    used, _, limit = usage.partition("/")
    pids = str(doc.get("pids") or doc.get("PIDs") or "")
    return {"memory_bytes": parse_size(used), "limit_bytes": parse_size(limit),
            "pids": int(pids) if pids.isdigit() else None, "raw": usage.strip() or None}
