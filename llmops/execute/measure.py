"""Measure one ready server: the benchmark levels, with a watch on the connection, each
level's time budget and Ctrl-C. Each finished level is recorded at once (an interrupted run
keeps it); a server that dies mid-level ends the benchmark with the levels before it kept.
CellRun.measure (cell.py) calls this; it starts and stops nothing itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from llmops.bench import metrics as bench_metrics
from llmops.bench.client import RequestOptions, RequestRecord
from llmops.bench.engine import Bench, LevelPlan, LoadSpec
from llmops.bench.progress import LevelProgress
from llmops.bench.prompts import PromptSpec
from llmops.bench.stats import repeat_note
from llmops.errors import ConnectError, ExecutionError, ServerFailed
from llmops.execute.cancel import Cancel
from llmops.execute.console import Console
from llmops.execute.server import Server, scrub
from llmops.execute.verdict import default_request_timeout, level_budget
from llmops.plan.model import Cell
from llmops.plugins.api import Backend
from llmops.record.rundir import RunDir
from llmops.telemetry import hostnoise


def run_levels(cell: Cell, plugin: Backend | None, base: str, result: dict[str, Any], cell_dir: Path,
               server: Server, *, rundir: RunDir, console: Console, cancel: Cancel) -> list[dict[str, Any]]:
    spec = cell.benchmark
    api_key = plugin.api_key(cell.spec) if plugin else None
    synthetic = spec.input_tokens is not None or spec.prompt_file is not None
    opts = RequestOptions(url=base + "/v1/chat/completions", model=cell.spec.model_name, api_key=api_key,
                          ignore_eos=spec.ignore_eos if spec.ignore_eos is not None else True,
                          temperature=spec.temperature, seed=spec.seed,
                          timeout=spec.timeout or default_request_timeout(spec.max_tokens),
                          sampling=plugin.sampling_body(spec.sampling()) if plugin else spec.sampling())
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

    progress = LevelProgress(load, lambda text: console.status(host, f"[{cell.name}] benchmark {text}"))

    def on_record(record: RequestRecord) -> None:
        progress.on_record(record)
        data = record.to_json()
        if data.get("error") and cell.secrets:
            data["error"] = scrub(data["error"], cell.secrets)
        rundir.append_jsonl(requests_path, data)

    running: dict[str, Any] = {}  # the level in progress and when it must be over (level_budget)

    def on_level(plan: LevelPlan, event: str, t: float) -> None:
        progress.on_level(plan, event, t)
        if event == "start":
            console.event(host, "ok", f"[{cell.name}] benchmark {plan.label} ...")
            budget = level_budget(plan.concurrency, plan.rate, spec.requests, spec.duration, spec.warmup,
                                  opts.timeout or 0.0)
            running.update(label=plan.label, budget=budget, deadline=time.monotonic() + budget)
        else:
            running.clear()

    adaptive = spec.repeat == "auto"
    bench = Bench(base_url=base, opts=opts, load=load, prompt_spec=prompt, slo=slo, on_record=on_record,
                  on_level=on_level, repeat=2 if adaptive else int(spec.repeat), adaptive=adaptive,
                  max_repeat=spec.max_repeat, precision=spec.precision, repeat_budget_s=spec.repeat_budget,
                  warmup_request=spec.warmup_request, on_repeat=_noise_probe(server),
                  metrics_path=plugin.metrics_path(cell.spec) if plugin else None)

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
        rundir.update_cell(cell, result)
        label = f"rate {level['rate']:g}/s" if level.get("rate") is not None else f"c={level['concurrency']}"
        console.event(host, "ok" if level["failed"] == 0 else "failed",
                           f"[{cell.name}] {label}: {level['succeeded']}/{level['requests']} ok, "
                           f"gen {level['gen_tps']:.1f} tok/s, TTFT max {_fmt(level['ttft_max_s'])} s, "
                           f"{level['total_s']:.2f} s" + repeat_note(level))

    lost: list[str] = []
    over: list[str] = []

    async def run_watched() -> None:
        # Requests through an SSH tunnel hang (rather than fail) when the connection drops;
        # watch the connection and stop the benchmark when it goes.
        runner = server.runner
        main = asyncio.ensure_future(bench.run(on_level_result))
        try:
            while not main.done():
                await asyncio.wait([main], timeout=0.25)
                if not main.done() and cancel.is_set():  # Ctrl-C came before this loop existed
                    main.cancel()
                    await asyncio.wait([main])
                    raise asyncio.CancelledError
                if not main.done() and not runner.is_connected():
                    lost.append(f"the SSH connection to {cell.host.name} was lost during the benchmark")
                    main.cancel()
                    await asyncio.wait([main])
                if not main.done() and running and time.monotonic() > running["deadline"]:
                    over.append(f"benchmark level {running['label']} went past its budget of "
                                f"{running['budget']:.0f} s (request timeout {opts.timeout:g} s); "
                                "the server stopped answering? The levels before it are kept")
                    main.cancel()
                    await asyncio.wait([main])
        except asyncio.CancelledError:  # Ctrl-C: take the benchmark down with us
            main.cancel()
            raise
        if not lost and not over:
            main.result()

    cancel.run(run_watched(), "the benchmark")
    if lost:
        raise ConnectError(lost[0] + "; the levels before it are kept")
    if over:
        raise ServerFailed(over[0], server.log_tail())
    return levels


def _noise_probe(server: Server):  # noqa: ANN202
    """Snapshots of the host's CPU at each repetition's start and end (docs/metrics.md, "Host
    noise"); the end returns the difference. A failed snapshot only loses the noise figure."""
    start: dict[str, Any] = {}
    exclude = [str(os.getpid())] if server.runner.host.is_local else []

    def snapshot() -> dict[str, Any] | None:
        if server.pid is None:
            return None
        args = ["noise", str(server.pid)]
        if server.sid is not None:
            args += ["--sid", str(server.sid)]
        if server.known_pids:
            args += ["--known", *map(str, sorted(server.known_pids))]
        if exclude:
            args += ["--exclude", *exclude]
        if server.container_pid:
            args += ["--also", str(server.container_pid)]
        try:
            doc = server.agent.call(*args, timeout=30, check=False)
        except (ExecutionError, ConnectError):
            return None
        return doc if "cpu_total" in doc else None

    def probe(plan: LevelPlan, index: int, event: str) -> dict[str, Any] | None:
        if event == "start":
            start["snap"] = snapshot()
            return None
        before, after = start.pop("snap", None), snapshot()
        return hostnoise.between(before, after) if before and after else None

    return probe


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
