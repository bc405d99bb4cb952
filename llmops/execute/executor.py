"""Execute a plan: hosts in parallel (up to `forks`), variants on one host one after another.

Per host (one HostSession, session.py): connect, copy the agent, gather facts, provision
(idempotent: ok / changed), then each cell in turn as a CellRun (cell.py: start, ready,
measure, stop, collect). The HostPool (pool.py) runs the hosts and keeps the recap. Every
outcome is written to the run directory as soon as it is known, so an interrupted run keeps
everything it measured. A failing cell never stops the next one; an unreachable host never
stops the other hosts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from llmops import secrets
from llmops.errors import ConnectError, ExecutionError, LlmopsError
from llmops.execute.agent import Agent
from llmops.execute.cancel import Cancel, Interrupted
from llmops.execute.cell import CellRun, ExecOptions, RunContext, indent
from llmops.execute.console import Console
from llmops.execute.facts import backend_versions
from llmops.execute.facts import provenance as gather_provenance
from llmops.execute.leases import Leases
from llmops.execute.pool import HostPool, HostRecap
from llmops.execute.provision import provision
from llmops.execute.session import HostSession
from llmops.execute.transport.base import Runner
from llmops.load.inventory import Host
from llmops.plan.model import Cell, Plan
from llmops.plan.planner import all_steps
from llmops.plugins.api import Backend
from llmops.record.rundir import RunDir, pending_cell, write_json
from llmops.telemetry import select

__all__ = ["ExecOptions", "Executor", "HostRecap", "Interrupted"]


@dataclass
class Executor:
    plan: Plan
    rundir: RunDir | None  # None only with provision_only
    console: Console
    backends: dict[str, Backend]
    options: ExecOptions = field(default_factory=ExecOptions)
    cancel: threading.Event = field(default_factory=threading.Event)
    skip_cells: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        from llmops.plugins.registry import registry

        self.all_collectors = registry().collectors()
        self.stop_request = Cancel(self.cancel)
        self.leases = Leases()
        # rundir is None only with provision_only, which never makes a CellRun
        self.ctx = RunContext(self.rundir, self.console, self.options, self.stop_request, self.leases)  # type: ignore[arg-type]
        self.active = self.ctx.active

    # --- all hosts ----------------------------------------------------------------------------

    def run(self) -> dict[str, HostRecap]:
        by_host = self.plan.by_host()
        pool = HostPool(self.console, self.stop_request, self.options.forks, self._still_running)
        recaps = pool.run(self.plan.hosts, lambda host, recap: self._host(host, by_host.get(host.name, []), recap))
        self.leases.close()
        self.stop_request.check()  # a SIGTERM/Ctrl-C that came while the last host finished
        return recaps

    def _still_running(self) -> list[str]:
        return [f"{cell_id}: pid {server.pid} (log {server.log_path})"
                for cell_id, (server, _) in list(self.active.items())]

    def interrupt(self) -> None:
        self.stop_request.interrupt()

    def check_cancel(self) -> None:
        self.stop_request.check()

    # --- one host -----------------------------------------------------------------------------

    def _host(self, host: Host, cells: list[Cell], recap: HostRecap) -> None:
        todo = [c for c in cells if c.id not in self.skip_cells]
        recap.skipped += len(cells) - len(todo)
        if not todo:
            return
        session = HostSession(host, todo[0].cache_dir, leases=self.leases,
                              trace=self._tracer(host.name) if self.console.verbosity >= 2 else None)
        try:
            try:
                runner = session.connect()
                if runner.kind == "openssh":
                    self.console.event(host.name, "ok", "using the system ssh client: the ssh config uses Include/"
                                       "ProxyJump/ProxyCommand/Match (which Fabric does not follow) or llmops_ssh "
                                       "says so")
                agent = session.start_agent()
                facts = session.facts()
                collectors = self._choose_collectors(host.name, facts, todo)
                if self.rundir is not None:
                    self.rundir.write_facts(host.name, facts)
                self.console.event(host.name, "ok", f"connected ({host.describe()}), facts gathered")
            except (ConnectError, ExecutionError) as exc:
                self._unreachable(host.name, todo, recap, exc)
                return
            failed_steps = self._provision(runner, agent, host.name, todo, recap)
            ready = [c for c in todo if not any(s.id in failed_steps for s in c.provision)]
            provenance: dict[str, tuple[dict[str, Any], str | None]] = {}
            if self.rundir is not None:
                facts["backends"] = backend_versions(agent, ready)
                self.rundir.write_facts(host.name, facts)
                try:
                    provenance = gather_provenance(agent, ready, facts)
                except ExecutionError as exc:  # provenance is worth having, not worth losing a run over
                    self.console.event(host.name, "warning", f"provenance not gathered: {exc}")
            if self.options.provision_only:
                recap.failed += len(failed_steps)
                recap.ok += 1 if not failed_steps else 0
                return
            for cell in todo:
                self.check_cancel()
                broken = [s for s in cell.provision if s.id in failed_steps]
                if broken:
                    recap.failed += 1
                    self._record_failure(cell, f"provisioning failed: {failed_steps[broken[0].id]}")
                    continue
                outcome = CellRun(self.ctx, runner, agent, cell, self.backends.get(cell.kind), collectors,
                                  provenance.get(cell.id)).run()
                if outcome["status"] != "ok":
                    recap.failed += 1
                elif outcome.get("changed"):
                    recap.changed += 1
                else:
                    recap.ok += 1
        except Interrupted:
            raise
        except ConnectError as exc:
            recap.mark_unreachable(str(exc))
            self.console.event(host.name, "unreachable", str(exc))
        finally:
            session.close()

    def _tracer(self, host_name: str):  # noqa: ANN202
        def trace(result) -> None:  # noqa: ANN001
            status = "timed out" if result.exit_code is None else f"exit {result.exit_code}"
            first = result.command.splitlines()[0] if result.command else ""
            more = " ..." if "\n" in result.command else ""
            self.console.verbose(2, host_name, secrets.scrub(f"$ {first}{more}   ({status}, {result.duration:.2f} s)"))
            if self.console.verbosity >= 3:
                for stream in (result.stdout, result.stderr):
                    for line in stream.strip().splitlines()[-20:]:
                        self.console.verbose(3, host_name, "  | " + secrets.scrub(line))

        return trace

    def _unreachable(self, host_name: str, cells: list[Cell], recap: HostRecap, exc: Exception) -> None:
        recap.mark_unreachable(str(exc))
        self.console.event(host_name, "unreachable", str(exc))
        if self.rundir is not None:
            for cell in cells:
                self._record_failure(cell, f"host unreachable: {exc}", status="failed")

    def _choose_collectors(self, host_name: str, facts: dict[str, Any], cells: list[Cell]) -> list[Any]:
        override = cells[0].telemetry.collectors if cells else None
        try:
            chosen = select.choose(facts, self.all_collectors, override,
                                   power=cells[0].telemetry.power if cells else True)
        except LlmopsError as exc:
            self.console.event(host_name, "warn", f"telemetry: {exc}; using /proc only")
            return []
        names = ", ".join(c.name for c in chosen if getattr(c, "measures", "memory") != "power") \
            or "none (no GPU tools found)"
        power = ", ".join(c.name for c in chosen if getattr(c, "measures", "memory") == "power") or "off"
        self.console.event(host_name, "ok", f"memory: /proc (PSS) + GPU collectors: {names}; power: {power}")
        return chosen

    def _provision(self, runner: Runner, agent: Agent, host_name: str, cells: list[Cell],
                   recap: HostRecap) -> dict[str, str]:
        failed: dict[str, str] = {}
        outcomes = []
        for step in all_steps(cells):
            self.check_cancel()
            outcome = provision(runner, agent, step, self.cancel,
                                on_start=lambda s: self.console.event(host_name, "changed", f"running: {s.name} "
                                                                      f"(log on host: {s.log})"),
                                on_progress=lambda s, text: self.console.status(host_name, f"{s.name}: {text}"))
            outcomes.append(outcome)
            status = outcome["status"]
            if status == "failed":
                failed[step.id] = outcome["error"]
                self.console.event(host_name, "failed", f"{step.name}: {outcome['error']}")
                if outcome.get("log_tail"):
                    self.console.block(indent(outcome["log_tail"]))
            else:
                if status == "changed":
                    recap.changed += 1
                self.console.event(host_name, status, f"{step.name} ({outcome['seconds']:.1f} s)")
            if status == "interrupted":
                raise Interrupted("interrupted")
        if self.rundir is not None:
            write_json(self.rundir.host_dir(host_name) / "provision.json", outcomes)
        return failed

    def _record_failure(self, cell: Cell, error: str, status: str = "failed") -> None:
        data = pending_cell(cell)
        data.update({"status": status, "error": error})
        self.rundir.update_cell(cell, data)
