"""report.html: one self-contained page that answers "which server, and why" at a glance.

The page must open from a mail attachment, offline: no scripts, no external fonts, styles or
images. Plots are matplotlib figures inlined as SVG; their text and axes are drawn in a
placeholder colour that is swapped for `currentColor`, so they follow the page's light or dark
scheme (`prefers-color-scheme`), and their backgrounds are transparent. A Content-Security-
Policy forbids every request, so a later edit cannot make the page phone home unnoticed.

Reading order: the summary (one screen: per variant startup, memory, best Gen TPS and where TTFT
p99 crosses the threshold, then who wins what), the plots, each variant's tables and exact
command, and last the facts of each host, so the page is also the set-up record of the run.
Everything is read from the run directory alone: results.json through the typed reader
(llmops.record.reader), the optional side files (plan, facts, provisioning) as plain JSON.
"""

from __future__ import annotations

import functools
import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.bench import stats
from llmops.record.contract import safe_name
from llmops.record.model import CellResult, Level, Results, Startup, cells_of, levels_of, results_of
from llmops.record.reader import read_run
from llmops.report import energy
from llmops.report.csvout import LEVEL_COLUMNS, errors_text
from llmops.report.markdown import BENCH_HEADER, markdown_table
from llmops.shell import MASK

DEFAULT_TTFT_THRESHOLD_S = 1.0

# Placeholder colours, replaced in the SVG text: foreground (text, axes, ticks), grid, background.
FG, GRID, BG = "#010203", "#040506", "#070809"
# Mid-luminance hues: about 4:1 contrast on white and on the dark background alike.
PALETTE = ["#3b82f6", "#ea580c", "#16a34a", "#db2777", "#a855f7", "#0d9488", "#ca8a04", "#dc2626"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

# Values that look like credentials even under an innocent-looking name.
# Long letter-and-digit runs are how API keys look; paths and model ids have "/" or "." in them.
SECRET_VALUE = re.compile(r"^(hf_|sk-|ghp_|gho_|github_pat_|xox[abp]-|glpat-|AKIA)"
                          r"|^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-]{32,}$")
SECRET_OPTION = re.compile(r"(--(?:api-key|hf-token|token|password)[ =])(?!\*\*\*)(\S+)")


# --- reading the run directory -----------------------------------------------------------------

@dataclass
class Run:
    path: Path
    results: Results
    meta: dict[str, Any] = field(default_factory=dict)
    plan_cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    provision: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def cells(self) -> list[CellResult]:
        return self.results.cells

    def cell_dir(self, cell: CellResult) -> Path:
        return self.path / "cells" / safe_name(cell.host) / safe_name(cell.name)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # optional files: a run interrupted early may not have them


def load_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    run = Run(run_dir, read_run(run_dir).results, meta=_read_json(run_dir / "meta.json") or {})
    plan = _read_json(run_dir / "plan.json") or {}
    run.plan_cells = {(c.get("host"), c.get("name")): c for c in plan.get("cells", [])}
    for path in sorted((run_dir / "facts").glob("*.json")):
        run.facts[path.stem] = _read_json(path) or {}
    for path in sorted((run_dir / "hosts").glob("*/provision.json")):
        run.provision[path.parent.name] = _read_json(path) or []
    return run


# --- the numbers behind the summary ------------------------------------------------------------

@dataclass
class VariantSummary:
    cell: CellResult
    label: str
    colour: str
    marker: str
    startup_s: float | None
    ram_idle: int | None
    ram_peak: int | None
    vram_idle: int | None
    vram_peak: int | None
    gtt_idle: int | None
    gtt_peak: int | None
    first_level: str | None
    single_tps: float | None  # Gen TPS at the lowest level: what one user sees
    best_tps: float | None
    best_tps_at: str | None
    ttft_cross_at: str | None  # first level whose TTFT p99 is over the threshold (or that failed)
    ttft_ok_up_to: str | None  # last level before that
    levels_tested: str | None
    min_success: float | None
    single_stat: dict[str, Any] | None = None  # Gen TPS at the first level: median, interval, runs
    best_stat: dict[str, Any] | None = None
    single_flags: list[str] = field(default_factory=list)  # why the first level's figures may mislead
    best_flags: list[str] = field(default_factory=list)

    @property
    def plot_label(self) -> str:
        return self.label.replace("$", r"\$")  # matplotlib reads $...$ as mathematics

    @property
    def gpu_peak(self) -> int | None:
        if self.vram_peak is None and self.gtt_peak is None:
            return None
        return (self.vram_peak or 0) + (self.gtt_peak or 0)


def level_label(level: Level) -> str:
    return f"{level.rate:g}/s" if level.rate is not None else str(level.concurrency)


def _ordered_levels(cell: CellResult) -> list[Level]:
    return sorted(cell.levels, key=lambda lv: (lv.rate or 0, lv.concurrency or 0))


def over_threshold(level: Level, threshold_s: float) -> bool:
    """TTFT p99 is over the threshold; or more than 1 % of requests never got a first token, which
    puts the p99 of all requests (not only of the successful ones) at infinity."""
    if not level.succeeded or (level.success_rate or 0.0) < 0.99:
        return True
    return (level.ttft_p99_s or 0.0) > threshold_s


def summarize(cells: Sequence[CellResult | dict[str, Any]], ttft_threshold_s: float) -> list[VariantSummary]:
    cells = cells_of(cells)
    single_host = len({c.host for c in cells}) <= 1
    out = []
    for i, cell in enumerate(cells):
        memory, gpu = cell.memory, cell.gpu_process
        levels = _ordered_levels(cell)
        served = [lv for lv in levels if lv.succeeded]
        best = max(served, key=lambda lv: lv.gen_tps or 0.0, default=None)
        cross = next((lv for lv in levels if over_threshold(lv, ttft_threshold_s)), None)
        before = [lv for lv in levels if cross is None or levels.index(lv) < levels.index(cross)]
        rates = [lv.success_rate for lv in levels if lv.success_rate is not None]
        out.append(VariantSummary(
            cell=cell,
            label=cell.name if single_host else f"{cell.name} @ {cell.host}",
            colour=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)],
            startup_s=cell.startup.ready_s,
            ram_idle=memory.idle_bytes, ram_peak=memory.peak_bytes,
            vram_idle=gpu.idle.vram_bytes, vram_peak=gpu.peak.vram_bytes,
            gtt_idle=gpu.idle.gtt_bytes, gtt_peak=gpu.peak.gtt_bytes,
            first_level=level_label(levels[0]) if levels else None,
            single_tps=levels[0].gen_tps if levels and levels[0].succeeded else None,
            best_tps=best.gen_tps if best else None,
            best_tps_at=level_label(best) if best else None,
            ttft_cross_at=level_label(cross) if cross else None,
            ttft_ok_up_to=level_label(before[-1]) if before else None,
            levels_tested=level_label(levels[-1]) if levels else None,
            min_success=min(rates) if rates else None,
            single_stat=levels[0].stat("gen_tps") if levels and levels[0].succeeded else None,
            best_stat=best.stat("gen_tps") if best else None,
            single_flags=list(levels[0].flags) if levels else [],
            best_flags=list(best.flags) if best else [],
        ))
    return out


