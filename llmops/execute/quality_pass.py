"""The play's `quality:` pass for one cell: after the speed levels, on the same server, the
quality prompts and tasks (llmops.quality). Completions go to the cell's folder; results.json gets
the answers' summary, and the report compares variants (llmops.report reads it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.plan.model import Cell
from llmops.quality import prompts as prompt_mod
from llmops.quality.collect import collect_one
from llmops.quality.summary import write_variant
from llmops.quality.tasks import make_tasks


def run_quality(cell: Cell, base: str, cell_dir: Path) -> dict[str, Any]:
    """Run the pass and return what results.json keeps; a failure is recorded, never raised
    (the speed levels already measured stay)."""
    spec = cell.quality
    assert spec is not None
    prompts = list(prompt_mod.SHIPPED) if spec.shipped else []
    tasks = make_tasks(spec.tasks)
    try:
        if spec.prompts_file:  # a bad line (the plan only saw that the file exists) fails the pass alone
            prompts += prompt_mod.load_user_prompts(spec.prompts_file)
        if not prompts:
            return {"status": "failed", "error": "no quality prompts (shipped: false and no prompts_file)"}
        run = asyncio.run(collect_one(cell.name, base, prompts, tasks, spec.tokens, spec.repeat, spec.task_tokens))
    except LlmopsError as exc:
        return {"status": "failed", "error": str(exc)}
    write_variant(cell_dir / "quality", run, tasks)
    return {"status": "ok", "dir": "quality", "tokens": spec.tokens, "prompts": len(prompts), "tasks": spec.tasks,
            "repetitions": spec.repeat, "reference": spec.reference, "settings": run.settings}
