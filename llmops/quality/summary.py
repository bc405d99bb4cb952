"""Variants side by side: agreement with the reference, token-level distance, task accuracy, the
noise between repeated runs of one variant, and the settings that differ. Pure (files aside:
`write` keeps everything in the run directory, `load` reads it back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.quality import tasks as task_mod
from llmops.quality.agreement import Completion, agreement

SETTING_KEYS = ("backend", "quantisation", "context", "chat template", "model file")


@dataclass
class VariantRun:
    """One variant's answers, once per repetition (index 0 is the one compared)."""

    name: str
    settings: dict[str, Any]
    runs: list[list[Completion]]
    task_texts: list[list[str]]


def differing_settings(variants: list[VariantRun]) -> dict[str, dict[str, Any]]:
    """Setting -> {variant: value} for every setting whose value is not the same everywhere."""
    keys = sorted({k for v in variants for k in v.settings},
                  key=lambda k: (SETTING_KEYS.index(k) if k in SETTING_KEYS else len(SETTING_KEYS), k))
    out = {}
    for key in keys:
        values = {v.name: v.settings.get(key) for v in variants}
        if len({json.dumps(x, sort_keys=True) for x in values.values()}) > 1:
            out[key] = values
    return out


def compare(variants: list[VariantRun], tasks: list[task_mod.Task], n: int, reference: str | None = None) -> dict:
    if not variants:
        raise ValueError("no variants")
    names = [v.name for v in variants]
    ref_name = reference or names[0]
    if ref_name not in names:
        raise ValueError(f"reference {ref_name!r} is not one of the variants ({', '.join(names)})")
    ref = next(v for v in variants if v.name == ref_name)
    ref_scores = [c.scores for c in ref.runs[0]]
    rows = {}
    for v in variants:
        row: dict[str, Any] = {"reference": v.name == ref_name, "repetitions": len(v.runs)}
        row["agreement"] = agreement(ref_scores, [c.scores for c in v.runs[0]], n).as_dict()
        if len(v.runs) > 1:
            # Each repetition against the first: how much the variant moves on its own.
            selfs = [agreement([c.scores for c in v.runs[0]], [c.scores for c in r], n) for r in v.runs[1:]]
            row["self_agreement"] = {"identical_share": min(s.identical_share for s in selfs),
                                     "mean_divergence": min(s.mean_divergence for s in selfs)}
        if tasks and v.task_texts:
            row["tasks"] = task_mod.score(tasks, v.task_texts[0])
        rows[v.name] = row
    noise = _noise(rows)
    flagged = [name for name, row in rows.items() if name != ref_name and noise is not None
               and (1 - row["agreement"]["identical_share"]) > noise["disagreement"] + noise["margin"] + 1e-9]
    return {"reference": ref_name, "n_tokens": n, "prompts": len(ref_scores), "variants": rows,
            "noise": noise, "differs_beyond_noise": flagged, "settings_differ": differing_settings(variants)}


def _noise(rows: dict[str, dict]) -> dict | None:
    """The largest share of prompts on which any variant disagreed with its own repetition.

    A variant differs beyond noise when it disagrees with the reference on more prompts than that,
    plus one prompt (margin: one prompt more could be chance)."""
    selfs = [r["self_agreement"]["identical_share"] for r in rows.values() if "self_agreement" in r]
    if not selfs:
        return None
    prompts = next(iter(rows.values()))["agreement"]["prompts"]
    return {"disagreement": 1 - min(selfs), "margin": 1 / prompts}


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(result: dict) -> str:
    n = result["n_tokens"]
    lines = [f"## Quality (reference: {result['reference']}, {result['prompts']} prompts, first {n} tokens)", "",
             f"| variant | identical first {n} | mean divergence | mean logprob of ref tokens | gap | top-1 "
             "| self-agreement | tasks correct |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in result["variants"].items():
        a = row["agreement"]
        self_share = row.get("self_agreement", {}).get("identical_share")
        t = row.get("tasks")
        task_cell = f"{t['correct']}/{t['tasks']}" if t else "-"
        lines.append(f"| {name}{' (ref)' if row['reference'] else ''} | {_fmt(a['identical_share'])} | "
                     f"{_fmt(a['mean_divergence'], 2)} | {_fmt(a['ref_logprob'])} | {_fmt(a['logprob_gap'])} | "
                     f"{_fmt(a['top1'])} | {_fmt(self_share)} | "
                     f"{task_cell} |")
    lines.append("")
    noise = result.get("noise")
    if result["differs_beyond_noise"]:
        lines.append(f"Differs beyond the noise between repeated runs ({_fmt(noise['disagreement'])} of prompts "
                     f"+ one prompt): **{', '.join(result['differs_beyond_noise'])}**.")
    elif noise is not None:
        lines.append("No variant differs from the reference beyond the noise between repeated runs.")
    else:
        lines.append("Noise unknown (each variant ran once; use repetitions >= 2).")
    if result["settings_differ"]:
        lines += ["", "Settings that differ:", ""]
        for key, values in result["settings_differ"].items():
            shown = ", ".join(f"{v}: {_short(x)}" for v, x in values.items())
            lines.append(f"- {key}: {shown}")
    return "\n".join(lines) + "\n"


def _short(x: Any) -> str:
    text = json.dumps(x) if not isinstance(x, str) else x
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."


def write(directory: Path, variants: list[VariantRun], tasks: list[task_mod.Task], result: dict) -> None:
    """quality.json, quality.md, and per variant a folder (see write_variant)."""
    directory.mkdir(parents=True, exist_ok=True)
    for v in variants:
        write_variant(directory / _safe(v.name), v, tasks)
    (directory / "quality.json").write_text(json.dumps(result, indent=2) + "\n")
    (directory / "quality.md").write_text(markdown(result))


def write_variant(vdir: Path, v: VariantRun, tasks: list[task_mod.Task]) -> None:
    """settings.json, and per repetition R every completion (completions-R.jsonl) and task answer
    (tasks-R.jsonl, with the right answer and whether it was given)."""
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "settings.json").write_text(json.dumps(v.settings, indent=2) + "\n")
    for i, run in enumerate(v.runs):
        with open(vdir / f"completions-{i}.jsonl", "w") as f:
            for c in run:
                f.write(json.dumps(c.as_dict()) + "\n")
    for i, texts in enumerate(v.task_texts):
        with open(vdir / f"tasks-{i}.jsonl", "w") as f:
            for task, text in zip(tasks, texts, strict=False):
                f.write(json.dumps({**task.as_dict(), "completion": text,
                                    "correct": task_mod.is_correct(task, text)}) + "\n")


def read_variant(vdir: Path, name: str) -> VariantRun:
    """A variant's folder back as a VariantRun (for reports built from a run directory alone)."""
    settings = json.loads((vdir / "settings.json").read_text())
    runs, texts = [], []
    i = 0
    while (vdir / f"completions-{i}.jsonl").is_file():
        runs.append([Completion.from_dict(json.loads(line))
                     for line in (vdir / f"completions-{i}.jsonl").read_text().splitlines() if line.strip()])
        i += 1
    if (vdir / "tasks-0.jsonl").is_file():
        texts.append([json.loads(line)["completion"] for line in (vdir / "tasks-0.jsonl").read_text().splitlines()
                      if line.strip()])
    return VariantRun(name, settings, runs, texts)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "variant"