# --- formatting --------------------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.2f} GiB"
    return f"{n / 1024 ** 2:.1f} MiB"


def fmt_num(x: float | None, digits: int = 2, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}{unit}"


def fmt_seconds(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def _mem_unit(values: Iterable[float | None]) -> tuple[float, str]:
    known = [v for v in values if v]
    return (1024 ** 3, "GiB") if known and max(known) >= 2 * 1024 ** 3 else (1024 ** 2, "MiB")


# --- secrets -------------------------------------------------------------------------------------

def looks_secret(key: str, value: Any) -> bool:
    from llmops.plan.planner import SECRET_ENV  # the names the planner masks; we add the values

    text = "" if value is None else str(value)
    return bool(SECRET_ENV.search(key)) or bool(SECRET_VALUE.search(text)) and text != MASK


def shown_env(env: dict[str, Any]) -> dict[str, str]:
    """The environment as printed: masked already, and anything that still looks secret masked too."""
    return {k: (MASK if looks_secret(k, v) else str(v)) for k, v in (env or {}).items()}


def shown_command(cell: CellResult | dict[str, Any]) -> str:
    """The exact command, environment first, as one could paste it into a shell on the host."""
    cell = cells_of([cell])[0]
    command = SECRET_OPTION.sub(lambda m: m.group(1) + MASK, cell.command or "")
    env = " ".join(f"{k}={v}" for k, v in shown_env(cell.env).items())
    return f"{env} {command}".strip()


# --- plots -------------------------------------------------------------------------------------

STYLE = {
    "svg.fonttype": "none",  # real text: selectable, small, in the page's font
    "svg.hashsalt": "llmops",  # the same input gives the same file
    "font.family": "sans-serif",
    "font.size": 10,
    "text.color": FG, "axes.labelcolor": FG, "axes.edgecolor": FG,
    "xtick.color": FG, "ytick.color": FG, "grid.color": GRID, "grid.alpha": 0.25,
    "axes.facecolor": "none", "figure.facecolor": "none", "savefig.transparent": True,
    "legend.facecolor": BG, "legend.edgecolor": GRID, "legend.framealpha": 0.85,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 11, "axes.titleweight": "bold", "axes.titlelocation": "left",
}


class Plots:
    """Makes the figures of one report; each SVG gets its own id prefix (they share a page)."""

    def __init__(self) -> None:
        self.count = 0

    def figure(self, width: float, height: float) -> Any:
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), layout="constrained")

    def svg(self, fig: Any, title: str) -> str:
        import matplotlib

        self.count += 1
        buf = io.StringIO()
        with matplotlib.rc_context(STYLE):
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        return _page_svg(buf.getvalue(), f"f{self.count}-", title)


def _page_svg(svg: str, prefix: str, title: str) -> str:
    """A standalone SVG file made fit to live inline in the page."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # Ids must be unique in the page: every figure has its own "axes_1" and clip paths.
    svg = re.sub(r'id="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}\1"', svg)
    svg = svg.replace(FG, "currentColor").replace(GRID, "currentColor").replace(BG, "var(--bg)")
    svg = re.sub(r"font-family: '[^']*'", "font-family: var(--plot-font)", svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{esc(title)}" ', 1)
    return svg


def _with_style(fn: Any) -> Any:
    """Figures take rcParams when they are made, so drawing runs inside the style too."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)
    return wrapped


def _x_axis(ax: Any, variants: list[VariantSummary]) -> None:
    """Log-2 x with a tick at every level that was run, written as plain numbers."""
    from matplotlib.ticker import FixedLocator, NullLocator

    xs = sorted({_x(lv) for v in variants for lv in v.cell.levels if _x(lv) > 0})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    rate = _is_rate(variants)
    ax.set_xlabel("Request rate (requests/s, log scale)" if rate else "Concurrency (parallel requests, log scale)")
    ax.grid(True, which="major")


