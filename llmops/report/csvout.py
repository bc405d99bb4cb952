"""CSV exports for spreadsheets and pandas: one row per variant x level, and one per request.

Both load with a plain `pandas.read_csv(path)`: a header row, comma separators, RFC 4180
quoting (error texts may hold commas, quotes and newlines), empty fields for missing values.
Nested values are flattened to `parent.child` columns; lists are written as JSON text.

Column order is stable: a fixed list of the columns people look for first, in reading order,
then every other column found, sorted by name. Rows keep the order of results.json (variants
as planned, levels by concurrency) and of requests.jsonl.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from llmops.record.model import CellResult, Level, LevelError, Results, results_of
from llmops.record.reader import Run, read_run

# What identifies a row, then what describes the variant as a whole (repeated on each of its rows).
VARIANT_COLUMNS = [
    "host", "backend", "name", "variant", "status", "error",
    "startup_ready_s",
    "ram_source", "ram_idle_bytes", "ram_peak_bytes", "ram_level_peak_bytes",
    "vram_idle_bytes", "vram_peak_bytes", "vram_level_peak_bytes",
    "gtt_idle_bytes", "gtt_peak_bytes", "gtt_level_peak_bytes",
]

# Level metrics in the order of the tables: load, the llmapibenchmark seven, then distributions.
_DISTRIBUTIONS = [f"{name}_{stat}_{unit}" for name, unit in
                  (("ttft", "s"), ("ttfc", "s"), ("tpot", "ms"), ("itl", "ms"), ("e2e", "s"), ("connect", "s"))
                  for stat in ("mean", "min", "p50", "p90", "p99", "max")]
LEVEL_COLUMNS = [
    "level", "concurrency", "rate", "shape", "requests", "succeeded", "failed", "success_rate",
    "gen_tps", "prompt_tps", "ttft_min_s", "ttft_max_s", "total_s",
    "request_throughput", "steady_gen_tps", "prefill_tps_p50",
    *[c for c in _DISTRIBUTIONS if c not in ("ttft_min_s", "ttft_max_s")],
    "completion_tokens", "prompt_tokens", "prompt_tokens_mean", "reasoning_tokens", "full_length",
    "warmup_requests", "errors", "t_start", "t_end",
]

REQUEST_PREFIX = ["host", "backend", "name", "variant"]


def levels_csv(results: Results | dict[str, Any]) -> str:
    """Every level of every variant; a variant that never got to benchmark still gets one row."""
    rows = []
    for cell in results_of(results).cells:
        base = _variant_fields(cell)
        levels = cell.levels
        if not levels:
            rows.append(base)
            continue
        for level in levels:
            row = dict(base)
            row.update(_level_fields(cell, level))
            rows.append(row)
    # Startup phases are per variant: next to startup_ready_s, not among the level extras.
    phases = sorted({key for row in rows for key in row if key.startswith("startup_") and key != "startup_ready_s"})
    at = VARIANT_COLUMNS.index("startup_ready_s") + 1
    preferred = VARIANT_COLUMNS[:at] + phases + VARIANT_COLUMNS[at:] + LEVEL_COLUMNS
    return _to_csv(rows, preferred, always=VARIANT_COLUMNS)


def requests_csv(run: Run | Path) -> str:
    """Every request record of every variant, as the benchmark wrote it (requests.jsonl)."""
    if not isinstance(run, Run):
        run = read_run(Path(run))
    rows: list[dict[str, Any]] = []
    first_seen: dict[str, None] = {}  # an ordered set: columns in the order records show them
    for cell in run.cells:
        for record in _json_lines(run.cell_dir(cell) / "requests.jsonl"):
            row = {key: getattr(cell, key) for key in REQUEST_PREFIX}
            row.update(_flatten(record))
            first_seen.update(dict.fromkeys(row))
            rows.append(row)
    return _to_csv(rows, REQUEST_PREFIX + list(first_seen), always=REQUEST_PREFIX, sort_rest=False)


def _variant_fields(cell: CellResult) -> dict[str, Any]:
    memory, gpu, startup = cell.memory, cell.gpu_process, cell.startup
    row: dict[str, Any] = {key: getattr(cell, key) for key in ("host", "backend", "name", "variant", "status", "error")}
    row.update({
        "startup_ready_s": startup.ready_s,
        "ram_source": memory.source,
        "ram_idle_bytes": memory.idle_bytes,
        "ram_peak_bytes": memory.peak_bytes,
        "vram_idle_bytes": gpu.idle.vram_bytes,
        "vram_peak_bytes": gpu.peak.vram_bytes,
        "gtt_idle_bytes": gpu.idle.gtt_bytes,
        "gtt_peak_bytes": gpu.peak.gtt_bytes,
    })
    # Phases differ per backend (llama.cpp: model loaded; vLLM: weights, KV cache...): own columns.
    for phase, seconds in startup.phases.items():
        row[f"startup_{phase}"] = seconds
    return row


def _level_fields(cell: CellResult, level: Level) -> dict[str, Any]:
    ram = cell.memory.level_peak(level.concurrency)
    vram_gtt = next((p.peak for p in cell.gpu_process.per_level if p.concurrency == level.concurrency), None)
    # Every field the level has, plugin metrics included: the fields as written, flattened.
    row = {key: value for key, value in _flatten(level.raw()).items() if not key.startswith("errors")}
    row["errors"] = errors_text(level.errors)
    row["ram_level_peak_bytes"] = ram.peak_bytes if ram is not None else None
    row["vram_level_peak_bytes"] = vram_gtt.vram_bytes if vram_gtt is not None else None
    row["gtt_level_peak_bytes"] = vram_gtt.gtt_bytes if vram_gtt is not None else None
    return row


def errors_text(errors: list[LevelError]) -> str:
    """'3x timeout; 1x http_500': the counts; the full texts are in the per-request CSV."""
    return "; ".join(f"{e.count}x {e.kind}" for e in errors)


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, sort_keys=True)
        else:
            out[name] = value
    return out


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line cut short when the run was killed: keep the others
            if isinstance(doc, dict):
                yield doc


def _to_csv(rows: list[dict[str, Any]], preferred: list[str], always: Iterable[str],
            sort_rest: bool = True) -> str:
    present = {key for row in rows for key in row}
    always = set(always)
    columns = list(dict.fromkeys(c for c in preferred if c in present or c in always))
    rest = [key for key in dict.fromkeys(k for row in rows for k in row) if key not in columns]
    columns += sorted(rest) if sort_rest else rest
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell_text(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision: the CSV is data, not a table for the eye
    return str(value)
