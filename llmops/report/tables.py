"""Text tables: the llmapibenchmark-style table per variant, and the side-by-side comparison.

Read only from results.json data (dicts), so `llmops report` can rebuild them from a run
directory alone.
"""

from __future__ import annotations

from typing import Any

BENCH_HEADER = ["Conc", "Gen TPS", "Prompt TPS", "Min TTFT(s)", "Max TTFT(s)", "Success", "Total(s)"]


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}"


def bench_table(levels: list[dict[str, Any]]) -> str:
    """The seven columns users know from llmapibenchmark (same meaning, see docs/metrics.md)."""
    rows = []
    for lv in levels:
        conc = lv.get("concurrency")
        label = str(conc) if lv.get("rate") is None else f"{lv['rate']:g}/s"
        rows.append([label, _num(lv.get("gen_tps")), _num(lv.get("prompt_tps")), _num(lv.get("ttft_min_s")),
                     _num(lv.get("ttft_max_s")), f"{100.0 * (lv.get('success_rate') or 0.0):.2f}%",
                     _num(lv.get("total_s"))])
    return markdown_table(BENCH_HEADER, rows, align="center")


def detail_table(levels: list[dict[str, Any]]) -> str:
    """Percentiles and the figures llmapibenchmark does not have."""
    header = ["Conc", "Req/s", "Steady TPS", "TTFT p50", "TTFT p99", "TPOT p50 ms", "ITL p50 ms", "ITL p99 ms",
              "E2E p50", "Full len", "Errors"]
    rows = []
    for lv in levels:
        errors = ", ".join(f"{e['count']}x {e['kind']}" for e in lv.get("errors") or []) or "-"
        rows.append([str(lv.get("concurrency")), _num(lv.get("request_throughput")), _num(lv.get("steady_gen_tps"), 1),
                     _num(lv.get("ttft_p50_s"), 3), _num(lv.get("ttft_p99_s"), 3), _num(lv.get("tpot_p50_ms")),
                     _num(lv.get("itl_p50_ms")), _num(lv.get("itl_p99_ms")), _num(lv.get("e2e_p50_s")),
                     f"{lv.get('full_length', 0)}/{lv.get('succeeded', 0)}", errors])
    return markdown_table(header, rows, align="right")


def markdown_table(header: list[str], rows: list[list[str]], align: str = "right") -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt_row(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"

    if align == "center":
        rule = "|" + "|".join(":" + "-" * w + ":" for w in widths) + "|"
    else:
        rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([fmt_row(header), rule] + [fmt_row(r) for r in rows])


def mib(n: Any) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


def _phases(startup: dict[str, Any]) -> str:
    phases = startup.get("phases") or {}
    return ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f}" for k, v in phases.items()) or "-"


def _gpu(cell: dict[str, Any], when: str, kind: str) -> str:
    gpu = ((cell.get("memory") or {}).get("gpu") or {}).get("process") or {}
    value = (gpu.get(when) or {}).get(f"{kind}_bytes")
    return mib(value)


def comparison(cells: list[dict[str, Any]]) -> str:
    """Startup, memory and, per concurrency, who wins on Gen TPS and on TTFT."""
    if not cells:
        return "(no variants)"
    has_gpu = any(((c.get("memory") or {}).get("gpu") or {}).get("process") for c in cells)
    head = ["Variant", "Host", "Status", "Startup(s)", "RAM idle", "RAM peak"]
    if has_gpu:
        head += ["VRAM idle", "VRAM peak", "GTT idle", "GTT peak"]
    rows = []
    for c in cells:
        mem = c.get("memory") or {}
        row = [c["name"], c["host"], c["status"], _num((c.get("startup") or {}).get("ready_s")),
               mib(mem.get("idle_bytes")), mib(mem.get("peak_bytes"))]
        if has_gpu:
            row += [_gpu(c, "idle", "vram"), _gpu(c, "peak", "vram"), _gpu(c, "idle", "gtt"), _gpu(c, "peak", "gtt")]
        rows.append(row)
    parts = [markdown_table(head, rows, align="right"),
             "RAM is the PSS of each server's whole process tree; GPU columns are what its processes hold."]
    if any((c.get("startup") or {}).get("phases") for c in cells):
        prow = [[c["name"], c["host"], _phases(c.get("startup") or {})] for c in cells]
        parts.append("Startup phases (seconds since spawn, from the server log):\n\n"
                     + markdown_table(["Variant", "Host", "Phases"], prow, align="right"))
    concs = sorted({lv["concurrency"] for c in cells for lv in c.get("levels") or []})
    if concs:
        names = [c["name"] + ("" if _single_host(cells) else f"@{c['host']}") for c in cells]
        header = ["Conc"] + [f"{n} TPS" for n in names] + ["Best Gen TPS", "Lowest Max TTFT"]
        trows = []
        for conc in concs:
            tps: list[float | None] = []
            ttft: list[float | None] = []
            for c in cells:
                lv = next((x for x in c.get("levels") or [] if x["concurrency"] == conc), None)
                good = lv is not None and lv.get("succeeded")
                tps.append(lv.get("gen_tps") if good else None)
                ttft.append(lv.get("ttft_max_s") if good else None)
            trows.append([str(conc)] + [_num(v) for v in tps] + [_winner(names, tps, max), _winner(names, ttft, min)])
        parts.append("Per concurrency level:\n\n" + markdown_table(header, trows, align="right"))
    return "\n\n".join(parts)


def _winner(names: list[str], values: list[float | None], pick: Any) -> str:
    known = [(v, n) for v, n in zip(values, names) if v is not None]
    if not known:
        return "-"
    best = pick(v for v, _ in known)
    return f"{next(n for v, n in known if v == best)} ({best:.2f})"


def _single_host(cells: list[dict[str, Any]]) -> bool:
    return len({c["host"] for c in cells}) <= 1


def report_markdown(results: dict[str, Any]) -> str:
    """report.md: what the terminal showed, for pasting into an issue or a blog post."""
    cells = results.get("cells", [])
    lines = [f"# llmops run {results.get('run_id', '')}", ""]
    lines.append(f"Playbook `{results.get('playbook')}`, inventory `{results.get('inventory')}`, "
                 f"status **{results.get('status')}**.")
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
        lines += ["", f"## {c['name']} on {c['host']} ({c['backend']})", ""]
        lines.append(f"```\n{c.get('command')}\n```")
        if c.get("status") != "ok":
            lines.append(f"**{c.get('status')}**: {c.get('error')}")
        if c.get("levels"):
            lines += ["", bench_table(c["levels"]), "", detail_table(c["levels"])]
    lines.append("")
    return "\n".join(lines)