def _legend_below(fig: Any, handles: list[Any]) -> None:
    """Under the plot, not on it: lines climb into every corner of these plots."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=9, frameon=False)


def _is_rate(variants: list[VariantSummary]) -> bool:
    levels = [lv for v in variants for lv in v.cell.levels]
    return bool(levels) and all(lv.rate is not None for lv in levels)


def _x(level: Level) -> float:
    return float(level.rate if level.rate is not None else level.concurrency or 0)


def _series(cell: CellResult, key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    """x and y of one metric; a level where nothing succeeded is a gap, not a zero."""
    xs, ys = [], []
    for lv in _ordered_levels(cell):
        value = getattr(lv, key, None) if lv.succeeded else None
        xs.append(_x(lv))
        ys.append(math.nan if value is None else value * scale)
    return xs, ys


@_with_style
def plot_gen_tps(plots: Plots, variants: list[VariantSummary]) -> str | None:
    with_levels = [v for v in variants if v.cell.levels]
    if not with_levels:
        return None
    fig = plots.figure(6.4, 3.8)
    ax = fig.add_subplot()
    for v in with_levels:
        xs, ys = _series(v.cell, "gen_tps")
        ax.plot(xs, ys, color=v.colour, marker=v.marker, linewidth=2, label=v.plot_label)
    _x_axis(ax, with_levels)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("Gen TPS (generated tokens/s, all requests)")
    ax.set_title("Generation throughput")
    _legend_below(fig, ax.get_legend_handles_labels()[0])
    return plots.svg(fig, "Gen TPS against concurrency, one line per variant")


@_with_style
def plot_ttft(plots: Plots, variants: list[VariantSummary], threshold: float) -> str | None:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    with_levels = [v for v in variants if v.cell.levels]
    if not with_levels:
        return None
    fig = plots.figure(6.4, 3.8)
    ax = fig.add_subplot()
    for v in with_levels:
        xs, p99 = _series(v.cell, "ttft_p99_s")
        _, p50 = _series(v.cell, "ttft_p50_s")
        ax.plot(xs, p99, color=v.colour, marker=v.marker, linewidth=2)
        ax.plot(xs, p50, color=v.colour, marker=v.marker, linewidth=1.2, linestyle="--", markersize=4,
                fillstyle="none")
    ax.axhline(threshold, color=FG, linestyle=":", linewidth=1.2)
    ax.annotate(f"threshold {threshold:g} s", xy=(0.01, threshold), xycoords=("axes fraction", "data"),
                xytext=(0, 3), textcoords="offset points", fontsize=8)
    _x_axis(ax, with_levels)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))  # 0.01, not 10^-2
    ax.set_ylabel("Time to first token (s, log scale)")
    ax.set_title("TTFT: p99 solid, p50 dashed")
    handles = [Line2D([], [], color=v.colour, marker=v.marker, linewidth=2, label=v.plot_label) for v in with_levels]
    handles += [Line2D([], [], color=FG, linewidth=2, label="p99"),
                Line2D([], [], color=FG, linewidth=1.2, linestyle="--", label="p50")]
    _legend_below(fig, handles)
    return plots.svg(fig, "TTFT p50 and p99 against concurrency")


@_with_style
def plot_success(plots: Plots, variants: list[VariantSummary]) -> str | None:
    """Only drawn when some level lost requests: a flat 100 % line says nothing."""
    hurt = [v for v in variants if v.min_success is not None and v.min_success < 1.0]
    if not hurt:
        return None
    fig = plots.figure(6.4, 3.2)
    ax = fig.add_subplot()
    for v in [v for v in variants if v.cell.levels]:
        levels = _ordered_levels(v.cell)
        ax.plot([_x(lv) for lv in levels], [100.0 * (lv.success_rate or 0.0) for lv in levels],
                color=v.colour, marker=v.marker, linewidth=2, label=v.plot_label)
    _x_axis(ax, variants)
    ax.set_ylim(-3, 105)
    ax.set_ylabel("Successful requests (%)")
    ax.set_title("Success rate")
    _legend_below(fig, ax.get_legend_handles_labels()[0])
    return plots.svg(fig, "Success rate against concurrency")


def startup_segments(startup: Startup | dict[str, Any]) -> list[tuple[str, float, float]]:
    """(what was reached, from, to) in seconds since spawn; the last one ends at readiness."""
    if not isinstance(startup, Startup):
        startup = Startup.model_validate(startup)
    phases = sorted(((k, v) for k, v in startup.phases.items() if v is not None), key=lambda kv: kv[1])
    ready = startup.ready_s
    out, start = [], 0.0
    for name, t in phases:
        if ready is not None and t > ready:
            t = ready  # a phase logged after the health check answered: clip it to the bar
        out.append((name.removesuffix("_s").replace("_", " "), start, t))
        start = t
    if ready is not None and ready > start:
        out.append(("ready (health check)", start, ready))
    return [s for s in out if s[2] > s[1]]


@_with_style
def plot_startup(plots: Plots, variants: list[VariantSummary]) -> str | None:
    known = [v for v in variants if v.startup_s is not None]
    if not known:
        return None
    fig = plots.figure(6.4, 0.9 + 0.6 * len(known))
    ax = fig.add_subplot()
    longest = max(v.startup_s or 0.0 for v in known) or 1.0
    for row, v in enumerate(reversed(known)):
        segments = startup_segments(v.cell.startup) or [("ready", 0.0, v.startup_s or 0.0)]
        for k, (name, start, end) in enumerate(segments):
            # Alternate the shade so neighbouring phases stay apart; the edge is the page colour.
            ax.barh(row, end - start, left=start, height=0.5, color=v.colour, alpha=1.0 if k % 2 == 0 else 0.55,
                    edgecolor=BG, linewidth=1)
            if (end - start) / longest > 0.12:
                ax.text((start + end) / 2, row + 0.3, name, ha="center", va="bottom", fontsize=7.5)
        ax.text((v.startup_s or 0.0) + longest * 0.01, row, fmt_seconds(v.startup_s), va="center", fontsize=9)
    ax.set_yticks(range(len(known)), [v.plot_label for v in reversed(known)])
    ax.set_xlim(0, longest * 1.15)
    ax.set_ylim(-0.6, len(known) - 0.1)
    ax.set_xlabel("Seconds from spawn until the server answered (s)")
    ax.set_title("Startup time, split into the phases its log shows")
    ax.grid(True, axis="x")
    return plots.svg(fig, "Startup time per variant, split into phases")


@_with_style
def plot_memory_bars(plots: Plots, variants: list[VariantSummary]) -> str | None:
    """One panel per kind of memory (own unit each): idle light, peak solid, in the variant's colour."""
    kinds = [(label, attr) for label, attr in (("System RAM", "ram"), ("VRAM", "vram"), ("GTT", "gtt"))
             if any(getattr(v, f"{attr}_peak") is not None or getattr(v, f"{attr}_idle") is not None
                    for v in variants)]
    if not kinds:
        return None
    fig = plots.figure(6.4, 1.1 + 0.55 * len(variants))
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    rows = list(reversed(variants))
    for ax, (label, attr) in zip(axes, kinds, strict=False):
        idle = [getattr(v, f"{attr}_idle") for v in rows]
        peak = [getattr(v, f"{attr}_peak") for v in rows]
        scale, unit = _mem_unit(idle + peak)
        top = max((x for x in idle + peak if x is not None), default=0) / scale or 1.0
        for row, v in enumerate(rows):
            for offset, value, alpha in ((0.17, idle[row], 0.45), (-0.17, peak[row], 1.0)):
                if value is None:
                    continue
                ax.barh(row + offset, value / scale, height=0.32, color=v.colour, alpha=alpha)
                ax.text(value / scale + top * 0.02, row + offset, f"{value / scale:.3g}", va="center", fontsize=7.5)
        ax.set_xlim(0, top * 1.3)
        ax.set_xlabel(f"{label} ({unit})")
        ax.grid(True, axis="x")
    axes[0].set_yticks(range(len(rows)), [v.plot_label for v in rows])
    axes[0].set_ylim(-0.6, len(rows) - 0.4)
    fig.suptitle("Memory: idle (light, upper bar) and peak (solid, lower bar)", x=0.01, ha="left",
                 fontsize=11, fontweight="bold")
    return plots.svg(fig, "Memory per variant, idle and peak")


