"""CellRun: one cell (one server variant on one host) from start to recorded result.

This is the file to read to see where a cell is started, measured and stopped:

    run()          the whole lifecycle; stop() and collect() run whatever happened before
    start()        start the server, or reuse the one left running with the same command
    wait_ready()   through a forwarded port until it answers; idle memory right after
    measure()      the benchmark levels (measure.py), then the quality pass if the cell has one
    stop()         stop it (or leave it running: --keep-running, or it was reused) and check
                   that nothing survived
    collect()      memory samples, the GPU release check, the server log; the record

Every step records into `result` as it goes and the run directory is updated after each one,
so a crash or Ctrl-C in measure() still stops the server and keeps the levels already done.
Each step is a method so a test can drive it one at a time (tests/test_executor_fake.py);
new_server()/new_sampler()/measure_levels() are where such a test puts its fakes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConnectError, ExecutionError, ServerFailed
from llmops.execute.agent import Agent
from llmops.execute.cancel import Cancel, Interrupted
from llmops.execute.console import Console
from llmops.execute.leases import Leases
from llmops.execute.measure import run_levels
from llmops.execute.sampling import Sampler
from llmops.execute.server import Server
from llmops.execute.transport.base import Runner
from llmops.execute.verdict import no_answer
from llmops.plan.model import Cell
from llmops.plugins.api import Backend
from llmops.record.rundir import RunDir, pending_cell, safe_name, write_text
from llmops.shell import HostPath, shell_word
from llmops.telemetry import energy, gpumem, hostnoise, procmem


@dataclass
class ExecOptions:
    forks: int = 5
    provision_only: bool = False
    keep_running: bool = False  # leave servers up after measuring (the next apply reuses them)
    restart: bool = False  # replace a running server even when its command is the same


@dataclass
class RunContext:
    """What every cell of one run shares."""

    rundir: RunDir
    console: Console
    options: ExecOptions
    cancel: Cancel
    leases: Leases
    # cell id -> its live server: what a forced exit (second Ctrl-C) names as maybe still running
    active: dict[str, tuple[Server, Runner]] = field(default_factory=dict)
    active_lock: threading.Lock = field(default_factory=threading.Lock)


class CellRun:
    def __init__(self, ctx: RunContext, runner: Runner, agent: Agent, cell: Cell, plugin: Backend | None,
                 collectors: list[Any] | None = None,
                 provenance: tuple[dict[str, Any], str | None] | None = None) -> None:
        self.ctx, self.runner, self.agent, self.cell, self.plugin = ctx, runner, agent, cell, plugin
        self.collectors = collectors or []
        self.host = cell.host.name
        self.console = ctx.console
        rundir = ctx.rundir
        self.cell_dir: Path = rundir.cell_dir(cell)
        # The host's name is part of the folder: a shared (NFS) home must not mix two hosts' logs.
        self.remote_dir = (f"{cell.remote_root.rstrip('/')}/{rundir.remote_id}/{safe_name(cell.host.name)}/"
                           f"{safe_name(cell.name)}")
        self.result: dict[str, Any] = pending_cell(cell)
        self.result.update({"status": "running", "started_at": time.time()})
        if provenance is not None:
            record, freeze = provenance
            self.result["provenance"] = record
            if freeze:
                write_text(self.cell_dir / "pip-freeze.txt", freeze)
        self.server = self.new_server()
        self.sampler: Sampler | None = None
        self.mode: str | None = None  # started | reused | replaced
        self.cache_state: str | None = None  # compile caches before the start: warm | cold
        self.t_ready: float | None = None
        self.idle: procmem.TreeSample | None = None
        self.levels: list[dict[str, Any]] = []
        self.bench_window: tuple[float, float] | None = None
        self.idle_power_window: tuple[float, float] | None = None
        self.record()

    # --- seams for tests ----------------------------------------------------------------------

    def new_server(self) -> Server:
        server = Server(self.cell, self.runner, self.agent, self.remote_dir, self.ctx.rundir.remote_id)
        server.container = self.plugin.container(self.cell.spec) if self.plugin is not None else None
        return server

    def new_sampler(self) -> Sampler:
        return Sampler(self.agent, self.server, self.remote_dir, self.cell.benchmark.sample_interval,
                       self.collectors, self.cell.telemetry)

    def measure_levels(self, base: str) -> list[dict[str, Any]]:
        return run_levels(self.cell, self.plugin, base, self.result, self.cell_dir, self.server,
                          rundir=self.ctx.rundir, console=self.console, cancel=self.ctx.cancel)

    # --- the lifecycle --------------------------------------------------------------------------

    def record(self) -> None:
        self.ctx.rundir.update_cell(self.cell, self.result)

    def event(self, status: str, text: str) -> None:
        self.console.event(self.host, status, f"[{self.cell.name}] {text}")

    def run(self) -> dict[str, Any]:
        result = self.result
        self.console.verbose(1, self.host, f"$ {self.cell.display_command}")
        try:
            self.start()
            spec = self.cell.spec
            target = spec.bind if spec.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
            with self.runner.forward(spec.port, target) as local_port:
                base = f"http://127.0.0.1:{local_port}"
                self.wait_ready(local_port)
                self.ctx.cancel.check()
                self.measure(base)
            result["status"] = "ok"
            result["error"] = None
        except Interrupted:
            result["status"] = "interrupted"
            result["error"] = "interrupted by the user"
            raise
        except ServerFailed as exc:
            result["status"] = "failed"
            result["error"] = str(exc)
            result["log_tail"] = exc.log_tail
            self.event("failed", str(exc))
            if exc.log_tail:
                self.console.block(indent(exc.log_tail))
        except (ExecutionError, ConnectError) as exc:
            result["status"] = "failed"
            result["error"] = str(exc)
            self.event("failed", str(exc))
        finally:
            keep = result["status"] == "ok" and (self.ctx.options.keep_running or self.mode == "reused")
            try:
                self.stop(keep=keep)
            finally:
                self.collect(kept=keep)
        result["changed"] = self.mode == "replaced" or (self.mode in ("started", "replaced")
                                                        and result.get("left_running"))
        return result

    def start(self) -> str:
        """Start the server, or reuse the one left running with the same command: started|reused|replaced."""
        self.sampler = self.new_sampler()
        self.mode = self._start_or_reuse()
        shared = getattr(self.server, "shared_warning", None)
        if shared:
            self.result.setdefault("warnings", []).append(shared)
        self.result["server"] = self.mode
        with self.ctx.active_lock:
            self.ctx.active[self.cell.id] = (self.server, self.runner)
        # reused too: from now on the server lives on our lease
        self.ctx.leases.hold(self.runner, self.agent, self.server.lease_path, self.cell.lease_timeout)
        return self.mode

    def _start_or_reuse(self) -> str:
        cell, server, plugin, sampler = self.cell, self.server, self.plugin, self.sampler
        assert sampler is not None
        restart = self.ctx.options.restart
        prestart = plugin.pre_start(cell.spec) if plugin else None
        self.console.event(self.host, "ok", f"[{cell.name}] starting {cell.kind} on port {cell.spec.port}")
        on_expiry = expiry_command(plugin, cell)
        self.cache_state = self._cache_state(plugin.warm_caches(cell.spec) if plugin else [])
        doc = server.start(sample=sampler.spec(), restart=restart, prestart=prestart, on_expiry=on_expiry)
        mode = "started"
        if doc.get("reuse"):
            state = doc["reuse"]
            server.adopt(state)
            server.take_lease()
            self.event("ok", f"reusing the server already running with the same command (pid {state['pid']})")
            others = doc.get("in_use_by") or []
            if others:  # never silently: both runs' figures include the other's load
                server.shared_warning = (f"the server on port {cell.spec.port} is also in use by another llmops run "
                                         f"now ({', '.join(o['run'] for o in others)}): its figures and ours overlap")
                self.event("changed", f"WARNING: {server.shared_warning}")
            sampler.start()
            return "reused"
        if doc.get("error_kind") == "occupied":
            state = doc["state"]
            why = "--restart" if restart else "its command differs"
            self.event("changed", f"replacing the server left on port {cell.spec.port} (pid {state['pid']}, {why})")
            self.console.verbose(1, self.host, f"- {state.get('command')}")
            old = Server(cell, self.runner, server.agent, state.get("remote_dir") or server.remote_dir, server.run_id)
            old.container = server.container
            old.adopt(state)
            report = old.stop()
            if report.survivors:
                raise ServerFailed(f"could not stop the server left on port {cell.spec.port}: "
                                   + ", ".join(f"{p['pid']} ({p['comm']})" for p in report.survivors))
            doc = server.start(sample=sampler.spec(), restart=True, prestart=prestart, on_expiry=on_expiry)
            mode = "replaced"
        sampler.pid = doc.get("sampler_pid")
        return mode

    def _cache_state(self, folders: list[str]) -> str | None:
        """"warm" when every compile cache the server uses already held something, else "cold"."""
        if not folders:
            return None
        tests = " && ".join(f'[ -n "$(ls -A {shell_word(HostPath(f), reveal=True)} 2>/dev/null | head -n 1)" ]'
                            for f in folders)
        doc = self.agent.call("tool", "--timeout", "10", f"if {tests}; then echo warm; else echo cold; fi",
                              timeout=70, check=False)
        state = str(doc.get("out") or "").strip()
        return state if state in ("warm", "cold") else None

    def wait_ready(self, local_port: int) -> float | None:
        """Until the server answers on the forwarded port; then its idle memory (the baseline)."""
        assert self.sampler is not None
        cell, server = self.cell, self.server
        ready_s = server.wait_ready("127.0.0.1", local_port, cell.spec.ready_timeout, self.ctx.cancel.check,
                                    on_phase=lambda text: self.console.status(self.host, f"[{cell.name}] {text}"),
                                    phases=getattr(self.plugin, "phases", None))
        reused = self.mode == "reused"
        self.result["startup"] = {"ready_s": None, "reused": True} if reused else {"ready_s": ready_s}
        if self.cache_state and not reused:
            self.result["startup"]["cache"] = self.cache_state
        self.t_ready = time.time()
        idle_procs = server.procs()
        total, source = procmem.tree_bytes(idle_procs)
        self.idle = procmem.TreeSample(t=self.t_ready, bytes=total, source=source, procs=idle_procs,
                                       cgroup=server.cgroup)
        self.sampler.snapshot_gpu()  # idle GPU memory right after ready, not at the next tick
        self.result["memory"] = {"source": source, "idle_bytes": total, "peak_bytes": total}
        if server.container:
            self.result["container"] = self.container_facts()
        ready = "already ready" if reused else f"ready in {ready_s:.2f} s"
        self.event("ok", f"{ready}, {_mib(total)} ({source}) across {len(idle_procs)} process(es)")
        self.record()
        return ready_s

    def container_facts(self) -> dict[str, Any]:
        """The container the server runs in, right after ready: its init PID, its memory cgroup as
        we read it, and the engine's own `stats` figure taken just after (they should agree)."""
        from llmops.telemetry import containerstats

        server = self.server
        engine, _, name = (server.container or "").partition(":")
        facts: dict[str, Any] = {"engine": engine, "name": name, "cgroup": server.cgroup,
                                 "launcher_processes": len(server.launcher_procs)}
        doc = self.agent.call("tool", "--timeout", "20", containerstats.command(engine, name), timeout=80, check=False)
        stats = containerstats.parse(str(doc.get("out") or "")) if doc.get("rc") == 0 else None
        facts["engine_stats"] = stats if stats else {"error": (str(doc.get("out") or doc.get("err") or doc))[-300:]}
        if not server.cgroup:
            facts["note"] = "the container's memory cgroup could not be read; RAM is its processes' PSS"
        return facts

    def measure_idle_power(self) -> None:
        """Idle power (docs/metrics.md "Energy"): the server up and unloaded for idle_power_s
        seconds before the first level, while the sampler reads the power collectors. Skipped
        where no power collector gives a reading, so hosts that cannot tell lose no time."""
        spec = self.cell.telemetry
        if self.sampler is None or not spec.power or spec.idle_power_s <= 0:
            return
        try:
            if not self.sampler.probe_power():
                return
        except (ExecutionError, ConnectError):
            return
        t0 = time.time()
        self.event("ok", f"idle power: {spec.idle_power_s:g} s with the server unloaded")
        while time.time() - t0 < spec.idle_power_s:
            self.ctx.cancel.check()
            time.sleep(min(0.2, max(0.0, spec.idle_power_s - (time.time() - t0))))
        self.idle_power_window = (t0, time.time())

    def measure(self, base: str) -> list[dict[str, Any]]:
        """Idle power, the benchmark levels, then (issue 17) one quality pass on the same server."""
        self.measure_idle_power()
        t_bench = time.time()
        self.levels = self.measure_levels(base)
        self.bench_window = (t_bench, time.time())
        if self.idle_power_window is not None and self.sampler is not None:
            # One reading right after the last level: its window is closed even when the
            # sampler's next tick would come after the stop (short levels on a busy host).
            try:
                self.sampler.probe_power()
            except (ExecutionError, ConnectError):
                pass
        unanswered = no_answer(self.levels)
        if unanswered:
            raise ServerFailed(unanswered, self.server.log_tail())
        if self.cell.quality is not None:
            from llmops.execute.quality_pass import run_quality

            quality = self.result["quality"] = run_quality(self.cell, base, self.cell_dir)
            self.event("ok" if quality["status"] == "ok" else "failed", f"quality: {quality['status']}")
        return self.levels

    def stop(self, keep: bool = False) -> None:
        """Stop the server and check nothing of it survived, or (keep) leave it running off our lease."""
        server, result, cell = self.server, self.result, self.cell
        if server.pid is None:
            return  # never started: nothing to stop
        if keep:
            self.ctx.leases.release(server.lease_path)
            server.release_lease()
            result["left_running"] = True
            self.event("ok", f"left running (pid {server.pid}, port {cell.spec.port})")
            return
        try:
            graceful = self.plugin.stop_command(cell.spec) if self.plugin else None
            if graceful:
                server.runner.run(graceful, timeout=cell.spec.stop_timeout + 30)
            report = server.stop(sampler_pid=self.sampler.pid if self.sampler is not None else None)
            if self.sampler is not None:
                self.sampler.stopped = True  # the stop call took the sampler down with the server
            result["stop"] = report.to_json()
            if report.survivors:
                names = ", ".join(f"{s['pid']} ({s['comm']})" for s in report.survivors)
                warning = f"processes survived the stop: {names}"
                result["stop"]["warning"] = warning
                self.event("failed", f"WARNING: {warning}")
                if result["status"] == "ok":
                    result["status"] = "failed"
                    result["error"] = warning
            else:
                self.event("ok", f"stopped in {report.seconds:.2f} s{' (SIGKILL needed)' if report.forced else ''}")
        except (ExecutionError, ConnectError) as exc:
            result["stop"] = {"stopped": False, "error": str(exc)}
            self.event("failed", f"could not confirm the stop: {exc}")

    def collect(self, kept: bool = False) -> None:
        """Always runs, after stop(): bring samples and the log home, summarise memory, record."""
        server, result, sampler = self.server, self.result, self.sampler
        try:
            samples: list[procmem.TreeSample] = []
            gpu_samples: list[gpumem.GpuSample] = []
            if sampler is not None:
                try:
                    samples, gpu_samples = sampler.finish(self.cell_dir / "memory.jsonl")
                except (ExecutionError, ConnectError) as exc:
                    result.setdefault("warnings", []).append(f"memory samples lost: {exc}")
            power_samples = [s for s in gpu_samples if s.collector in self._power_names()]
            gpu_samples = [s for s in gpu_samples if s.collector not in self._power_names()]
            levels = self.levels or result.get("levels") or []  # a failed benchmark keeps its levels there
            if levels:
                spec = self.cell.telemetry
                result["energy"] = energy.mark_levels(levels, power_samples, self.idle_power_window,
                                                      wanted=spec.power_source, enabled=spec.power)
            tree_pids = set(server.known_pids) | {int(p["pid"]) for s in samples for p in s.procs}
            if self.idle is not None or samples:
                memory = procmem.summarize(samples, self.idle, self.levels, self.bench_window)
                memory["samples_file"] = "memory.jsonl"
                gpu = gpumem.summarize(gpu_samples, tree_pids, self.t_ready, self.bench_window, self.levels)
                hostnoise.mark_gpu_others(self.levels, gpu_samples, tree_pids)
                if gpu:
                    memory["gpu"] = gpu
                result["memory"] = memory
            if sampler is not None and server.pid is not None and not kept:
                self._release_check(sampler, tree_pids)
            if server.pid is not None:
                self._fetch_log()
        finally:
            self.ctx.leases.release(server.lease_path)
            with self.ctx.active_lock:
                self.ctx.active.pop(self.cell.id, None)
            result["finished_at"] = time.time()
            self.record()

    def _power_names(self) -> set[str]:
        return set(self.sampler.power_collectors()) if self.sampler is not None else set()

    def _fetch_log(self) -> None:
        local = self.cell_dir / "server.log"
        try:
            if self.server.fetch_log(local):
                self.result["log"] = self.ctx.rundir.relative(local)
                if self.plugin is not None:
                    phases = self.plugin.startup_phases(self.server.timed_log(local))
                    if phases:
                        self.result.setdefault("startup", {})["phases"] = phases
        except (ExecutionError, ConnectError, OSError) as exc:
            self.result.setdefault("warnings", []).append(f"server log not copied: {exc}")

    def _release_check(self, sampler: Sampler, pids: set[int]) -> None:
        """After stop, no process of the server may still hold GPU memory; say loudly if one does."""
        result = self.result
        try:
            holders = sampler.release_check(pids)
        except (ExecutionError, ConnectError) as exc:
            result.setdefault("warnings", []).append(f"release check not done: {exc}")
            return
        if holders is None:
            return
        result.setdefault("memory", {})["released"] = not holders
        if holders:
            names = ", ".join(f"pid {h['pid']} ({h.get('name') or '?'}): "
                              f"{_mib(h.get('vram_bytes'))} VRAM, {_mib(h.get('gtt_bytes'))} GTT" for h in holders)
            warning = f"GPU memory NOT released after stop: {names}"
            result.setdefault("warnings", []).append(warning)
            self.event("failed", f"WARNING: {warning}")


def indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1048576:.1f} MiB"


def expiry_command(plugin: Backend | None, cell: Cell) -> str | None:
    """What the host runs itself when our lease runs out, beyond signalling the server's
    processes: a container lives outside their tree (killing its CLI leaves it running), so it
    is stopped and removed by name."""
    if plugin is None:
        return None
    parts = [c for c in (plugin.stop_command(cell.spec), plugin.pre_start(cell.spec)) if c]
    return "; ".join(parts) or None
