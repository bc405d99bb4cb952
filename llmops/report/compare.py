"""Compare two run directories: the same variants before and after a change, with regressions flagged.

Variants are matched on host + name, levels on concurrency (or on the request rate for
open-loop levels). For every metric the change is expressed as "how much worse, in percent of
run A": Gen TPS going down and TTFT, memory or startup going up are positive. A change is
*flagged* when it is worse than the display threshold (10 % unless told otherwise) and *fails*
when it is worse than the `--fail-on` limit given for that metric; a variant that was ok in A
and is not in B also fails. `compare` returns exit code 1 when anything failed, so a CI job
can gate on it.

--fail-on grammar: comma-separated `metric=N%`, e.g. `gen_tps=5%,ttft_p99=10%`. Metric names
are the keys of METRICS, or a group: `ttft` (p50 and p99), `memory` (RAM, VRAM and GTT),
`energy` (idle power and tokens per joule, where the host could measure power), `all` (every
metric).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmops.bench import stats
from llmops.errors import LlmopsError
from llmops.record.model import CellResult, Level, Results, results_of
from llmops.report.tables import markdown_table
from llmops.telemetry.provenance import environment_changes

DEFAULT_FLAG_PCT = 10.0


@dataclass(frozen=True)
class Metric:
    key: str  # the name used in --fail-on and in the JSON output
    label: str
    unit: str  # "s", "ms", "tok/s", "bytes", "%"
    higher_is_better: bool
    per_level: bool
    read: Callable[[CellResult, Level | None], float | None]  # (cell, level) -> value


def _startup(cell: CellResult, _: Any) -> float | None:
    return cell.startup.ready_s


def _ram(when: str) -> Callable[[CellResult, Any], float | None]:
    return lambda cell, _: getattr(cell.memory, f"{when}_bytes")


def _gpu(when: str, kind: str) -> Callable[[CellResult, Any], float | None]:
    def read(cell: CellResult, _: Any) -> float | None:
        return getattr(getattr(cell.gpu_process, when), f"{kind}_bytes")
    return read


def _level(key: str) -> Callable[[CellResult, Level | None], float | None]:
    def read(_: CellResult, level: Level | None) -> float | None:
        if level is None:
            return None
        # Timings of a level where nothing succeeded are absent, not zero: zero would look fast.
        if key != "success_rate" and key != "gen_tps" and not level.succeeded:
            return None
        return getattr(level, key, None)
    return read


def _level_ram(cell: CellResult, level: Level | None) -> float | None:
    if level is None:
        return None
    peak = cell.memory.level_peak(level.concurrency)
    return peak.peak_bytes if peak is not None else None


def _energy(key: str) -> Callable[[CellResult, Level | None], float | None]:
    """An energy figure (telemetry/energy.py, docs/metrics.md "Energy"): the variant's idle power
    when `level` is None, else that level's. Absent where the host had no power source."""
    def read(cell: CellResult, level: Level | None) -> float | None:
        part = getattr(cell if level is None else level, "energy", None)
        value = part.get(key) if isinstance(part, dict) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return read


METRICS: list[Metric] = [
    Metric("startup", "Startup", "s", False, False, _startup),
    Metric("ram_idle", "RAM idle", "bytes", False, False, _ram("idle")),
    Metric("ram_peak", "RAM peak", "bytes", False, False, _ram("peak")),
    Metric("vram_idle", "VRAM idle", "bytes", False, False, _gpu("idle", "vram")),
    Metric("vram_peak", "VRAM peak", "bytes", False, False, _gpu("peak", "vram")),
    Metric("gtt_idle", "GTT idle", "bytes", False, False, _gpu("idle", "gtt")),
    Metric("gtt_peak", "GTT peak", "bytes", False, False, _gpu("peak", "gtt")),
    Metric("gen_tps", "Gen TPS", "tok/s", True, True, _level("gen_tps")),
    Metric("ttft_p99", "TTFT p99", "s", False, True, _level("ttft_p99_s")),
    Metric("ttft_p50", "TTFT p50", "s", False, True, _level("ttft_p50_s")),
    Metric("tpot_p50", "TPOT p50", "ms", False, True, _level("tpot_p50_ms")),
    Metric("success_rate", "Success", "%", True, True, _level("success_rate")),
    Metric("ram_level_peak", "RAM peak", "bytes", False, True, _level_ram),
    Metric("idle_power", "Idle power", "W", False, False, _energy("idle_watts")),
    # Per level: completion tokens per joule of total energy (idle included), higher is better.
    Metric("tok_per_joule", "Tokens per joule", "tok/J", True, True, _energy("tokens_per_joule")),
]
BY_KEY = {m.key: m for m in METRICS}
GROUPS = {
    "ttft": ["ttft_p50", "ttft_p99"],
    "memory": ["ram_idle", "ram_peak", "vram_idle", "vram_peak", "gtt_idle", "gtt_peak", "ram_level_peak"],
    "energy": ["idle_power", "tok_per_joule"],
    "all": [m.key for m in METRICS],
}