def _downsample(ts: list[float], ys: list[float], limit: int = 1500) -> tuple[list[float], list[float]]:
    """At most `limit` points, keeping the largest of each bucket so no peak disappears."""
    if len(ts) <= limit:
        return ts, ys
    step = math.ceil(len(ts) / limit)
    out_t, out_y = [], []
    for i in range(0, len(ts), step):
        j = max(range(i, min(i + step, len(ts))), key=lambda n: ys[n])
        out_t.append(ts[j])
        out_y.append(ys[j])
    return out_t, out_y


def memory_timeline(run: Run, cell: CellResult) -> dict[str, tuple[list[float], list[float]]]:
    """name -> (seconds since spawn, bytes): RAM of the process tree, and VRAM/GTT where sampled."""
    from llmops.telemetry import procmem

    path = run.cell_dir(cell) / "memory.jsonl"
    if not path.is_file() or cell.started_at is None:
        return {}
    offset = float((run.facts.get(safe_name(cell.host)) or run.facts.get(cell.host) or {})
                   .get("controller_clock_offset_s") or 0.0)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    t0 = float(cell.started_at)
    samples = procmem.read_samples(lines, offset)
    out = {"RAM": _downsample([s.t - t0 for s in samples], [float(s.bytes) for s in samples])} if samples else {}
    out.update(_gpu_timeline(lines, offset, t0, {int(p["pid"]) for s in samples for p in s.procs if "pid" in p}))
    return out


def _gpu_timeline(lines: list[str], offset: float, t0: float, pids: set[int]) -> dict[str, tuple[list, list]]:
    if not pids or not any('"tool"' in line for line in lines):
        return {}
    try:
        from llmops.plugins.registry import registry
        from llmops.telemetry import gpumem

        samples = gpumem.read_tool_samples(lines, registry().collectors(), offset)
    except Exception:  # noqa: BLE001 - a report without the GPU line beats no report
        return {}
    out: dict[str, tuple[list, list]] = {}
    for kind in ("vram", "gtt"):
        points = [(s.t - t0, u[f"{kind}_bytes"]) for s in sorted(samples, key=lambda s: s.t)
                  if (u := gpumem.tree_usage(s, pids)) and u.get(f"{kind}_bytes") is not None]
        if points:
            out[kind.upper()] = ([p[0] for p in points], [float(p[1]) for p in points])
    return out


@_with_style
def plot_memory_timeline(plots: Plots, run: Run, variants: list[VariantSummary]) -> str | None:
    series = [(v, memory_timeline(run, v.cell)) for v in variants]
    series = [(v, s) for v, s in series if s]
    if not series:
        return None
    fig = plots.figure(12, 0.8 + 1.7 * len(series))
    axes = fig.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, (v, lines) in zip(axes, series, strict=False):
        scale, unit = _mem_unit(y for _, ys in lines.values() for y in ys)
        t0 = float(v.cell.started_at or 0.0)
        span = max((max(ts) for ts, _ in lines.values() if ts), default=1.0) or 1.0
        for k, level in enumerate(_ordered_levels(v.cell)):
            if level.t_start is None or level.t_end is None:
                continue
            start, end = level.t_start - t0, level.t_end - t0
            ax.axvspan(start, end, color=GRID, alpha=0.10 if k % 2 == 0 else 0.04, linewidth=0)
            if (end - start) / span > 0.015:  # a label per band where it fits; the bands show the rest
                ax.text((start + end) / 2, 1.0, level_label(level), transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=8)
        if v.startup_s is not None:
            ax.axvline(v.startup_s, color=FG, linestyle=":", linewidth=1)
        for name, (ts, ys) in lines.items():
            style = {"RAM": "-", "VRAM": "--", "GTT": "-."}[name]
            ax.plot(ts, [y / scale for y in ys], color=v.colour, linestyle=style, linewidth=1.6, label=name)
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"Memory ({unit})")
        ax.set_title(v.plot_label, pad=12)
        ax.grid(True, axis="y")
        if len(lines) > 1:  # RAM alone needs no key
            ax.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("Seconds since the server was spawned (s). Dotted line: ready. Shaded bands: the levels, "
                        + ("labelled by request rate." if _is_rate(variants) else "labelled by concurrency."))
    return plots.svg(fig, "Memory through the run, levels marked")


# --- HTML pieces -------------------------------------------------------------------------------

CSS = """
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa;
  --best: rgba(26, 127, 55, 0.14); --bad: #cf222e; --code: #eff2f5;
  --plot-font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23;
    --best: rgba(63, 185, 80, 0.20); --bad: #f85149; --code: #1c222b;
  }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1320px; padding: 1rem 1.5rem 4rem; background: var(--bg); color: var(--fg);
       font: 15px/1.45 var(--plot-font); }
h1 { font-size: 1.5rem; margin: 0.2rem 0; }
h2 { font-size: 1.2rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.4rem 0 0.4rem; }
p, li { max-width: 80ch; }
.muted, caption, figcaption { color: var(--muted); }
.meta { margin: 0 0 0.8rem; font-size: 0.9rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 0.4rem 0 0.8rem; }
caption { text-align: left; font-size: 0.85rem; padding-bottom: 0.3rem; caption-side: bottom; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.55rem; text-align: right; white-space: nowrap; }
#summary th { white-space: normal; vertical-align: bottom; }
#summary table { font-size: 0.9rem; }
#summary th, #summary td { padding: 0.25rem 0.45rem; }
th { background: var(--panel); font-weight: 600; }
th:first-child, td:first-child, td.text { text-align: left; }
td.best { background: var(--best); font-weight: 700; }
td.bad, .bad { color: var(--bad); font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%; margin-right: 0.4em;
          vertical-align: baseline; }
ul.verdict { padding-left: 1.2rem; margin: 0.4rem 0; }
ul.verdict li { margin: 0.15rem 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 1rem 1.5rem; }
figure { margin: 0; color: var(--fg); }
figure.wide { grid-column: 1 / -1; }
figure svg { display: block; width: 100%; height: auto; }
pre, code { font: 0.85rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
            background: var(--code); border-radius: 4px; }
code { padding: 0 0.2em; }
pre { padding: 0.6rem 0.8rem; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
details { margin: 0.4rem 0; }
summary { cursor: pointer; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.4rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
@media print { .plots { display: block; } figure { break-inside: avoid; } }
"""


