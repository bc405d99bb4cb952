"""`llmops apply`: plan -> run directory -> executor -> report, with Ansible-like exit codes."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType

from llmops.execute.console import Console
from llmops.execute.executor import ExecOptions, Executor, HostRecap, Interrupted
from llmops.plan.model import Plan
from llmops.plugins.registry import registry
from llmops.record.rundir import RunDir, new_run_id, write_text
from llmops.report.tables import bench_table, comparison, detail_table, report_markdown

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 4, 130, 143
_signals: list[int] = []


def run_apply(plan: Plan, *, playbook: Path, inventory: str | None, run_dir: str | None, forks: int,
              verbosity: int, as_json: bool, argv: list[str]) -> int:
    console = Console(verbosity=verbosity)
    if not plan.cells:
        console.line("llmops: no hosts or backends selected; nothing to do")
        return EXIT_OK
    run_id = Path(run_dir).name if run_dir else new_run_id()
    path = Path(run_dir) if run_dir else Path("runs") / run_id
    rundir = RunDir(path, run_id)
    rundir.create(plan, playbook, inventory, argv)
    console.banner(f"RUN {run_id} -> {path}")
    executor = Executor(plan, rundir, console, registry().backends(), ExecOptions(forks=forks))
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    interrupted = False
    recaps: dict[str, HostRecap] = {}
    try:
        recaps = executor.run()
    except Interrupted:
        interrupted = True
    except KeyboardInterrupt:
        rundir.finish("interrupted")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    results = rundir.results()
    print_tables(console, results)
    rundir.finish("interrupted" if interrupted else "complete")
    results = rundir.results()
    write_text(path / "report.md", report_markdown(results))
    if not recaps:
        recaps = {h.name: HostRecap(h.name) for h in plan.hosts}
        for cell in results["cells"]:
            r = recaps.setdefault(cell["host"], HostRecap(cell["host"]))
            if cell["status"] == "ok":
                r.ok += 1
            elif cell["status"] in ("failed",):
                r.failed += 1
    print_recap(console, recaps, as_json)
    console.line(f"\nresults: {path / 'results.json'}   report: {path / 'report.md'}")
    if interrupted:
        console.line("llmops: interrupted; every server this run started was stopped. "
                     "Finished variants are kept in the run directory.")
        return EXIT_TERMINATED if signal.SIGTERM in _signals else EXIT_INTERRUPTED
    if any(r.unreachable for r in recaps.values()):
        return EXIT_UNREACHABLE
    if any(r.failed for r in recaps.values()):
        return EXIT_FAILED
    return EXIT_OK


def run_provision(plan: Plan, *, forks: int) -> int:
    console = Console()
    executor = Executor(plan, None, console, registry().backends(), ExecOptions(forks=forks, provision_only=True))
    try:
        recaps = executor.run()
    except Interrupted:
        return EXIT_INTERRUPTED
    print_recap(console, recaps, as_json=False)
    if any(r.unreachable for r in recaps.values()):
        return EXIT_UNREACHABLE
    return EXIT_FAILED if any(r.failed for r in recaps.values()) else EXIT_OK


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM gets the same clean shutdown as Ctrl-C (servers stopped, results kept)."""
    _signals.append(signum)
    raise KeyboardInterrupt


def print_tables(console: Console, results: dict) -> None:
    cells = results.get("cells", [])
    for cell in cells:
        if not cell.get("levels"):
            continue
        console.banner(f"{cell['name']} on {cell['host']} ({cell['backend']})")
        console.block(bench_table(cell["levels"]))
        if console.verbosity >= 1:
            console.line("")
            console.block(detail_table(cell["levels"]))
    console.banner("COMPARISON")
    console.block(comparison(cells))


def print_recap(console: Console, recaps: dict[str, HostRecap], as_json: bool) -> None:
    if as_json:
        console.line(json.dumps({"recap": {h: r.to_json() for h, r in recaps.items()}}, indent=2))
        return
    console.banner("PLAY RECAP")
    for host, r in recaps.items():
        console.line(f"{host:<24} : ok={r.ok:<4} changed={r.changed:<4} unreachable={int(r.unreachable):<4} "
                     f"failed={r.failed:<4} skipped={r.skipped:<4}")
