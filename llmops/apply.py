"""`llmops apply`: plan -> run directory -> executor -> report, with Ansible-like exit codes."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from llmops.errors import ConfigError, LlmopsError, Problem
from llmops.execute.console import Console
from llmops.execute.executor import ExecOptions, Executor, HostRecap, Interrupted
from llmops.plan.model import Plan
from llmops.plugins.registry import registry
from llmops.record.inventories import sources_from_meta
from llmops.record.jsonfile import read_object
from llmops.record.rundir import RunDir, new_run_id, write_text
from llmops.report.command import DEFAULT_REPORTS, write_all
from llmops.report.tables import bench_table, comparison, detail_table, report_markdown

if TYPE_CHECKING:
    from llmops.record.model import Results

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 4, 130, 143
_signals: list[int] = []


def resume_sources(run_dir: Path, playbook: str | None, inventory: str | tuple[str, ...] | None
                   ) -> tuple[str, str | tuple[str, ...] | None, set[str], dict[str, Any]]:
    """What an interrupted run was made from, and the cells it already finished.

    The original playbook and inventory sources are used when they still exist unchanged (their
    templates/ folder and relative paths still work), else the copies in the run directory.
    """
    results_path = run_dir / "results.json"
    meta_path = run_dir / "meta.json"
    if not results_path.exists() or not meta_path.exists():
        raise LlmopsError(f"{run_dir} is not an llmops run directory (no results.json/meta.json)")
    meta = read_object(meta_path)
    from llmops.record.reader import read_results_file  # lazily: the model costs import time

    results = read_results_file(results_path).results
    if playbook is None:
        original = meta.get("playbook_path")
        copy = run_dir / "playbook.yml"
        playbook = original if original and _same_file(Path(original), copy) else str(copy)
    if inventory is None:
        inventory = _one_or_several(sources_from_meta(run_dir, meta, originals=True))
    done = {f"{c.host}/{c.name}" for c in results.cells if c.status == "ok"}
    return playbook, inventory, done, dict(meta.get("selection") or {})


def replay_sources(run_dir: Path) -> tuple[str, str | tuple[str, ...] | None, tuple[str, ...], dict[str, Any]]:
    """What `apply --replay` needs, from the run directory alone: the copies of the playbook and
    of every inventory source (in -i order), the -e variables as they were resolved, and the
    --limit/--tags used.

    A run from before extra vars were recorded replays without them (its meta.json says so by
    lacking the key); masked secrets stay masked, so give those again with -e.
    """
    meta_path = run_dir / "meta.json"
    if not meta_path.exists() or not (run_dir / "playbook.yml").exists():
        raise LlmopsError(f"{run_dir} is not an llmops run directory (no meta.json/playbook.yml)")
    meta = json.loads(meta_path.read_text())
    selection = dict(meta.get("selection") or {})
    inventory = _one_or_several(sources_from_meta(run_dir, meta, originals=False))
    resolved = selection.pop("extra_vars", None) or {}
    extra = (json.dumps(resolved),) if resolved else ()
    return str(run_dir / "playbook.yml"), inventory, extra, selection


def _one_or_several(sources: list[str] | None) -> str | tuple[str, ...] | None:
    """As the CLI's -i gives them: None, one source, or several in order."""
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else tuple(sources)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def run_apply(plan: Plan, **options: Any) -> int:
    """Run the plan into its run directory, and let the directory's lock go however it ends.

    The kernel drops the flock when the process exits; this matters when one process applies
    twice (a Python caller, a test, `--resume` after a run in the same interpreter), where a lock
    left held would refuse the second run as "in use by pid <ourselves>"."""
    held: list[RunDir] = []
    try:
        return _apply_locked(plan, held=held, **options)
    finally:
        for rundir in held:
            rundir.unlock()