def table(header: list[str], rows: list[list[str]], caption: str = "", raw: bool = False,
          classes: list[list[str]] | None = None) -> str:
    """An HTML table; cells are escaped unless `raw` (then the caller escaped them)."""
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col">{esc(h)}</th>' for h in header) + "</tr></thead><tbody>")
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            cls = (classes[r][c] if classes else "") or ""
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{value if raw else esc(value)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)  # a row per line: the page stays readable as source


def _best_index(values: list[float | None], pick: Any) -> int | None:
    known = [(x, i) for i, x in enumerate(values) if x is not None]
    if len(known) < 2:
        return None  # "best" of one is not a finding
    best = pick(x for x, _ in known)
    return next(i for x, i in known if x == best)


def _rank_value(text: str | None, tested: str | None) -> float | None:
    """TTFT column: a higher crossing level is better; never crossing beats every crossing."""
    if text is None:
        return math.inf if tested is not None else None
    try:
        return float(text.removesuffix("/s"))
    except ValueError:
        return None


@dataclass
class SummaryColumn:
    header: str
    texts: list[str]  # one per variant
    best: int | None = None  # the variant with the best value, when there is a best
    bad: list[bool] = field(default_factory=list)


@dataclass
class Finding:
    """One line of the verdict: who wins what, or what went wrong."""
    title: str
    text: str
    others: str = ""
    bad: bool = False


def summary_columns(variants: list[VariantSummary], threshold: float) -> list[SummaryColumn]:
    """The summary table as text, column by column (the HTML and the Markdown share it)."""
    has_gpu = any(v.gpu_peak is not None for v in variants)

    def column(header: str, texts: list[str], values: list[float | None] | None = None, pick: Any = None,
               bad: list[bool] | None = None) -> SummaryColumn:
        best = _best_index(values, pick) if values is not None else None
        return SummaryColumn(header, texts, best, bad or [False] * len(variants))

    columns = []
    if any(v.cell.status != "ok" for v in variants):
        columns.append(column("Status", [str(v.cell.status) for v in variants],
                              bad=[v.cell.status != "ok" for v in variants]))
    columns.append(column("Startup", [fmt_seconds(v.startup_s) for v in variants],
                          [v.startup_s for v in variants], min))
    for label, attr in [("RAM", "ram")] + ([("VRAM", "vram"), ("GTT", "gtt")] if has_gpu else []):
        # Idle and peak share a column to keep the table one screen wide; ranked on the peak.
        columns.append(column(f"{label} idle / peak",
                              [f"{fmt_bytes(getattr(v, f'{attr}_idle'))} / {fmt_bytes(getattr(v, f'{attr}_peak'))}"
                               for v in variants], [getattr(v, f"{attr}_peak") for v in variants], min))
    first_levels = {v.first_level for v in variants if v.first_level is not None}
    columns.append(column(f"Gen TPS at {first_levels.pop()}" if len(first_levels) == 1 else "Gen TPS at 1st level",
                          [fmt_num(v.single_tps) for v in variants], [v.single_tps for v in variants], max))
    columns[-1].best = _interval_best(columns[-1].best, [v.single_stat for v in variants], variants)
    columns.append(column("Best Gen TPS",
                          [fmt_num(v.best_tps) + (f" at {v.best_tps_at}" if v.best_tps_at else "") for v in variants],
                          [v.best_tps for v in variants], max))
    columns[-1].best = _interval_best(columns[-1].best, [v.best_stat for v in variants], variants)
    columns.append(column(f"TTFT p99 > {threshold:g} s at", [_cross_cell(v) for v in variants],
                          [_rank_value(v.ttft_cross_at, v.levels_tested) for v in variants], max))
    if any(v.min_success is not None and v.min_success < 1.0 for v in variants):
        columns.append(column("Lowest success",
                              ["–" if v.min_success is None else f"{100 * v.min_success:.1f} %" for v in variants],
                              bad=[(v.min_success if v.min_success is not None else 1.0) < 1.0 for v in variants]))
    return columns


def _interval_best(best: int | None, stat_list: list[dict[str, Any] | None],
                   variants: list[VariantSummary]) -> int | None:
    """No highlight where the 95 % intervals call it a tie (one run each: the plain best, as before)."""
    if best is None:
        return None
    verdict = stats.verdict([(str(i), s) for i, s in enumerate(stat_list)], higher_is_better=True)
    return best if verdict["kind"] == "winner" and verdict["name"] == str(best) else None


def summary_caption(variants: list[VariantSummary], marked: str = "Highlighted") -> str:
    has_gpu = any(v.gpu_peak is not None for v in variants)
    return (f"{marked}: best in its column (memory: by peak). Startup: spawn to first successful health check. "
            "RAM: PSS of the server's whole process tree" + ("; VRAM and GTT: what its processes hold on the GPU"
                                                             if has_gpu else "")
            + ". Gen TPS: generated tokens/s over all requests of a level. Levels are concurrency (parallel "
            "requests). A level that lost over 1 % of its requests counts as over the TTFT threshold.")


def summary_section(variants: list[VariantSummary], threshold: float) -> str:
    columns = summary_columns(variants, threshold)
    rows, classes = [], []
    for i, v in enumerate(variants):
        rows.append([f'<span class="swatch" style="background:{v.colour}"></span>{esc(v.label)} '
                     f'<span class="muted">{esc(v.cell.backend)}</span>']
                    + [esc(c.texts[i]) for c in columns])
        classes.append(["text"] + ["bad" if c.bad[i] else "best" if c.best == i else "" for c in columns])
    items = []
    for f in findings(variants, threshold):
        others = f' <span class="muted">({esc(f.others)})</span>' if f.others else ""
        cls = ' class="bad"' if f.bad else ""
        items.append(f"<li{cls}><strong>{esc(f.title)}:</strong> {esc(f.text)}{others}</li>")
    return "\n".join(['<section id="summary"><h2>Summary</h2>',
                      table(["Variant"] + [c.header for c in columns], rows, caption=summary_caption(variants),
                            raw=True, classes=classes),
                      '<ul class="verdict">\n' + "\n".join(items) + "\n</ul>" if items else "", "</section>"])


