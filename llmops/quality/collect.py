"""Ask each variant's server, `repeat` times, and gather the answers as VariantRuns."""

from __future__ import annotations

import aiohttp

from llmops.errors import LlmopsError
from llmops.quality.runner import QualityError, ask
from llmops.quality.summary import VariantRun
from llmops.quality.tasks import Task


async def collect_one(name: str, url: str, prompts: list[str], tasks: list[Task], n: int, repeat: int,
                      task_tokens: int = 16) -> VariantRun:
    run = VariantRun(name, {}, [], [])
    for i in range(repeat):
        try:
            answers = await ask(url, prompts, tasks if i == 0 else [], n, task_tokens=task_tokens)
        except (aiohttp.ClientError, QualityError, TimeoutError) as exc:
            raise LlmopsError(f"quality: variant {name} ({url}): {exc}") from None
        run.settings = answers.settings
        run.runs.append(answers.completions)
        if answers.task_texts:
            run.task_texts.append(answers.task_texts)
    return run


async def collect(variants: list[tuple[str, str]], prompts: list[str], tasks: list[Task], n: int,
                  repeat: int, task_tokens: int = 16) -> list[VariantRun]:
    # One server after another: they may share the machine, and quality is not a race.
    return [await collect_one(name, url, prompts, tasks, n, repeat, task_tokens) for name, url in variants]
