"""Text tables: the llmapibenchmark-style table per variant, and the side-by-side comparison.

Read only from results.json data (the typed model, llmops.record.model), so `llmops report` can
rebuild them from a run directory alone. Each public function also takes the executor's dicts
(apply prints these tables before the run directory is read back), checked by the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmops.bench import stats
from llmops.record.model import CellResult, Level, Results, cells_of, levels_of, results_of
from llmops.report import energy
from llmops.report.markdown import BENCH_HEADER, markdown_table  # noqa: F401 - also imported from here


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}"


def bench_table(levels: Sequence[Level | dict[str, Any]]) -> str:
    """The seven columns users know from llmapibenchmark (same meaning, see docs/metrics.md)."""
    rows = []
    for lv in levels_of(levels):
        label = str(lv.concurrency) if lv.rate is None else f"{lv.rate:g}/s"
        rows.append([label, _num(lv.gen_tps), _num(lv.prompt_tps), _num(lv.ttft_min_s),
                     _num(lv.ttft_max_s), f"{100.0 * (lv.success_rate or 0.0):.2f}%", _num(lv.total_s)])
    return markdown_table(BENCH_HEADER, rows, align="center")


def detail_table(levels: Sequence[Level | dict[str, Any]], cell: CellResult | dict[str, Any] | None = None) -> str:
    """Percentiles and the figures llmapibenchmark does not have; energy columns where measured,
    and (given the cell) the line that says their source and idle power, or why there are none."""
    header = ["Conc", "Req/s", "Steady TPS", "TTFT p50", "TTFT p99", "TPOT p50 ms", "ITL p50 ms", "ITL p99 ms",
              "E2E p50", "Full len", "Errors"]
    levels = levels_of(levels)
    with_energy = energy.has_energy(levels)
    if with_energy:
        header = header[:-1] + energy.HEADER + header[-1:]
    repeated = any(lv.stats for lv in levels)
    if repeated:  # the spread: where the median's 95 % interval lies, and what it rests on
        header = header[:1] + ["Runs", "Gen TPS 95% interval"] + header[1:]
    crosscheck = any(lv.server for lv in levels)
    if crosscheck:  # decode speed as we received it beside the server's own (docs/metrics.md)
        header += ["Decode tok/s client", "server", "by", "Server tokens"]
    rows = []
    notes = []
    for lv in levels:
        errors = ", ".join(f"{e.count}x {e.kind}" for e in lv.errors) or "-"
        row = [str(lv.concurrency), _num(lv.request_throughput), _num(lv.steady_gen_tps, 1),
               _num(lv.ttft_p50_s, 3), _num(lv.ttft_p99_s, 3), _num(lv.tpot_p50_ms),
               _num(lv.itl_p50_ms), _num(lv.itl_p99_ms), _num(lv.e2e_p50_s),
               f"{lv.full_length}/{lv.succeeded}", errors]
        if with_energy:
            row = row[:-1] + energy.cells(lv) + row[-1:]
        if repeated:
            gen = lv.stat("gen_tps") or {}
            span = f"{_num(gen.get('lo'))} .. {_num(gen.get('hi'))}" if gen.get("n", 0) > 1 else "-"
            row = row[:1] + [str(gen.get("n", 1)), span] + row[1:]
        if crosscheck:
            server = lv.server.model_dump() if lv.server else {}  # with its extra fields (metrics)
            row += server_columns(server)
            notes += [f"c={lv.concurrency}: {n}" for n in server_notes(server)]
        rows.append(row)
        for flag in lv.flags:
            notes.append(f"c={lv.concurrency}: {flag}")
    table = markdown_table(header, rows, align="right")
    line = energy.note(cell) if cell else None
    if line:
        table += "\n\n" + line
    if notes:
        table += "\n\nFlagged levels:\n" + "\n".join(f"- {n}" for n in notes)
    return table


def server_columns(server: dict[str, Any]) -> list[str]:
    """Client and server decode speed, which source the server's comes from, and the tokens the
    server counted (its /metrics delta, where scraped)."""
    scraped = server.get("metrics") or {}
    if scraped.get("available") is False:
        scraped = {}
    if server.get("server_decode_tps_p50") is not None:
        cols = [_num(server.get("client_decode_tps_p50"), 1), _num(server.get("server_decode_tps_p50"), 1), "timings"]
    elif scraped.get("server_decode_tps") is not None:
        cols = [_num(scraped.get("client_decode_tps"), 1), _num(scraped.get("server_decode_tps"), 1), "/metrics"]
    else:
        cols = ["-", "-", "-"]
    gen = scraped.get("generated_tokens")
    cols.append("-" if gen is None else f"{gen}/{scraped.get('client_tokens')}")
    return cols


def server_notes(server: dict[str, Any]) -> list[str]:
    scraped = server.get("metrics") or {}
    if scraped.get("available") is False:
        return [f"server /metrics not read: {scraped.get('reason')}"]
    if scraped.get("tokens_match") is False:
        return [f"the server counted {scraped.get('generated_tokens')} generated tokens, the client "
                f"{scraped.get('client_tokens')}: another client used the server, or requests were cut off"]
    return []


def mib(n: Any) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


def _phases(cell: CellResult) -> str:
    phases = cell.startup.phases
    text = ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f}" for k, v in phases.items()) or "-"
    cache = getattr(cell.startup, "cache", None)
    if cache:  # compile caches before the start (vLLM): a cold start is not a warm one
        text += f" ({cache} compile cache)"
    return text


def _gpu(cell: CellResult, when: str, kind: str) -> str:
    return mib(getattr(getattr(cell.gpu_process, when), f"{kind}_bytes"))


def comparison(cells: Sequence[CellResult | dict[str, Any]]) -> str:
    """Startup, memory and, per concurrency, who wins on Gen TPS and on TTFT."""
    if not cells:
        return "(no variants)"
    cells = cells_of(cells)
    has_gpu = any(c.memory.gpu is not None and c.memory.gpu.process is not None for c in cells)
    head = ["Variant", "Host", "Status", "Startup(s)", "RAM idle", "RAM peak"]
    if has_gpu:
        head += ["VRAM idle", "VRAM peak", "GTT idle", "GTT peak"]
    rows = []
    for c in cells:
        row = [c.name, c.host, str(c.status), _num(c.startup.ready_s),
               mib(c.memory.idle_bytes), mib(c.memory.peak_bytes)]
        if has_gpu:
            row += [_gpu(c, "idle", "vram"), _gpu(c, "peak", "vram"), _gpu(c, "idle", "gtt"), _gpu(c, "peak", "gtt")]
        rows.append(row)
    parts = [markdown_table(head, rows, align="right"),
             "RAM is the PSS of each server's whole process tree; GPU columns are what its processes hold."]
    if any(c.startup.phases for c in cells):
        prow = [[c.name, c.host, _phases(c)] for c in cells]
        parts.append("Startup phases (seconds since spawn, from the server log):\n\n"
                     + markdown_table(["Variant", "Host", "Phases"], prow, align="right"))
    concs = sorted({lv.concurrency for c in cells for lv in c.levels})
    if concs:
        names = [c.name + ("" if _single_host(cells) else f"@{c.host}") for c in cells]
        repeated = any(lv.stats for c in cells for lv in c.levels)
        header = ["Conc"] + [f"{n} TPS" for n in names] + ["Best Gen TPS", "Lowest Max TTFT"]
        header += ["Runs"] if repeated else []
        trows = []
        flagged = False
        kinds: set[str] = set()
        for conc in concs:
            tps: list[dict[str, Any] | None] = []
            ttft: list[dict[str, Any] | None] = []
            noisy = False
            for c in cells:
                lv = next((x for x in c.levels if x.concurrency == conc), None)
                good = lv is not None and lv.succeeded
                tps.append(lv.stat("gen_tps") if good else None)
                ttft.append(lv.stat("ttft_max_s") if good else None)
                noisy = noisy or bool(good and lv.flags)
                if good:
                    kinds.update(f.split(":", 1)[0] for f in lv.flags)
            flagged = flagged or noisy
            runs = min((s["n"] for s in tps if s is not None), default=0)
            trows.append([str(conc)] + [stats.fmt_interval(v) for v in tps]
                         + [_winner(names, tps, True, noisy), _winner(names, ttft, False, noisy)]
                         + ([str(runs) if runs else "-"] if repeated else []))
        title = ("Per concurrency level (median ± half the 95 % interval; a winner only where the intervals "
                 "do not overlap):" if repeated else "Per concurrency level:")
        parts.append(title + "\n\n" + markdown_table(header, trows, align="right"))
        if flagged:
            # The kinds actually raised ("imprecise", "host busy", ...): a generic list would blame
            # the host for a level that was only short of its precision target.
            parts.append(f"* a level of this row was flagged ({'; '.join(sorted(kinds))}): see the "
                         "variant's detail table.")
    return "\n\n".join(parts)


def _winner(names: list[str], values: list[dict[str, Any] | None], higher_is_better: bool, noisy: bool = False) -> str:
    v = stats.verdict(list(zip(names, values, strict=False)), higher_is_better)
    mark = " *" if noisy else ""
    if v["kind"] == "none":
        return "-"
    if v["kind"] == "tie":
        return "tie (within noise)" + mark
    return f"{v['name']} ({v['value']:.2f})" + mark


def _single_host(cells: list[CellResult]) -> bool:
    return len({c.host for c in cells}) <= 1


def report_markdown(results: Results | dict[str, Any]) -> str:
    """report.md: what the terminal showed, for pasting into an issue or a blog post."""
    results = results_of(results)
    cells = results.cells
    lines = [f"# llmops run {results.run_id if 'run_id' in results.model_fields_set else ''}", ""]
    lines.append(f"Playbook `{results.playbook}`, inventory `{results.inventory}`, "
                 f"status **{results.status}**.")
    lines.append("")
    try:
        from llmops.report.html import summary_markdown

        lines += ["## Summary", "", summary_markdown(results), ""]
    except ImportError:  # matplotlib missing: the tables below still say everything
        pass
    lines.append("## Comparison")
    lines.append("")
    lines.append(comparison(cells))
    for c in cells:
        lines += ["", f"## {c.name} on {c.host} ({c.backend})", ""]
        lines.append(f"```\n{c.command}\n```")
        if c.status != "ok":
            lines.append(f"**{c.status}**: {c.error}")
        if c.levels:
            lines += ["", bench_table(c.levels), "", detail_table(c.levels, c)]
    lines.append("")
    return "\n".join(lines)