def summary_markdown(results: Results | dict[str, Any], ttft_threshold_s: float = DEFAULT_TTFT_THRESHOLD_S) -> str:
    """The same summary for report.md: a table (best values in bold) and the verdict as a list."""
    variants = summarize(results_of(results).cells, ttft_threshold_s)
    if not variants:
        return "(no variants)"
    columns = summary_columns(variants, ttft_threshold_s)
    rows = [[f"{v.label} ({v.cell.backend})"]
            + [f"**{c.texts[i]}**" if c.best == i else c.texts[i] for c in columns] for i, v in enumerate(variants)]
    lines = [markdown_table(["Variant"] + [c.header for c in columns], rows), "", summary_caption(variants, "Bold"), ""]
    for f in findings(variants, ttft_threshold_s):
        lines.append(f"- **{f.title}:** {f.text}" + (f" ({f.others})" if f.others else ""))
    return "\n".join(lines).rstrip() + "\n"


def _cross_cell(v: VariantSummary) -> str:
    if v.ttft_cross_at is not None:
        return v.ttft_cross_at
    return f"never (to {v.levels_tested})" if v.levels_tested is not None else "–"


def findings(variants: list[VariantSummary], threshold: float) -> list[Finding]:
    """Who wins what, in words: the answer to "which one?" for each thing people weigh."""
    ranked = [v for v in variants if v.cell.status == "ok" or v.cell.levels]
    has_gpu = any(v.gpu_peak is not None for v in variants)
    out: list[Finding] = []

    def best(title: str, values: list[tuple[VariantSummary, float | None]], pick: Any, show: Any) -> None:
        known = [(v, x) for v, x in values if x is not None]
        if len(known) < 2:
            return  # a race of one says nothing
        winner, value = pick(known, key=lambda p: p[1])
        out.append(Finding(title, f"{winner.label} with {show(value)}",
                           "; ".join(f"{v.label} {show(x)}" for v, x in known if v is not winner)))

    best("Starts fastest", [(v, v.startup_s) for v in ranked], min, fmt_seconds)
    if has_gpu:
        best("Least GPU memory at peak (VRAM + GTT)", [(v, v.gpu_peak) for v in ranked], min, fmt_bytes)
    best("Least system RAM at peak", [(v, v.ram_peak) for v in ranked], min, fmt_bytes)
    out += _noisy_best("Fastest for a single user (first level)",
                       [(v, v.single_stat, v.single_flags) for v in ranked])
    out += _noisy_best("Highest throughput", [(v, v.best_stat, v.best_flags) for v in ranked], at_level=True)
    holding = [(v, x) for v in ranked if (x := _rank_value(v.ttft_cross_at, v.levels_tested)) is not None]
    if len(holding) >= 2:
        winner = max(holding, key=lambda p: p[1])[0]
        out.append(Finding(f"Keeps TTFT p99 under {threshold:g} s longest", f"{winner.label}, {_cross_words(winner)}",
                           "; ".join(f"{v.label} {_cross_words(v)}" for v, _ in holding if v is not winner)))
    for v in variants:
        if v.cell.status != "ok":
            out.append(Finding(f"{v.label} {v.cell.status}", str(v.cell.error), bad=True))
        elif v.min_success is not None and v.min_success < 1.0:
            lost = [f"{lv.failed} of {lv.requests} at {level_label(lv)}"
                    for lv in _ordered_levels(v.cell) if lv.failed]
            out.append(Finding(f"{v.label} lost requests", ", ".join(lost), bad=True))
    return out


def _noisy_best(title: str, entries: list[tuple[VariantSummary, dict[str, Any] | None, list[str]]],
                at_level: bool = False) -> list[Finding]:
    """A Gen TPS verdict that names a winner only when the 95 % intervals say so (bench/stats.py),
    and says what it rests on: how many repetitions, and whether a level behind it was flagged."""
    known = [(v, s, f) for v, s, f in entries if s is not None and s.get("median") is not None]
    if len(known) < 2:
        return []  # a race of one says nothing
    verdict = stats.verdict([(v.label, s) for v, s, _ in known], higher_is_better=True)

    def show(v: VariantSummary, s: dict[str, Any]) -> str:
        text = f"{s['median']:,.1f} tok/s"
        rel = stats.relative_half_width(s)
        if rel is not None:
            text += f" ±{100 * rel:.1f} %"
        return text + (f" at {v.best_tps_at}" if at_level and v.best_tps_at else "")

    runs = verdict["n"]
    basis = (f"median of {runs} runs each, 95 % intervals" if runs > 1
             else "1 run each: no interval, so noise cannot be told apart")
    flagged = sorted({flag for _, _, flags in known for flag in flags})
    if flagged:
        basis += "; rests on flagged levels: " + "; ".join(flagged)
    if verdict["kind"] == "tie":
        tied = set(verdict["names"])
        text = "tie (within noise): " + ", ".join(f"{v.label} {show(v, s)}" for v, s, _ in known if v.label in tied)
        others = "; ".join([f"{v.label} {show(v, s)}" for v, s, _ in known if v.label not in tied] + [basis])
        return [Finding(title, text, others)]
    winner, ws, _ = next(e for e in known if e[0].label == verdict["name"])
    others = "; ".join([f"{v.label} {show(v, s)}" for v, s, _ in known if v is not winner] + [basis])
    return [Finding(title, f"{winner.label} with {show(winner, ws)}", others)]


def _cross_words(v: VariantSummary) -> str:
    if v.ttft_cross_at is None:
        return f"never over, up to {v.levels_tested}"
    if v.ttft_ok_up_to is None:
        return f"over already at {v.ttft_cross_at}"
    return f"under up to {v.ttft_ok_up_to}, over from {v.ttft_cross_at}"


