"""`llmops apply`: plan -> run directory -> executor -> report, with Ansible-like exit codes."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from llmops.errors import LlmopsError
from llmops.execute.console import Console
from llmops.execute.executor import ExecOptions, Executor, HostRecap, Interrupted
from llmops.plan.model import Plan
from llmops.plugins.registry import registry
from llmops.record.rundir import RunDir, new_run_id, write_text
from llmops.report.command import write_all
from llmops.report.tables import bench_table, comparison, detail_table, report_markdown

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 4, 130, 143
_signals: list[int] = []


def resume_sources(run_dir: Path, playbook: str | None,
                   inventory: str | None) -> tuple[str, str | None, set[str], dict[str, Any]]:
    """What an interrupted run was made from, and the cells it already finished.

    The original playbook and inventory are used when they still exist unchanged (their
    templates/ folder and relative paths still work), else the copies in the run directory.
    """
    results_path = run_dir / "results.json"
    meta_path = run_dir / "meta.json"
    if not results_path.exists() or not meta_path.exists():
        raise LlmopsError(f"{run_dir} is not an llmops run directory (no results.json/meta.json)")
    meta = json.loads(meta_path.read_text())
    results = json.loads(results_path.read_text())
    if playbook is None:
        original = meta.get("playbook_path")
        copy = run_dir / "playbook.yml"
        playbook = original if original and _same_file(Path(original), copy) else str(copy)
    if inventory is None:
        original = meta.get("inventory_path")
        if original and Path(original).is_dir():
            inventory = original
        elif original and _same_file(Path(original), run_dir / "inventory.yml"):
            inventory = original
        elif original:
            inventory = str(run_dir / ("inventory" if (run_dir / "inventory").is_dir() else "inventory.yml"))
    done = {f"{c['host']}/{c['name']}" for c in results.get("cells", []) if c.get("status") == "ok"}
    return playbook, inventory, done, dict(meta.get("selection") or {})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def run_apply(plan: Plan, *, playbook: Path, inventory: str | None, run_dir: str | None, forks: int,
              verbosity: int, as_json: bool, argv: list[str], resume_skip: set[str] | None = None,
              selection: dict[str, Any] | None = None, keep_running: bool = False, restart: bool = False) -> int:
    console = Console(verbosity=verbosity)
    if not plan.cells:
        console.line("llmops: no hosts or backends selected; nothing to do")
        return EXIT_OK
    run_id = Path(run_dir).name if run_dir else new_run_id()
    path = Path(run_dir) if run_dir else Path("runs") / run_id
    rundir = RunDir(path, run_id)
    if resume_skip is not None:
        rundir.resume(plan, resume_skip, argv)
        todo = [c.id for c in plan.cells if c.id not in resume_skip]
        console.banner(f"RESUME {run_id} -> {path}: {len(todo)} variant(s) left, "
                       f"{len(plan.cells) - len(todo)} kept")
    else:
        rundir.create(plan, playbook, inventory, argv, selection=selection)
        console.banner(f"RUN {run_id} -> {path}")
    executor = Executor(plan, rundir, console, registry().backends(),
                        ExecOptions(forks=forks, keep_running=keep_running, restart=restart),
                        skip_cells=set(resume_skip or ()))
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
    try:
        write_all(path)
    except LlmopsError as exc:  # the results are safe; a report that cannot be drawn is a warning
        console.line(f"llmops: warning: report not written: {exc}")
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
    console.line(f"\nresults: {path / 'results.json'}   report: {path / 'report.html'} (and report.md)")
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