def _apply_locked(plan: Plan, *, held: list[RunDir], playbook: Path, inventory: str | tuple[str, ...] | None, run_dir: str | None,
                  forks: int, verbosity: int, as_json: bool, argv: list[str], resume_skip: set[str] | None = None,
                  selection: dict[str, Any] | None = None, keep_running: bool = False, restart: bool = False,
                  reports: tuple[str, ...] = DEFAULT_REPORTS) -> int:
    # Data on stdout, progress on stderr: event lines and status go to stderr; the tables, the
    # recap and where the results are go to stdout. With --json stdout carries only the one JSON
    # document (pipe it to a JSON tool), so the tables go to stderr with the progress.
    console = Console(verbosity=verbosity, stream=sys.stderr, data=sys.stderr if as_json else sys.stdout)
    if not plan.cells:
        console.line("llmops: no hosts or backends selected; nothing to do")
        if as_json:
            print_recap(console, {}, as_json)
        return EXIT_OK
    run_id = Path(run_dir).name if run_dir else new_run_id()
    path = Path(run_dir) if run_dir else Path("runs") / run_id
    rundir = RunDir(path, run_id)
    try:  # before anything is written: a second apply into this folder is refused
        rundir.lock()
    except OSError as exc:  # an unwritable --run-dir is bad input, not a crash; nothing has started
        raise ConfigError(Problem("--run-dir", 1, 1, f"cannot write run directory {str(path)!r}: "
                                  f"{exc.strerror or exc}", "a writable folder")) from None
    held.append(rundir)
    if resume_skip is not None:
        rundir.resume(plan, resume_skip, argv)
        todo = [c.id for c in plan.cells if c.id not in resume_skip]
        console.banner(f"RESUME {run_id} -> {path}: {len(todo)} variant(s) left, "
                       f"{len(plan.cells) - len(todo)} kept")
    else:
        try:  # nothing has started yet: an unwritable --run-dir is bad input, not a crash
            rundir.create(plan, playbook, inventory, argv, selection=selection)
        except OSError as exc:
            raise ConfigError(Problem("--run-dir", 1, 1, f"cannot write run directory {str(path)!r}: "
                                      f"{exc.strerror or exc}", "a writable folder")) from None
        console.banner(f"RUN {run_id} -> {path}")
    executor = Executor(plan, rundir, console, registry().backends(),
                        ExecOptions(forks=forks, keep_running=keep_running, restart=restart),
                        skip_cells=set(resume_skip or ()))
    # Our own SIGINT handler: a shell that starts llmops in the background leaves SIGINT ignored,
    # and Python would then never raise KeyboardInterrupt (no Ctrl-C, no clean stop).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    interrupted = False
    recaps: dict[str, HostRecap] = {}
    try:
        recaps = executor.run()
    except Interrupted:
        interrupted = True
    except KeyboardInterrupt:  # the second Ctrl-C: what was measured is kept, then out at once
        rundir.finish("interrupted")
        _exit_now(console)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_tables(console, rundir.typed_results())
    rundir.finish("interrupted" if interrupted else "complete")
    results = rundir.typed_results()
    written: list[Path] = []
    try:
        written = write_all(path, formats=reports)
    except LlmopsError as exc:  # the results are safe; a report that cannot be drawn is a warning
        console.line(f"llmops: warning: report not written: {exc}")
        if "md" in reports:
            write_text(path / "report.md", report_markdown(results))
            written = [path / "report.md"]
    main_report = next((p for p in written if p.suffix == ".html"), written[0] if written else None)
    if not recaps:
        recaps = {h.name: HostRecap(h.name) for h in plan.hosts}
        for cell in results.cells:
            r = recaps.setdefault(cell.host, HostRecap(cell.host))
            if cell.status == "ok":
                r.ok += 1
            elif cell.status in ("failed",):
                r.failed += 1
    print_recap(console, recaps, as_json, {"status": results.status, "run_dir": str(path),
                                           "results": str(path / "results.json"),
                                           "report": str(main_report) if main_report else None})
    if not as_json:
        for line in partial_levels(results):
            console.line(line, data=True)
    others = [p.name for p in written if p != main_report]
    shown = f"   report: {main_report}" + (f" (and {', '.join(others)})" if others else "") if main_report else ""
    console.line(f"\nresults: {path / 'results.json'}{shown}", data=True)
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
    console = Console(stream=sys.stderr, data=sys.stdout)  # progress on stderr, the recap on stdout
    executor = Executor(plan, None, console, registry().backends(), ExecOptions(forks=forks, provision_only=True))
    try:
        recaps = executor.run()
    except Interrupted:
        return EXIT_INTERRUPTED
    print_recap(console, recaps, as_json=False)
    if any(r.unreachable for r in recaps.values()):
        return EXIT_UNREACHABLE
    return EXIT_FAILED if any(r.failed for r in recaps.values()) else EXIT_OK


def _exit_now(console: Console) -> None:
    """Leave without waiting for the stops still in progress (they may take a minute): the
    threads doing them would hold up a normal exit. What they leave, the hosts' leases stop."""
    console.line("llmops: forced exit; each host stops what is left once this run's lease runs out "
                 "(llmops_lease_timeout)")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM gets the same clean shutdown as Ctrl-C (servers stopped, results kept)."""
    _signals.append(signum)
    raise KeyboardInterrupt


def print_tables(console: Console, results: Results) -> None:
    cells = results.cells
    for cell in cells:
        if not cell.levels:
            continue
        console.banner(f"{cell.name} on {cell.host} ({cell.backend})", data=True)
        console.block(bench_table(cell.levels), data=True)
        if console.verbosity >= 1:
            console.line("", data=True)
            console.block(detail_table(cell.levels, cell), data=True)
    console.banner("COMPARISON", data=True)
    console.block(comparison(cells), data=True)


def print_recap(console: Console, recaps: dict[str, HostRecap], as_json: bool,
                extra: dict[str, Any] | None = None) -> None:
    """The PLAY RECAP for people, or with as_json the one JSON document on stdout (recap + extra)."""
    if as_json:
        sys.stdout.write(json.dumps({"recap": {h: r.to_json() for h, r in recaps.items()}, **(extra or {})},
                                    indent=2) + "\n")
        sys.stdout.flush()
        return
    console.banner("PLAY RECAP", data=True)
    for host, r in recaps.items():
        console.line(f"{host:<24} : ok={r.ok:<4} changed={r.changed:<4} unreachable={int(r.unreachable):<4} "
                     f"failed={r.failed:<4} skipped={r.skipped:<4}", data=True)


def partial_levels(results: Results) -> list[str]:
    """Recap lines for every level where not all requests succeeded: an `ok` variant may still
    have lost requests, and the averages in the tables do not show it."""
    out = []
    for cell in results.cells:
        for lv in cell.levels:
            rate = lv.success_rate
            if rate is None or rate >= 1.0 or not lv.requests:
                continue
            label = f"rate {lv.rate:g}/s" if lv.rate is not None else f"c={lv.concurrency}"
            kinds = ", ".join(f"{g.count} {g.kind}" for g in lv.errors)
            out.append(f"{cell.host:<24} : [{cell.name}] {label}: {rate * 100:.0f} % of "
                       f"{lv.requests} request(s) succeeded" + (f" ({kinds})" if kinds else ""))
    return out