def parse_fail_on(spec: str | None) -> dict[str, float]:
    """`gen_tps=5%,ttft_p99=10%` -> {"gen_tps": 5.0, "ttft_p99": 10.0}; groups expand to members."""
    limits: dict[str, float] = {}
    if spec is None:
        return limits
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value.endswith("%"):
            raise LlmopsError(f"--fail-on: {part!r} is not METRIC=N% (e.g. gen_tps=5%,ttft_p99=10%)")
        try:
            pct = float(value[:-1])
        except ValueError:
            raise LlmopsError(f"--fail-on: {value!r} is not a percentage (e.g. 5%)") from None
        if pct < 0 or math.isnan(pct):
            raise LlmopsError(f"--fail-on: {part!r}: the percentage must be 0 or more")
        keys = GROUPS.get(name) or ([name] if name in BY_KEY else None)
        if keys is None:
            known = ", ".join([m.key for m in METRICS] + list(GROUPS))
            raise LlmopsError(f"--fail-on: unknown metric {name!r} (known: {known})")
        for key in keys:
            limits[key] = pct
    if not limits:
        raise LlmopsError("--fail-on: empty (e.g. gen_tps=5%,ttft_p99=10%)")
    return limits


def worse_pct(metric: Metric, a: float | None, b: float | None) -> float | None:
    """How much worse B is than A, in percent of A (negative: better). None when not comparable."""
    if a is None or b is None:
        return None
    if a == 0:
        if b == 0:
            return 0.0
        worse = b < 0 if metric.higher_is_better else b > 0
        return math.inf if worse else -math.inf
    change = (b - a) / abs(a) * 100.0
    return -change if metric.higher_is_better else change


def _level_key(level: Level) -> tuple[str, float]:
    if level.rate is not None:
        return ("rate", float(level.rate))
    return ("c", float(level.concurrency or 0))


def _level_label(key: tuple[str, float]) -> str:
    return f"{key[1]:g}/s" if key[0] == "rate" else f"{key[1]:g}"


# Per-level metrics that carry a 95 % interval when the level was repeated (bench/stats.py).
STAT_KEYS = {"gen_tps": "gen_tps", "ttft_p99": "ttft_p99_s", "ttft_p50": "ttft_p50_s", "tpot_p50": "tpot_p50_ms",
             "success_rate": "success_rate"}


def _entry(metric: Metric, a: float | None, b: float | None, flag_pct: float,
           limits: dict[str, float], level_a: Level | None = None,
           level_b: Level | None = None) -> dict[str, Any]:
    worse = worse_pct(metric, a, b)
    limit = limits.get(metric.key)
    entry = {"metric": metric.key, "a": a, "b": b, "worse_pct": worse,
             "flagged": worse is not None and worse > flag_pct,
             "failed": worse is not None and limit is not None and worse > limit}
    # With repetitions on both sides, a change whose intervals overlap is noise: shown, never failed.
    key = STAT_KEYS.get(metric.key)
    sa = level_a.stats.get(key) if key and level_a is not None else None
    sb = level_b.stats.get(key) if key and level_b is not None else None
    if sa and sb and sa.n > 1 and sb.n > 1 and sa.lo is not None and sb.lo is not None:
        entry["runs"] = [sa.n, sb.n]
        entry["within_noise"] = stats.overlap(sa.model_dump(), sb.model_dump())
        if entry["within_noise"]:
            entry["failed"] = False
    return entry


