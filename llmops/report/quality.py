"""The Quality section of a run's report: variants that ran the play's `quality:` pass, compared
with the reference (llmops.quality.summary), beside each one's best generation speed and memory.
Built from the run directory alone; a run without a quality pass (any older run) has none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.quality.summary import compare, markdown, read_variant
from llmops.quality.tasks import make_tasks
from llmops.record.contract import safe_name
from llmops.record.model import Results, results_of


def quality_result(run_dir: Path, results: Results | dict[str, Any]) -> dict[str, Any] | None:
    cells = [c for c in results_of(results).cells if c.quality is not None and c.quality.status == "ok"]
    if not cells:
        return None
    single_host = len({c.host for c in cells}) <= 1
    names = {id(c): c.name if single_host else f"{c.name}@{c.host}" for c in cells}
    runs = []
    for c in cells:
        vdir = Path(run_dir) / "cells" / safe_name(c.host) / safe_name(c.name) / str(c.quality.dir)
        if not vdir.is_dir():
            continue
        runs.append(read_variant(vdir, names[id(c)]))
    if not runs:
        return None
    first = cells[0].quality
    reference = first.reference
    if reference is not None and reference not in [r.name for r in runs]:
        reference = None
    result = compare(runs, make_tasks(first.tasks), first.tokens, reference)
    for c in cells:  # speed and memory beside quality
        row = result["variants"].get(names[id(c)])
        if row is not None:
            tps = [lv.gen_tps for lv in c.levels if lv.gen_tps is not None]
            row["best_gen_tps"] = max(tps) if tps else None
            row["idle_bytes"] = c.memory.idle_bytes
    return result


def quality_markdown(run_dir: Path, results: Results | dict[str, Any]) -> str:
    result = quality_result(run_dir, results)
    if result is None:
        return ""
    lines = ["", markdown(result).rstrip(), "", "| variant | best gen tok/s | idle memory MiB |", "|---|---|---|"]
    for name, row in result["variants"].items():
        tps = row.get("best_gen_tps")
        mem = row.get("idle_bytes")
        lines.append(f"| {name} | {f'{tps:.1f}' if tps is not None else '-'} | "
                     f"{f'{mem / 2**20:.0f}' if mem is not None else '-'} |")
    return "\n".join(lines) + "\n"


def quality_html(run_dir: Path, results: Results | dict[str, Any], esc) -> str:  # noqa: ANN001 - html.esc
    """The same section for report.html: one table, the verdict and the differing settings, escaped."""
    result = quality_result(run_dir, results)
    if result is None:
        return ""
    n = result["n_tokens"]
    head = ["variant", f"identical first {n}", "mean divergence", "mean logprob of ref tokens", "gap", "top-1",
            "self-agreement", "tasks correct", "best gen tok/s", "idle memory MiB"]
    rows = []
    for name, row in result["variants"].items():
        a, t = row["agreement"], row.get("tasks")
        cells = [name + (" (ref)" if row["reference"] else ""), _f(a["identical_share"]), _f(a["mean_divergence"], 2),
                 _f(a["ref_logprob"]), _f(a["logprob_gap"]), _f(a["top1"]),
                 _f(row.get("self_agreement", {}).get("identical_share")),
                 f"{t['correct']}/{t['tasks']}" if t else "-", _f(row.get("best_gen_tps"), 1),
                 _f(row["idle_bytes"] / 2**20, 0) if row.get("idle_bytes") is not None else "-"]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    flagged = result["differs_beyond_noise"]
    verdict = (f"Differs beyond the noise between repeated runs: <strong>{esc(', '.join(flagged))}</strong>."
               if flagged else "No variant differs from the reference beyond the noise between repeated runs."
               if result.get("noise") is not None else "Noise unknown (each variant ran once).")
    settings = "".join(f"<li>{esc(k)}: " + esc(", ".join(f"{v}: {x}" for v, x in vals.items())) + "</li>"
                       for k, vals in result["settings_differ"].items())
    return (f'<section id="quality"><h2>Quality (reference: {esc(result["reference"])}, {result["prompts"]} '
            f"prompts, first {n} tokens)</h2><table><thead><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + f"</tbody></table><p>{verdict}</p>" + (f"<p>Settings that differ:</p><ul>{settings}</ul>" if settings
                                                      else "") + "</section>")


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)