def plots_section(plots: Plots, run: Run, variants: list[VariantSummary], threshold: float) -> str:
    figures = [
        (plot_gen_tps(plots, variants), "Gen TPS: tokens generated per second by all requests of a level together.",
         False),
        (plot_ttft(plots, variants, threshold), "Time to first token per level; the dotted line is the threshold.",
         False),
        (plot_success(plots, variants), "Share of requests that completed, where some did not.", False),
        (plot_startup(plots, variants), "From spawn to the first successful health check; phases from the log.",
         False),
        (plot_memory_bars(plots, variants), "Idle: after the server became ready. Peak: highest sample while "
                                            "benchmarking.", False),
        (plot_memory_timeline(plots, run, variants), "Memory through the run, every sample; RAM solid, VRAM "
                                                     "dashed, GTT dash-dotted.", True),
    ]
    body = [f"<figure{' class=wide' if wide else ''}>{svg}<figcaption>{esc(text)}</figcaption></figure>"
            for svg, text, wide in figures if svg]
    if not body:
        return ""
    return '<section id="plots"><h2>Plots</h2><div class="plots">' + "\n".join(body) + "</div></section>"


def bench_rows(levels: list[Level]) -> list[list[str]]:
    """The seven llmapibenchmark columns, with the same rounding as the Markdown report."""
    rows = []
    for lv in levels:
        rows.append([level_label(lv), fmt_num(lv.gen_tps), fmt_num(lv.prompt_tps),
                     fmt_num(lv.ttft_min_s), fmt_num(lv.ttft_max_s),
                     f"{100.0 * (lv.success_rate or 0.0):.2f}%", fmt_num(lv.total_s)])
    return rows


def full_metrics_table(typed: list[Level]) -> str:
    """Every number of every level, transposed (a row per metric) so it fits the width.

    Generic over whatever fields the levels have (a plugin's metrics too), so it reads each
    level as the fields that were written; the interval rows below use the typed level."""
    levels = [lv.raw() for lv in typed]
    keys = [k for k in LEVEL_COLUMNS if any(k in lv for lv in levels)]
    keys += sorted({k for lv in levels for k, x in lv.items() if k not in keys and isinstance(x, (int, float))})
    skip = {"level", "concurrency", "rate", "t_start", "t_end", "energy"}  # energy: a table of its own
    rows = []
    for key in [k for k in keys if k not in skip]:
        cells = []
        for lv, typed_level in zip(levels, typed, strict=True):
            value = lv.get(key)
            if key == "errors":
                cells.append(errors_text(typed_level.errors) or "–")
            elif isinstance(value, float):
                cells.append(f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}")
            elif isinstance(value, dict):
                cells.append(", ".join(f"{k} {x}" for k, x in value.items()))
            else:
                cells.append("–" if value is None else str(value))
        rows.append([key] + cells)
    if any(lv.stats for lv in typed):  # the spread behind the medians above
        rows.append(["runs"] + [str((lv.stat("gen_tps") or {}).get("n", 1)) for lv in typed])
        rows.append(["gen_tps 95% interval"] + [
            f"{g['lo']:,.4g} .. {g['hi']:,.4g}" if (g := lv.stat("gen_tps")) and g["n"] > 1 else "–"
            for lv in typed])
    if any(lv.flags for lv in typed):
        rows.append(["flags"] + ["; ".join(lv.flags) or "–" for lv in typed])
    return table(["Metric"] + [level_label(lv) for lv in typed], rows,
                 caption="Definitions: docs/metrics.md. Units are in the names (_s seconds, _ms milliseconds, "
                         "_tps tokens/s).")


def energy_section(cell: CellResult | dict[str, Any], levels: list[Level] | list[dict[str, Any]]) -> str:
    """Joules per level with the idle power subtracted, or the reason there are none."""
    levels = levels_of(levels)
    line = energy.note(cell)
    if not line:
        return ""
    if not energy.has_energy(levels):
        return f'<p class="muted">{esc(line)}</p>'
    return table(["Conc"] + energy.HEADER, [[level_label(lv)] + energy.cells(lv) for lv in levels], caption=line)


def variant_section(run: Run, v: VariantSummary) -> str:
    cell = v.cell
    levels = _ordered_levels(cell)
    anchor = "v-" + re.sub(r"[^A-Za-z0-9_-]", "-", f"{cell.host}-{cell.name}")
    out = [f'<section id="{esc(anchor)}"><h3><span class="swatch" style="background:{v.colour}"></span>'
           f"{esc(cell.name)} on {esc(cell.host)} <span class=\"muted\">({esc(cell.backend)})</span></h3>"]
    if cell.status != "ok":
        out.append(f'<p class="bad">{esc(cell.status)}: {esc(cell.error)}</p>')
    out.append("<p class=\"muted\">Command, exactly as run (secrets masked):</p>")
    out.append(f"<pre>{esc(shown_command(cell))}</pre>")
    plan_cell = run.plan_cells.get(cell.key) or {}
    bench = {k: x for k, x in (plan_cell.get("benchmark") or {}).items() if x not in (None, [], {})}
    if bench:
        out.append("<details><summary>Benchmark settings</summary>"
                   + table(["Setting", "Value"], [[k, json.dumps(x) if isinstance(x, (list, dict)) else str(x)]
                                                  for k, x in bench.items()]) + "</details>")
    if levels:
        lossy = [["bad" if c == 5 and (lv.success_rate or 0.0) < 1.0 else "" for c in range(len(BENCH_HEADER))]
                 for lv in levels]
        out.append(table(BENCH_HEADER, bench_rows(levels), caption="The llmapibenchmark table.", classes=lossy))
        out.append("<details><summary>All metrics of every level</summary>" + full_metrics_table(levels) + "</details>")
    out.append(energy_section(cell, levels))
    phases = startup_segments(cell.startup)
    if phases:
        out.append("<details><summary>Startup phases</summary>" + table(
            ["Phase reached", "At (s since spawn)", "Took (s)"],
            [[name, f"{end:.2f}", f"{end - start:.2f}"] for name, start, end in phases]) + "</details>")
    holders = _memory_holders(cell)
    if holders:
        out.append("<details><summary>Who holds the memory</summary>" + holders + "</details>")
    out.append("</section>")
    return "\n".join(out)


