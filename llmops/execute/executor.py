"""Execute a plan: hosts in parallel (up to `forks`), variants on one host one after another.

Per host: connect, copy the agent, gather facts, provision (idempotent: ok / changed), then
for each cell: start the server, wait until ready, snapshot idle memory, run the benchmark
while the agent samples memory in the background, stop the server and verify nothing is
left. Every outcome is written to the run directory as soon as it is known, so an
interrupted run keeps everything it measured. A failing cell never stops the next one; an
unreachable host never stops the other hosts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.bench import metrics as bench_metrics
from llmops.bench.client import RequestOptions, RequestRecord
from llmops.bench.engine import Bench, LevelPlan, LoadSpec
from llmops.bench.prompts import PromptSpec
from llmops.errors import ConnectError, ExecutionError, LlmopsError, ServerFailed
from llmops.execute.agent import Agent
from llmops.execute.console import Console
from llmops.execute.facts import backend_versions
from llmops.execute.facts import gather as gather_facts
from llmops.execute.leases import Leases
from llmops.execute.provision import provision
from llmops.execute.runner import Runner, connect
from llmops.execute.server import Server, command_hash, scrub
from llmops.plan.model import Cell, Plan
from llmops.plan.planner import all_steps
from llmops.plugins.api import Backend
from llmops.execute.sampling import Sampler
from llmops.record.rundir import RunDir, pending_cell, safe_name, write_json
from llmops.telemetry import gpumem, procmem, select


class Interrupted(LlmopsError):  # noqa: N818 - it is an event, not an error of ours
    """The user asked us to stop (Ctrl-C / SIGTERM)."""


@dataclass
class HostRecap:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "changed": self.changed, "unreachable": int(self.unreachable), "failed": self.failed,
                "skipped": self.skipped, "error": self.error}


@dataclass
class ExecOptions:
    forks: int = 5
    provision_only: bool = False
    keep_running: bool = False  # leave servers up after measuring (the next apply reuses them)
    restart: bool = False  # replace a running server even when its command is the same


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
        self._collectors: dict[str, list[Any]] = {}
        self.active: dict[str, tuple[Server, Runner]] = {}
        self._active_lock = threading.Lock()
        self.leases = Leases()
        self._loops: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}

    # --- all hosts ----------------------------------------------------------------------------

    def run(self) -> dict[str, HostRecap]:
        by_host = self.plan.by_host()
        recaps = {h.name: HostRecap(h.name) for h in self.plan.hosts}
        workers = max(1, min(self.options.forks, len(self.plan.hosts) or 1))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmops-host")
        futures = {pool.submit(self._host, host, by_host.get(host.name, []), recaps[host.name]): host.name
                   for host in self.plan.hosts}
        try:
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(pending, timeout=0.2)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None and not isinstance(exc, Interrupted):
                        name = futures[fut]
                        recaps[name].failed += 1
                        recaps[name].error = f"internal error: {type(exc).__name__}: {exc}"
                        self.console.event(name, "failed", recaps[name].error)
        except KeyboardInterrupt:
            self.interrupt()
            self.console.line("\nllmops: interrupted; stopping every server this run started (Ctrl-C again to "
                              "force exit)...")
            try:
                concurrent.futures.wait(futures, timeout=None)
            except KeyboardInterrupt:
                self.console.line("llmops: forced exit. These servers may still be running:")
                for cell_id, (server, _) in list(self.active.items()):
                    self.console.line(f"  {cell_id}: pid {server.pid} (log {server.log_path})")
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
            raise Interrupted("interrupted") from None
        pool.shutdown(wait=True)
        self.leases.close()
        if self.cancel.is_set():
            raise Interrupted("interrupted")
        return recaps

    def interrupt(self) -> None:
        self.cancel.set()
        for loop, task in list(self._loops.values()):
            loop.call_soon_threadsafe(task.cancel)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted")

    # --- one host -----------------------------------------------------------------------------

    def _host(self, host, cells: list[Cell], recap: HostRecap) -> None:
        todo = [c for c in cells if c.id not in self.skip_cells]
        recap.skipped += len(cells) - len(todo)
        if not todo:
            return
        try:
            runner = connect(host)
        except ConnectError as exc:
            self._unreachable(host.name, todo, recap, exc)
            return
        if self.console.verbosity >= 2:
            runner.trace = self._tracer(host.name)
        if type(runner).__name__ == "OpenSshRunner":
            self.console.event(host.name, "ok", "using the system ssh client: the ssh config uses Include/ProxyJump/"
                                                "ProxyCommand/Match (which Fabric does not follow) or llmops_ssh says so")
        agent = Agent(runner, todo[0].cache_dir, host.python)
        try:
            try:
                agent.install()
                facts = gather_facts(agent)
                self._collectors[host.name] = self._choose_collectors(host.name, facts, todo)
                if self.rundir is not None:
                    self.rundir.write_facts(host.name, facts)
                self.console.event(host.name, "ok", f"connected ({host.describe()}), facts gathered")
            except (ConnectError, ExecutionError) as exc:
                self._unreachable(host.name, todo, recap, exc)
                return
            failed_steps = self._provision(runner, agent, host.name, todo, recap)
            if self.rundir is not None:
                facts["backends"] = backend_versions(agent, [c for c in todo if not any(
                    s.id in failed_steps for s in c.provision)])
                self.rundir.write_facts(host.name, facts)
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
                outcome = self._cell(runner, agent, cell)
                if outcome["status"] != "ok":
                    recap.failed += 1
                elif outcome.get("changed"):
                    recap.changed += 1
                else:
                    recap.ok += 1
        except Interrupted:
            raise
        except ConnectError as exc:
            recap.unreachable = True
            recap.error = str(exc)
            self.console.event(host.name, "unreachable", str(exc))
        finally:
            agent.close()
            runner.close()

    def _tracer(self, host_name: str):  # noqa: ANN202
        from llmops.record.rundir import scrub as scrub_secrets

        def trace(result) -> None:  # noqa: ANN001
            status = "timed out" if result.exit_code is None else f"exit {result.exit_code}"
            first = result.command.splitlines()[0] if result.command else ""
            more = " ..." if "\n" in result.command else ""
            self.console.verbose(2, host_name, scrub_secrets(f"$ {first}{more}   ({status}, {result.duration:.2f} s)"))
            if self.console.verbosity >= 3:
                for stream in (result.stdout, result.stderr):
                    for line in stream.strip().splitlines()[-20:]:
                        self.console.verbose(3, host_name, "  | " + scrub_secrets(line))

        return trace

    def _unreachable(self, host_name: str, cells: list[Cell], recap: HostRecap, exc: Exception) -> None:
        recap.unreachable = True
        recap.error = str(exc)
        self.console.event(host_name, "unreachable", str(exc))
        if self.rundir is not None:
            for cell in cells:
                self._record_failure(cell, f"host unreachable: {exc}", status="failed")

    def _choose_collectors(self, host_name: str, facts: dict[str, Any], cells: list[Cell]) -> list[Any]:
        override = cells[0].telemetry.collectors if cells else None
        try:
            chosen = select.choose(facts, self.all_collectors, override)
        except LlmopsError as exc:
            self.console.event(host_name, "warn", f"telemetry: {exc}; using /proc only")
            return []
        names = ", ".join(c.name for c in chosen) or "none (no GPU tools found)"
        self.console.event(host_name, "ok", f"memory: /proc (PSS) + GPU collectors: {names}")
        return chosen

    def _provision(self, runner: Runner, agent: Agent, host_name: str, cells: list[Cell],
                   recap: HostRecap) -> dict[str, str]:
        failed: dict[str, str] = {}
        outcomes = []
        for step in all_steps(cells):
            self.check_cancel()
            outcome = provision(runner, agent, step, self.cancel,
                                on_start=lambda s: self.console.event(host_name, "changed", f"running: {s.name} "
                                                                      f"(log on host: {s.log})"))
            outcomes.append(outcome)
            status = outcome["status"]
            if status == "failed":
                failed[step.id] = outcome["error"]
                self.console.event(host_name, "failed", f"{step.name}: {outcome['error']}")
                if outcome.get("log_tail"):
                    self.console.block(_indent(outcome["log_tail"]))
            else:
                if status == "changed":
                    recap.changed += 1
                self.console.event(host_name, status, f"{step.name} ({outcome['seconds']:.1f} s)")
            if status == "interrupted":
                raise Interrupted("interrupted")
        if self.rundir is not None:
            write_json(self.rundir.host_dir(host_name) / "provision.json", outcomes)
        return failed

    # --- one cell -----------------------------------------------------------------------------

    def _record_failure(self, cell: Cell, error: str, status: str = "failed") -> None:
        data = pending_cell(cell)
        data.update({"status": status, "error": error})
        self.rundir.update_cell(cell, data)

    def _start_or_reuse(self, cell: Cell, server: Server, plugin: Backend | None, runner: Runner,
                        sampler: Sampler) -> str:
        """Start the server, or reuse the one left running with the same command: started|reused|replaced."""
        host = cell.host.name
        prestart = plugin.pre_start(cell.spec) if plugin else None
        self.console.event(host, "ok", f"[{cell.name}] starting {cell.kind} on port {cell.spec.port}")
        doc = server.start(sample=sampler.spec(), restart=self.options.restart, prestart=prestart)
        mode = "started"
        if doc.get("reuse"):
            state = doc["reuse"]
            server.adopt(state)
            self.console.event(host, "ok", f"[{cell.name}] reusing the server already running with the same "
                                            f"command (pid {state['pid']})")
            sampler.start()
            return "reused"
        if doc.get("error_kind") == "occupied":
            state = doc["state"]
            why = "--restart" if self.options.restart else "its command differs"
            self.console.event(host, "changed", f"[{cell.name}] replacing the server left on port {cell.spec.port} "
                                                f"(pid {state['pid']}, {why})")
            self.console.verbose(1, host, f"- {state.get('command')}")
            old = Server(cell, runner, server.agent, state.get("remote_dir") or server.remote_dir)
            old.adopt(state)
            report = old.stop()
            if report.survivors:
                raise ServerFailed(f"could not stop the server left on port {cell.spec.port}: "
                                   + ", ".join(f"{p['pid']} ({p['comm']})" for p in report.survivors))
            doc = server.start(sample=sampler.spec(), restart=True, prestart=prestart)
            mode = "replaced"
        sampler.pid = doc.get("sampler_pid")
        return mode

    def _cell(self, runner: Runner, agent: Agent, cell: Cell) -> dict[str, Any]:
        host = cell.host.name
        plugin = self.backends.get(cell.kind)
        result = pending_cell(cell)
        result.update({"status": "running", "started_at": time.time()})
        self.rundir.update_cell(cell, result)
        cell_dir = self.rundir.cell_dir(cell)
        # The host's name is part of the folder: a shared (NFS) home must not mix two hosts' logs.
        remote_dir = (f"{cell.remote_root.rstrip('/')}/{self.rundir.remote_id}/{safe_name(cell.host.name)}/"
                      f"{safe_name(cell.name)}")
        server = Server(cell, runner, agent, remote_dir)
        sampler: Sampler | None = None
        bench_window: tuple[float, float] | None = None
        idle: procmem.TreeSample | None = None
        levels: list[dict[str, Any]] = []
        t_ready: float | None = None
        self.console.verbose(1, host, f"$ {cell.display_command}")
        mode = None
        try:
            sampler = Sampler(agent, server, remote_dir, cell.benchmark.sample_interval,
                              self._collectors.get(cell.host.name, []), cell.telemetry)
            mode = self._start_or_reuse(cell, server, plugin, runner, sampler)
            result["server"] = mode
            with self._active_lock:
                self.active[cell.id] = (server, runner)
            if mode != "reused":
                self.leases.hold(runner, agent, server.lease_path, cell.lease_timeout)
            target = cell.spec.bind if cell.spec.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
            with runner.forward(cell.spec.port, target) as local_port:
                base = f"http://127.0.0.1:{local_port}"
                ready_s = server.wait_ready("127.0.0.1", local_port, cell.spec.ready_timeout, self.check_cancel)
                result["startup"] = {"ready_s": ready_s} if mode != "reused" else {"ready_s": None, "reused": True}
                t_ready = time.time()
                idle_procs = server.procs()
                total, source = procmem.tree_bytes(idle_procs)
                idle = procmem.TreeSample(t=t_ready, bytes=total, source=source, procs=idle_procs)
                sampler.snapshot_gpu()  # idle GPU memory right after ready, not at the next tick
                result["memory"] = {"source": source, "idle_bytes": total, "peak_bytes": total}
                ready = "already ready" if mode == "reused" else f"ready in {ready_s:.2f} s"
                self.console.event(host, "ok", f"[{cell.name}] {ready}, "
                                                f"{_mib(total)} ({source}) across {len(idle_procs)} process(es)")
                self.rundir.update_cell(cell, result)
                self.check_cancel()
                t_bench = time.time()
                levels = self._bench(cell, plugin, base, result, cell_dir, server)
                bench_window = (t_bench, time.time())
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
            self.console.event(host, "failed", f"[{cell.name}] {exc}")
            if exc.log_tail:
                self.console.block(_indent(exc.log_tail))
        except (ExecutionError, ConnectError) as exc:
            result["status"] = "failed"
            result["error"] = str(exc)
            self.console.event(host, "failed", f"[{cell.name}] {exc}")
        finally:
            keep = result["status"] == "ok" and (self.options.keep_running or mode == "reused")
            self._finish_cell(cell, server, sampler, result, levels, idle, bench_window, cell_dir, plugin, t_ready,
                              keep=keep)
        result["changed"] = mode == "replaced" or (mode in ("started", "replaced") and result.get("left_running"))
        return result

    def _release_check(self, cell: Cell, sampler: Sampler, pids: set[int], result: dict[str, Any]) -> None:
        """After stop, no process of the server may still hold GPU memory; say loudly if one does."""
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
            self.console.event(cell.host.name, "failed", f"[{cell.name}] WARNING: {warning}")

    def _bench(self, cell: Cell, plugin: Backend | None, base: str, result: dict[str, Any],
               cell_dir: Path, server: Server) -> list[dict[str, Any]]:
        spec = cell.benchmark
        api_key = plugin.api_key(cell.spec) if plugin else None
        synthetic = spec.input_tokens is not None or spec.prompt_file is not None
        opts = RequestOptions(url=base + "/v1/chat/completions", model=cell.spec.model_name, api_key=api_key,
                              ignore_eos=spec.ignore_eos if spec.ignore_eos is not None else True,
                              temperature=spec.temperature, seed=spec.seed, timeout=spec.timeout)
        load = LoadSpec(concurrency=list(spec.concurrency), requests=spec.requests, duration=spec.duration,
                        warmup=spec.warmup, rate=[spec.rate] if spec.rate else None, burstiness=spec.burstiness,
                        seed=spec.seed or 0)
        prompt = PromptSpec(text=None if synthetic else spec.prompt, input_tokens=spec.input_tokens,
                            file=spec.prompt_file, max_tokens=spec.max_tokens, unique=spec.unique_prompts,
                            shared_prefix_tokens=spec.shared_prefix_tokens, seed=spec.seed or 0)
        slo = bench_metrics.Slo(**spec.slo.model_dump()) if spec.slo else None
        requests_path = cell_dir / "requests.jsonl"
        levels: list[dict[str, Any]] = []
        host = cell.host.name

        def on_record(record: RequestRecord) -> None:
            data = record.to_json()
            if data.get("error") and cell.secrets:
                data["error"] = scrub(data["error"], cell.secrets)
            self.rundir.append_jsonl(requests_path, data)

        def on_level(plan: LevelPlan, event: str, t: float) -> None:
            if event == "start":
                self.console.event(host, "ok", f"[{cell.name}] benchmark {plan.label} ...")

        bench = Bench(base_url=base, opts=opts, load=load, prompt_spec=prompt, slo=slo, on_record=on_record,
                      on_level=on_level)

        def on_level_result(level: dict[str, Any]) -> None:
            if level["failed"] and not server.alive():
                levels.append(level)
                result["levels"] = list(levels)
                raise ServerFailed(f"the server exited during the benchmark (level c={level['concurrency']}); "
                                   "the levels before it are kept", server.log_tail())
            if bench.calibration:
                result["prompt_calibration"] = dict(bench.calibration)
            levels.append(level)
            result["levels"] = list(levels)
            self.rundir.update_cell(cell, result)
            label = f"rate {level['rate']:g}/s" if level.get("rate") is not None else f"c={level['concurrency']}"
            self.console.event(host, "ok" if level["failed"] == 0 else "failed",
                               f"[{cell.name}] {label}: {level['succeeded']}/{level['requests']} ok, "
                               f"gen {level['gen_tps']:.1f} tok/s, TTFT max {_fmt(level['ttft_max_s'])} s, "
                               f"{level['total_s']:.2f} s")

        lost: list[str] = []

        async def run_watched() -> None:
            # Requests through an SSH tunnel hang (rather than fail) when the connection drops;
            # watch the connection and stop the benchmark when it goes.
            runner = server.runner
            main = asyncio.ensure_future(bench.run(on_level_result))
            try:
                while not main.done():
                    await asyncio.wait([main], timeout=0.25)
                    if not main.done() and self.cancel.is_set():  # Ctrl-C came before this loop existed
                        main.cancel()
                        await asyncio.wait([main])
                        raise asyncio.CancelledError
                    if not main.done() and not runner.is_connected():
                        lost.append(f"the SSH connection to {cell.host.name} was lost during the benchmark")
                        main.cancel()
                        await asyncio.wait([main])
            except asyncio.CancelledError:  # Ctrl-C: take the benchmark down with us
                main.cancel()
                raise
            if not lost:
                main.result()

        loop = asyncio.new_event_loop()
        task = loop.create_task(run_watched())
        key = threading.get_ident()
        self._loops[key] = (loop, task)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            raise Interrupted("interrupted during the benchmark") from None
        finally:
            self._loops.pop(key, None)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        if lost:
            raise ConnectError(lost[0] + "; the levels before it are kept")
        return levels

    def _finish_cell(self, cell: Cell, server: Server, sampler: "Sampler | None", result: dict[str, Any],
                     levels: list[dict[str, Any]], idle: procmem.TreeSample | None,
                     bench_window: tuple[float, float] | None, cell_dir: Path, plugin: Backend | None,
                     t_ready: float | None = None, keep: bool = False) -> None:
        """Always runs: stop the server (unless it is to stay), check it is gone, bring logs and
        samples home, record."""
        host = cell.host.name
        try:
            if keep and server.pid is not None:
                self.leases.release(server.lease_path)
                server.release_lease()
                result["left_running"] = True
                self.console.event(host, "ok", f"[{cell.name}] left running (pid {server.pid}, port {cell.spec.port})")
            elif server.pid is not None:
                try:
                    graceful = plugin.stop_command(cell.spec) if plugin else None
                    if graceful:
                        server.runner.run(graceful, timeout=cell.spec.stop_timeout + 30)
                    report = server.stop(sampler_pid=sampler.pid if sampler is not None else None)
                    if sampler is not None:
                        sampler.stopped = True  # the stop call took the sampler down with the server
                    result["stop"] = report.to_json()
                    if report.survivors:
                        names = ", ".join(f"{s['pid']} ({s['comm']})" for s in report.survivors)
                        warning = f"processes survived the stop: {names}"
                        result["stop"]["warning"] = warning
                        self.console.event(host, "failed", f"[{cell.name}] WARNING: {warning}")
                        if result["status"] == "ok":
                            result["status"] = "failed"
                            result["error"] = warning
                    else:
                        self.console.event(host, "ok", f"[{cell.name}] stopped in {report.seconds:.2f} s"
                                                        f"{' (SIGKILL needed)' if report.forced else ''}")
                except (ExecutionError, ConnectError) as exc:
                    result["stop"] = {"stopped": False, "error": str(exc)}
                    self.console.event(host, "failed", f"[{cell.name}] could not confirm the stop: {exc}")
            samples: list[procmem.TreeSample] = []
            gpu_samples: list[gpumem.GpuSample] = []
            if sampler is not None:
                try:
                    samples, gpu_samples = sampler.finish(cell_dir / "memory.jsonl")
                except (ExecutionError, ConnectError) as exc:
                    result.setdefault("warnings", []).append(f"memory samples lost: {exc}")
            tree_pids = set(server.known_pids) | {int(p["pid"]) for s in samples for p in s.procs}
            if idle is not None or samples:
                memory = procmem.summarize(samples, idle, levels, bench_window)
                memory["samples_file"] = "memory.jsonl"
                gpu = gpumem.summarize(gpu_samples, tree_pids, t_ready, bench_window, levels)
                if gpu:
                    memory["gpu"] = gpu
                result["memory"] = memory
            if sampler is not None and server.pid is not None and not keep:
                self._release_check(cell, sampler, tree_pids, result)
            if server.pid is not None:
                try:
                    if server.fetch_log(cell_dir / "server.log"):
                        result["log"] = self.rundir.relative(cell_dir / "server.log")
                        if plugin is not None:
                            phases = plugin.startup_phases(server.timed_log(cell_dir / "server.log"))
                            if phases:
                                result.setdefault("startup", {})["phases"] = phases
                except (ExecutionError, ConnectError, OSError) as exc:
                    result.setdefault("warnings", []).append(f"server log not copied: {exc}")
        finally:
            self.leases.release(server.lease_path)
            with self._active_lock:
                self.active.pop(cell.id, None)
            result["finished_at"] = time.time()
            self.rundir.update_cell(cell, result)


def _indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1048576:.1f} MiB"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