def compare_results(results_a: Results | dict[str, Any], results_b: Results | dict[str, Any],
                    fail_on: str | None = None, flag_pct: float = DEFAULT_FLAG_PCT) -> dict[str, Any]:
    """The comparison as data (also the JSON output)."""
    limits = parse_fail_on(fail_on)
    results_a, results_b = results_of(results_a), results_of(results_b)
    cells_a = {c.key: c for c in results_a.cells}
    cells_b = {c.key: c for c in results_b.cells}
    variants = []
    for key, a in cells_a.items():
        b = cells_b.get(key)
        if b is None:
            continue
        variant: dict[str, Any] = {"host": key[0], "name": key[1], "backend": a.backend,
                                   "status_a": a.status, "status_b": b.status, "error_b": b.error}
        # A variant that worked before and not now is the clearest regression of all.
        variant["status_regressed"] = a.status == "ok" and b.status != "ok"
        # What differs in what built and ran the two; None where only one run recorded it, and
        # no key at all between two runs from before provenance (their output stays as it was).
        if a.provenance or b.provenance:
            variant["environment"] = environment_changes(a.provenance, b.provenance) \
                if a.provenance and b.provenance else None
        variant["metrics"] = [_entry(m, m.read(a, None), m.read(b, None), flag_pct, limits)
                              for m in METRICS if not m.per_level]
        levels_a = {_level_key(lv): lv for lv in a.levels}
        levels_b = {_level_key(lv): lv for lv in b.levels}
        variant["levels"] = []
        for lkey in sorted(set(levels_a) | set(levels_b)):
            la, lb = levels_a.get(lkey), levels_b.get(lkey)
            variant["levels"].append({
                "level": _level_label(lkey), "in_a": la is not None, "in_b": lb is not None,
                "metrics": [_entry(m, m.read(a, la), m.read(b, lb), flag_pct, limits, la, lb)
                            for m in METRICS if m.per_level],
            })
        variants.append(variant)
    regressions = _regressions(variants, gate=bool(limits))
    failed = bool(limits) and any(r["failed"] for r in regressions)
    return {
        "run_a": results_a.run_id, "run_b": results_b.run_id,
        "flag_pct": flag_pct, "fail_on": limits,
        "variants": variants,
        "only_in_a": [f"{n}@{h}" for h, n in cells_a if (h, n) not in cells_b],
        "only_in_b": [f"{n}@{h}" for h, n in cells_b if (h, n) not in cells_a],
        "regressions": regressions,
        "failed": failed,
    }


def _regressions(variants: list[dict[str, Any]], gate: bool) -> list[dict[str, Any]]:
    """Every flagged or failed change, worst first; a lost variant fails any --fail-on gate."""
    out = []
    for v in variants:
        where = f"{v['name']}@{v['host']}"
        if v["status_regressed"]:
            out.append({"variant": where, "level": None, "metric": "status", "a": v["status_a"],
                        "b": v["status_b"], "worse_pct": math.inf, "flagged": True, "failed": gate})
        for e in v["metrics"]:
            if e["flagged"] or e["failed"]:
                out.append({"variant": where, "level": None, **e})
        for lv in v["levels"]:
            for e in lv["metrics"]:
                if e["flagged"] or e["failed"]:
                    out.append({"variant": where, "level": lv["level"], **e})
    return sorted(out, key=lambda r: (not r["failed"], -r["worse_pct"]))


# --- output ---------------------------------------------------------------------------------

FLAG, FAIL = "⚠", "✖"


UNIT_LABEL = {"bytes": "MiB", "%": "%", "s": "s", "ms": "ms", "tok/s": "tok/s", "W": "W", "tok/J": "tok/J"}


def format_value(metric: Metric | None, value: Any, with_unit: bool = True) -> str:
    if value is None:
        return "-"
    if metric is None or isinstance(value, str):
        return str(value)
    if metric.unit == "bytes":
        number = f"{value / 1048576:.1f}"
    elif metric.unit == "%":
        number = f"{100.0 * value:.1f}"
    elif metric.unit in ("s", "tok/J"):
        number = f"{value:.3f}"
    else:
        number = f"{value:.2f}"
    return f"{number} {UNIT_LABEL[metric.unit]}" if with_unit and metric.unit != "tok/s" else number


def format_change(entry: dict[str, Any]) -> str:
    worse = entry["worse_pct"]
    if worse is None:
        return "-"
    if math.isinf(worse):
        text = "from 0"  # no percentage of nothing
    else:
        # Show the direction of the value itself (+ means it went up), then whether that is bad.
        went_up = (entry["b"] or 0) >= (entry["a"] or 0)
        text = f"{'+' if went_up else '-'}{abs(worse):.1f} %"
    if entry.get("within_noise"):
        text += f" (within noise, {entry['runs'][0]}+{entry['runs'][1]} runs)"
    elif entry.get("runs"):
        text += " (outside noise)"
    if entry["failed"]:
        return f"{text} {FAIL}"
    if entry["flagged"]:
        return f"{text} {FLAG}"
    return text