def _memory_holders(cell: CellResult) -> str:
    memory = cell.memory
    parts = []
    for when in ("idle", "peak"):
        procs = memory.idle_processes if when == "idle" else memory.peak_processes
        if procs:
            parts.append(table(["PID", "Process", f"RAM ({memory.source or 'rss'})"],
                               [[str(p.pid), str(p.comm), fmt_bytes(p.bytes)] for p in procs],
                               caption=f"System RAM at {when}."))
    holders = cell.gpu_process.holders
    if holders:
        parts.append(table(["PID", "Process", "VRAM", "GTT"],
                           [[str(h.pid), str(h.name), fmt_bytes(h.vram_bytes),
                             fmt_bytes(h.gtt_bytes)] for h in holders], caption="GPU memory at peak."))
    device = memory.gpu.device if memory.gpu is not None else None
    if device is not None and device.peak is not None and device.peak.raw():
        peak = device.peak
        used = {kind: f"{fmt_bytes(getattr(peak, f'{kind}_used_bytes'))} of "
                      f"{fmt_bytes(getattr(peak, f'{kind}_total_bytes'))}" for kind in ("vram", "gtt")}
        parts.append(f"<p class=\"muted\">Whole GPU at peak (every process, not only this server): "
                     f"VRAM {esc(used['vram'])}, GTT {esc(used['gtt'])}.</p>")
    return "".join(parts)


def host_section(run: Run, host: str) -> str:
    facts = run.facts.get(safe_name(host)) or run.facts.get(host) or {}
    rows: list[tuple[str, str]] = []
    os_, kernel, cpu, mem = (facts.get(k) or {} for k in ("os", "kernel", "cpu", "memory"))
    if os_:
        rows.append(("OS", os_.get("name") or os_.get("id") or "?"))
    if kernel:
        rows.append(("Kernel", f"{kernel.get('release', '?')} ({kernel.get('machine', '?')})"))
        if kernel.get("gpu_params"):
            rows.append(("GPU kernel parameters", " ".join(f"{k}={x}" for k, x in kernel["gpu_params"].items())))
    if cpu:
        rows.append(("CPU", f"{cpu.get('model', '?')} × {cpu.get('count', '?')}"))
    if mem:
        swap = f"swap {fmt_bytes(mem['swap_bytes'])}" if mem.get("swap_bytes") else "no swap"
        rows.append(("RAM", f"{fmt_bytes(mem.get('total_bytes'))} total, {swap}"))
    for g in facts.get("gpus") or []:
        rows.append(("GPU", f"{g.get('vendor', '')} {g.get('model', '')}: VRAM {fmt_bytes(g.get('vram_total_bytes'))}, "
                            f"GTT {fmt_bytes(g.get('gtt_total_bytes'))} (from {g.get('source', '?')})"))
    if facts and not facts.get("gpus"):
        rows.append(("GPU", "none found"))
    for name, value in (facts.get("versions") or {}).items():
        rows.append((f"Version: {name}", str(value)))
    for name, value in (facts.get("backends") or {}).items():
        rows.append((f"Backend: {name}", str(value)))
    if facts.get("python"):
        rows.append(("Python on host", str(facts["python"])))
    tools = facts.get("tools") or {}
    if tools:
        rows.append(("Tools found", ", ".join(sorted(k for k, x in tools.items() if x)) or "none"))
    out = [f"<h3>{esc(host)}</h3>"]
    if rows:
        out.append('<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(x)}</dd>" for k, x in rows) + "</dl>")
    else:
        out.append('<p class="muted">No facts were recorded for this host.</p>')
    if kernel.get("cmdline"):
        out.append(f"<details><summary>Kernel command line</summary><pre>{esc(kernel['cmdline'])}</pre></details>")
    steps = run.provision.get(safe_name(host)) or []
    if steps:
        out.append("<details><summary>Provisioning (what was built or fetched)</summary>" + table(
            ["Step", "Status", "Seconds"],
            [[str(s.get("name")), str(s.get("status")), fmt_num(s.get("seconds"))] for s in steps]) + "</details>")
    return "\n".join(out)


def header_section(run: Run) -> str:
    r, meta = run.results, run.meta
    models = sorted({str(c.served_model or c.model) for c in run.cells if c.served_model or c.model})
    bits = [f"status <strong>{esc(r.status or meta.get('status'))}</strong>",
            f"started {esc(r.started or meta.get('started'))}"]
    if r.finished or meta.get("finished"):
        bits.append(f"finished {esc(r.finished or meta.get('finished'))}")
    bits.append(f"playbook <code>{esc(r.playbook)}</code>")
    if models:
        bits.append("model " + ", ".join(f"<code>{esc(m)}</code>" for m in models))
    return (f"<header><h1>llmops run {esc(r.run_id or run.path.name)}</h1>"
            f'<p class="meta muted">{" · ".join(bits)}</p></header>')


def setup_section(run: Run) -> str:
    meta = run.meta
    hosts = list(dict.fromkeys(c.host for c in run.cells))
    out = ['<section id="setup"><h2>Set-up: hosts and how this run was made</h2>']
    if meta:
        argv = " ".join(str(a) for a in meta.get("argv") or [])
        out.append('<dl class="facts">'
                   f"<dt>llmops</dt><dd>{esc(meta.get('llmops_version'))} on {esc(meta.get('controller'))}, "
                   f"Python {esc(meta.get('python'))}</dd>"
                   f"<dt>Command</dt><dd><code>{esc(SECRET_OPTION.sub(lambda m: m.group(1) + MASK, argv))}</code></dd>"
                   f"<dt>Inventory</dt><dd><code>{esc(run.results.inventory)}</code></dd></dl>")
    out += [host_section(run, h) for h in hosts]
    out.append("</section>")
    return "\n".join(out)


def _quality_section(run) -> str:  # noqa: ANN001 - the loaded run
    from llmops.report.quality import quality_html

    return quality_html(run.path, run.results, esc)


def render_html(run_dir: Path, ttft_threshold_s: float = DEFAULT_TTFT_THRESHOLD_S) -> str:
    """The whole page, from the run directory alone."""
    run = load_run(Path(run_dir))
    variants = summarize(run.cells, ttft_threshold_s)
    plots = Plots()
    title = f"llmops run {run.results.run_id or run.path.name}"
    body = [header_section(run), summary_section(variants, ttft_threshold_s) if variants
            else '<p class="bad">This run has no variants.</p>',
            plots_section(plots, run, variants, ttft_threshold_s),
            '<section id="variants"><h2>Variants</h2>' + "\n".join(variant_section(run, v) for v in variants)
            + "</section>",
            _quality_section(run),
            setup_section(run),
            '<footer class="muted"><p>Made by llmops from the run directory; rebuild with '
            f"<code>llmops report {esc(run.path)} --format html</code>.</p></footer>"]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # No network at all: only the inline styles and images below may load.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ])
