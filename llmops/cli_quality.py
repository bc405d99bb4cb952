"""`llmops quality [NAME=]URL...`: do these servers answer alike? Greedy completions of the
shipped prompt set (and --prompts FILE), token-level agreement with the first (or --reference),
exact-answer tasks, and the settings that differ. Everything lands in --out."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from llmops.errors import ConfigError, LlmopsError, Problem


def parse_targets(args: tuple[str, ...]) -> list[tuple[str, str]]:
    """NAME=URL or URL (named host:port) -> [(name, url)]; bad ones are located on the command line."""
    out: list[tuple[str, str]] = []
    problems = []
    for i, arg in enumerate(args, 1):
        name, sep, url = arg.partition("=")
        if not sep or "://" in name:
            name, url = "", arg
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(Problem("<command line>", 1, i, f"{arg!r} is not a server URL", "[NAME=]http://HOST:PORT"))
            continue
        out.append((name or f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}", url))
    names = [n for n, _ in out]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("<command line>", 1, 1, f"variant name {n!r} given twice", "one name per server"))
    if problems:
        raise ConfigError(problems)
    return out


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="[NAME=]URL...")
@click.option("--reference", default=None, metavar="NAME", help="The variant the others are compared with (default: the first).")
@click.option("--prompts", "prompt_file", type=click.Path(dir_okay=False), default=None,
              help="Your own prompts too: one per line, or .jsonl with {\"prompt\": ...}.")
@click.option("--tokens", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Greedy tokens per prompt (agreement is on the first N).")
@click.option("--tasks", "n_tasks", type=click.IntRange(0, 1000), default=16, show_default=True,
              help="Exact-answer tasks made by llmops (0: none).")
@click.option("--task-tokens", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Greedy tokens per task answer (the answer is the first line).")
@click.option("--repeat", type=click.IntRange(1, 10), default=2, show_default=True,
              help="Runs per variant; the spread between them is the noise.")
@click.option("--shipped/--no-shipped", default=True, show_default=True, help="Use the shipped prompt set.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where completions and results go (default runs/quality-TIMESTAMP).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True,
              help="Markdown tables, or the whole result as JSON.")
def quality(targets: tuple[str, ...], reference: str | None, prompt_file: str | None, tokens: int, n_tasks: int,
            task_tokens: int, repeat: int, shipped: bool, out_dir: str | None, fmt: str) -> None:
    """Output quality of running servers next to each other (temperature 0, one request at a time).

    The first target is the reference unless --reference names another; each is NAME=URL or a URL.

    \b
    Examples:
      llmops quality llama=http://127.0.0.1:8080 vllm=http://127.0.0.1:8000
      llmops quality http://127.0.0.1:8080 --tokens 16 --format json
    """
    from llmops.quality import prompts as prompt_mod
    from llmops.quality.collect import collect
    from llmops.quality.summary import compare, markdown, write
    from llmops.quality.tasks import make_tasks

    variants = parse_targets(targets)
    if reference is not None and reference not in [n for n, _ in variants]:
        raise ConfigError(Problem("<command line>", 1, 1, f"--reference {reference!r} names no variant",
                                  "one of " + ", ".join(n for n, _ in variants)))
    prompts = list(prompt_mod.SHIPPED) if shipped else []
    if prompt_file:
        prompts += prompt_mod.load_user_prompts(prompt_file)
    if not prompts:
        raise ConfigError(Problem("<command line>", 1, 1, "no prompts", "--shipped or --prompts FILE"))
    tasks = make_tasks(n_tasks)
    try:
        runs = asyncio.run(collect(variants, prompts, tasks, tokens, repeat, task_tokens))
    except OSError as exc:
        raise LlmopsError(f"quality: {exc}") from None
    result = compare(runs, tasks, tokens, reference)
    directory = Path(out_dir) if out_dir else Path("runs") / time.strftime("quality-%Y%m%d-%H%M%S")
    write(directory, runs, tasks, result)
    click.echo(json.dumps(result, indent=2) if fmt == "json" else markdown(result), nl=False)
    click.echo(f"completions and results: {directory}", err=True)