def compare_markdown(data: dict[str, Any]) -> str:
    limits = data["fail_on"]
    lines = [f"# llmops compare: {data['run_a']} → {data['run_b']}", ""]
    lines.append(f"A = `{data['run_a']}`, B = `{data['run_b']}`. Changes are B against A; "
                 f"{FLAG} = worse by more than {data['flag_pct']:g} %"
                 + (f", {FAIL} = worse than --fail-on ({_limits_text(limits)})" if limits else "") + ".")
    lines.append("")
    regressions = data["regressions"]
    if regressions:
        verdict = "FAIL" if data["failed"] else "regressions found"
        lines += [f"## Regressions: {len(regressions)} ({verdict})", ""]
        rows = [[r["variant"], r["level"] or "-", _metric_label(r["metric"]),
                 format_value(BY_KEY.get(r["metric"]), r["a"]), format_value(BY_KEY.get(r["metric"]), r["b"]),
                 format_change(r) if r["metric"] != "status" else f"not ok {FAIL if r['failed'] else FLAG}"]
                for r in regressions]
        lines.append(markdown_table(["Variant", "Level", "Metric", "A", "B", "Change"], rows))
    else:
        lines += ["## No regressions", ""]
        lines.append(f"Nothing got worse by more than {data['flag_pct']:g} %.")
    for label, names in (("Only in A", data["only_in_a"]), ("Only in B", data["only_in_b"])):
        if names:
            lines += ["", f"{label} (not compared): " + ", ".join(names)]
    for v in data["variants"]:
        lines += ["", f"## {v['name']} on {v['host']} ({v['backend']})", ""]
        if v["status_a"] != "ok" or v["status_b"] != "ok":
            lines += [f"Status: A {v['status_a']}, B {v['status_b']}"
                      + (f" ({v['error_b']})" if v.get("error_b") else ""), ""]
        shown = [e for e in v["metrics"] if e["a"] is not None or e["b"] is not None]
        if shown:
            rows = [[_metric_label(e["metric"]), format_value(BY_KEY[e["metric"]], e["a"]),
                     format_value(BY_KEY[e["metric"]], e["b"]), format_change(e)] for e in shown]
            lines.append(markdown_table(["Metric", "A", "B", "Change"], rows))
        if v["levels"]:
            lines += ["", _levels_table(v["levels"])]
        if "environment" in v:
            lines += _environment_lines(v["environment"])
    lines.append("")
    return "\n".join(lines)


def _environment_lines(changes: list[dict[str, Any]] | None) -> list[str]:
    if changes is None:
        return ["", "Environment: not recorded in one of the runs (older than provenance)."]
    if not changes:
        return ["", "Environment: unchanged (same build, versions, kernel and platform settings)."]
    def show(x: Any) -> str:
        text = "-" if x is None else (", ".join(map(str, x)) if isinstance(x, list) else str(x))
        return text.replace("|", "\\|").replace("\n", " ")[:120]
    rows = [[c["key"], show(c["a"]), show(c["b"])] for c in changes]
    return ["", f"Environment changes ({len(changes)}):", "", markdown_table(["What", "A", "B"], rows)]


def _levels_table(levels: list[dict[str, Any]]) -> str:
    """One row per level; each cell reads 'A → B change' (units in the header), or 'A (=)'
    when nothing moved, so the table stays narrow enough to read."""
    keys = [m.key for m in METRICS if m.per_level]
    present = [k for k in keys if any(e["a"] is not None or e["b"] is not None
                                      for lv in levels for e in lv["metrics"] if e["metric"] == k)]
    header = ["Level"] + [f"{BY_KEY[k].label} ({UNIT_LABEL[BY_KEY[k].unit]})" for k in present]
    rows = []
    for lv in levels:
        by_key = {e["metric"]: e for e in lv["metrics"]}
        row = [lv["level"] + ("" if lv["in_a"] and lv["in_b"] else " (A only)" if lv["in_a"] else " (B only)")]
        for k in present:
            e, m = by_key[k], BY_KEY[k]
            a, b = format_value(m, e["a"], with_unit=False), format_value(m, e["b"], with_unit=False)
            change = format_change(e)
            if a == b:
                row.append(f"{a} (=)")
            else:
                row.append(f"{a} → {b}" + (f" {change}" if change != "-" else ""))
        rows.append(row)
    return markdown_table(header, rows)


def _metric_label(key: str) -> str:
    if key == "status":
        return "Status"
    metric = BY_KEY[key]
    return metric.label if metric.unit in ("bytes", "%", "s", "ms", "W") else f"{metric.label} ({metric.unit})"


def _limits_text(limits: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}%" for k, v in limits.items())


def compare_json(data: dict[str, Any]) -> str:
    # Infinity (a value appearing from zero) is not JSON: write it as a string people can read.
    def clean(x: Any) -> Any:
        if isinstance(x, float) and math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(data), indent=2) + "\n"
