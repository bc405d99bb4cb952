"""The executor driven through a fake transport: what it does with a host it cannot reach, and
how it tells which transport it got (by the runner's `kind`, never its class name); then one
CellRun driven step by step (start, ready, measure, stop, collect) with a fake runner and
server. No process is started; the plan, run directory and console are the real ones."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from conftest import ROOT

from llmops.errors import ConnectError, ServerFailed
from llmops.execute import transport
from llmops.execute.cancel import Cancel, Interrupted
from llmops.execute.cell import CellRun, RunContext
from llmops.execute.console import Console
from llmops.execute.executor import ExecOptions, Executor
from llmops.execute.server import StopReport
from llmops.load.playbook import load_playbook
from llmops.load.sources import load_inventory
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry
from llmops.record.rundir import RunDir

PLAYBOOK = ROOT / "tests" / "playbooks" / "llama.yml"


class FakeRunner:
    """Every command fails as a dropped SSH connection does; remembers that it was closed."""

    kind = "openssh"
    trace = None

    def __init__(self, host) -> None:  # noqa: ANN001
        self.host = host
        self.closed = False
        self.commands: list[str] = []

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None):  # noqa: ANN201
        self.commands.append(command)
        raise ConnectError(f"{self.host.name}: connection closed by the fake")

    def open_stream(self, command: str, *, replies: bool = False):  # noqa: ANN201
        self.commands.append(command)
        raise ConnectError(f"{self.host.name}: connection closed by the fake")

    def is_connected(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _executor(tmp_path: Path) -> tuple[Executor, io.StringIO, RunDir]:
    plan = make_plan(load_playbook(str(PLAYBOOK)), load_inventory(None), registry().backends())
    rundir = RunDir(tmp_path / "run", "run")
    rundir.create(plan, PLAYBOOK, None, ["test"])
    out = io.StringIO()
    return Executor(plan, rundir, Console(stream=out, progress=io.StringIO()), registry().backends(),
                    ExecOptions(forks=1)), out, rundir


def test_a_host_that_drops_the_connection_is_unreachable_and_its_cells_are_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeRunner] = []

    def connect(host):  # noqa: ANN001, ANN202
        made.append(FakeRunner(host))
        return made[-1]

    monkeypatch.setattr(transport, "connect", connect)
    executor, out, rundir = _executor(tmp_path)
    recaps = executor.run()
    assert recaps["localhost"].unreachable and "connection closed by the fake" in recaps["localhost"].error
    text = out.getvalue()
    assert "using the system ssh client" in text  # told by kind == "openssh"
    assert "unreachable: [localhost]" in text
    assert made and made[0].closed and made[0].commands  # it tried, then let go of the transport
    cells = rundir.results()["cells"]
    assert [c["status"] for c in cells] == ["failed", "failed"]
    assert all("host unreachable" in c["error"] for c in cells)


def test_a_host_that_cannot_be_connected_to_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(host):  # noqa: ANN001, ANN202
        raise ConnectError(f"{host.name}: no route (fake)")

    monkeypatch.setattr(transport, "connect", connect)
    executor, out, rundir = _executor(tmp_path)
    recaps = executor.run()
    assert recaps["localhost"].unreachable and recaps["localhost"].ok == 0
    assert "using the system ssh client" not in out.getvalue()
    assert {c["status"] for c in rundir.results()["cells"]} == {"failed"}


# --- CellRun, one step at a time ------------------------------------------------------------------
# The host side is faked at the seams CellRun offers (new_server, new_sampler, measure_levels)
# and through a runner whose forward() hands back a port: no process is started, while the
# lifecycle, the records in the run directory and the console lines are the real ones.

class CellRunner:
    """A connected transport: forwards a port, runs (graceful stop) commands, stays connected."""

    kind = "local"
    trace = None

    def __init__(self, host) -> None:  # noqa: ANN001
        self.host = host
        self.commands: list[str] = []
        self.forwarded: list[tuple[int, str]] = []

    @contextlib.contextmanager
    def forward(self, port: int, target: str):  # noqa: ANN201
        self.forwarded.append((port, target))
        yield 40000 + port % 1000

    def run(self, command: str, *, timeout: float | None = None, stdin: str | bytes | None = None):  # noqa: ANN201
        self.commands.append(command)

    def is_connected(self) -> bool:
        return True


class FakeServer:
    """What CellRun asks of a Server; remembers each call so a test can see the order."""

    def __init__(self, runner: CellRunner) -> None:
        self.runner, self.agent = runner, None
        self.remote_dir, self.run_id = "/tmp/fake", "run"
        self.pid: int | None = None
        self.known_pids: set[int] = set()
        self.container: str | None = None  # a process, not a container
        self.container_pid = None
        self.cgroup = None
        self.launcher_procs: list = []
        self.lease_path = "/tmp/fake/lease"
        self.log_path = "/tmp/fake/server.log"
        self.calls: list[str] = []

    def start(self, sample=None, *, restart=False, prestart=None, on_expiry=None):  # noqa: ANN001, ANN201
        self.calls.append("start")
        self.pid = 4242
        self.known_pids = {4242}
        return {"pid": 4242, "sampler_pid": 4243}

    def wait_ready(self, host, port, timeout, check_cancel, on_phase=None, phases=None):  # noqa: ANN001, ANN201
        self.calls.append(f"wait_ready {host}:{port}")
        check_cancel()
        return 0.25

    def procs(self) -> list[dict]:
        return [{"pid": 4242, "pss_kb": 2048, "rss_kb": 4096}]

    def alive(self) -> bool:
        return "stop" not in self.calls

    def log_tail(self, lines: int = 30) -> str:
        return "fake: the last lines of the server log"

    def stop(self, timeout=None, sampler_pid=None):  # noqa: ANN001, ANN201
        self.calls.append("stop")
        return StopReport(stopped=True, forced=False, seconds=0.1)

    def release_lease(self) -> None:
        self.calls.append("release_lease")

    def fetch_log(self, local: Path) -> bool:
        self.calls.append("fetch_log")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("server listening\n")
        return True

    def timed_log(self, local: Path) -> list:
        return []


class FakeSampler:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.stopped = False
        self.finished = False

    def spec(self) -> dict:
        return {}

    def start(self) -> None:
        pass

    def snapshot_gpu(self) -> None:
        pass

    def probe_power(self) -> bool:
        return False  # no power source: no idle wait

    def power_collectors(self) -> list[str]:
        return []

    def finish(self, local: Path):  # noqa: ANN201
        self.finished = True
        return [], []

    def release_check(self, pids: set[int]) -> None:
        return None


class FakeLeases:
    def __init__(self) -> None:
        self.held: set[str] = set()
        self.ever: list[str] = []

    def hold(self, runner, agent, path: str, timeout: float) -> None:  # noqa: ANN001
        self.held.add(path)
        self.ever.append(path)

    def release(self, path: str) -> None:
        self.held.discard(path)


def _level(concurrency: int) -> dict:
    return {"concurrency": concurrency, "requests": concurrency, "succeeded": concurrency, "failed": 0,
            "completion_tokens": 8 * concurrency, "gen_tps": 10.0, "t_start": 0.0, "t_end": 1.0}


class ScriptedCellRun(CellRun):
    """Measures levels 1, 2, ... as the plan's benchmark says; `crash_after` levels in, the server 'dies'."""

    crash_after: int | None = None
    interrupt_after: int | None = None

    def new_server(self) -> FakeServer:  # type: ignore[override]
        return FakeServer(self.runner)

    def new_sampler(self) -> FakeSampler:  # type: ignore[override]
        return FakeSampler()

    def measure_levels(self, base: str) -> list[dict]:
        assert base.startswith("http://127.0.0.1:")
        levels: list[dict] = []
        for c in self.cell.benchmark.concurrency:
            if self.crash_after is not None and len(levels) == self.crash_after:
                raise ServerFailed(f"the server exited during the benchmark (level c={c}); the levels before it "
                                   "are kept", self.server.log_tail())
            if self.interrupt_after is not None and len(levels) == self.interrupt_after:
                self.ctx.cancel.interrupt()
                self.ctx.cancel.check()
            levels.append(_level(c))
            self.result["levels"] = list(levels)  # as run_levels does: each level recorded when done
            self.record()
        return levels


def _cell_run(tmp_path: Path, **options) -> tuple[ScriptedCellRun, RunContext, io.StringIO, RunDir]:  # noqa: ANN003
    plan = make_plan(load_playbook(str(PLAYBOOK)), load_inventory(None), registry().backends())
    rundir = RunDir(tmp_path / "run", "run")
    rundir.create(plan, PLAYBOOK, None, ["test"])
    out = io.StringIO()
    ctx = RunContext(rundir, Console(stream=out, progress=io.StringIO()), ExecOptions(**options), Cancel(),
                     FakeLeases())  # type: ignore[arg-type]
    cell = plan.cells[0]
    assert len(cell.benchmark.concurrency) >= 2, "the playbook must measure two levels for these tests"
    return ScriptedCellRun(ctx, CellRunner(cell.host), None, cell, None), ctx, out, rundir  # type: ignore[arg-type]


def _recorded(rundir: RunDir, cell_run: CellRun) -> dict:
    (cell,) = [c for c in rundir.results()["cells"] if c["name"] == cell_run.cell.name]
    return cell


def test_cell_run_step_by_step(tmp_path: Path) -> None:
    run, ctx, out, rundir = _cell_run(tmp_path)
    assert _recorded(rundir, run)["status"] == "running"  # recorded before anything starts

    assert run.start() == "started"
    assert run.server.calls == ["start"] and ctx.active[run.cell.id][0] is run.server
    assert ctx.leases.held == {run.server.lease_path}

    assert run.wait_ready(40123) == 0.25
    assert _recorded(rundir, run)["memory"]["idle_bytes"] == 2048 * 1024  # PSS of the idle tree, recorded

    levels = run.measure("http://127.0.0.1:40123")
    assert [lv["concurrency"] for lv in levels] == list(run.cell.benchmark.concurrency)

    run.result["status"] = "ok"
    run.stop()
    assert run.server.calls[-1] == "stop" and run.result["stop"]["stopped"]
    assert "stopped in 0.10 s" in out.getvalue()

    run.collect()
    recorded = _recorded(rundir, run)
    assert recorded["status"] == "ok" and recorded["finished_at"] and recorded["log"].endswith("server.log")
    assert recorded["memory"]["per_level"] and run.sampler.finished
    assert ctx.active == {} and ctx.leases.held == set()


def test_cell_run_whole_lifecycle_forwards_the_port_and_stops(tmp_path: Path) -> None:
    run, ctx, out, rundir = _cell_run(tmp_path)
    result = run.run()
    assert result["status"] == "ok" and result["server"] == "started" and not result["changed"]
    assert run.runner.forwarded == [(run.cell.spec.port, "127.0.0.1")]
    port = 40000 + run.cell.spec.port % 1000
    assert run.server.calls == ["start", f"wait_ready 127.0.0.1:{port}", "stop", "fetch_log"]
    assert _recorded(rundir, run)["status"] == "ok"


def test_a_crash_in_measure_still_stops_and_keeps_what_was_measured(tmp_path: Path) -> None:
    run, ctx, out, rundir = _cell_run(tmp_path)
    run.crash_after = 1
    result = run.run()
    assert result["status"] == "failed" and "exited during the benchmark" in result["error"]
    assert "stop" in run.server.calls and "fetch_log" in run.server.calls  # stopped, log brought home
    recorded = _recorded(rundir, run)
    assert recorded["status"] == "failed" and recorded["log_tail"].startswith("fake:")
    assert [lv["concurrency"] for lv in recorded["levels"]] == [run.cell.benchmark.concurrency[0]]
    assert recorded["stop"]["stopped"] and recorded["finished_at"]
    assert ctx.active == {} and ctx.leases.held == set()
    assert "failed: [localhost]" in out.getvalue() and "    | fake: the last lines" in out.getvalue()


def test_ctrl_c_in_measure_stops_the_server_and_is_passed_on(tmp_path: Path) -> None:
    run, ctx, out, rundir = _cell_run(tmp_path)
    run.interrupt_after = 1
    with pytest.raises(Interrupted):
        run.run()
    recorded = _recorded(rundir, run)
    assert recorded["status"] == "interrupted" and len(recorded["levels"]) == 1
    assert "stop" in run.server.calls and ctx.active == {}


def test_keep_running_leaves_the_server_up_off_our_lease(tmp_path: Path) -> None:
    run, ctx, out, rundir = _cell_run(tmp_path, keep_running=True)
    result = run.run()
    assert result["status"] == "ok" and result["left_running"] and result["changed"]
    assert "stop" not in run.server.calls and "release_lease" in run.server.calls
    assert ctx.leases.ever == [run.server.lease_path] and ctx.leases.held == set()
    assert "left running (pid 4242" in out.getvalue()


def test_a_server_that_never_started_is_not_stopped(tmp_path: Path) -> None:
    run, ctx, out, rundir = _cell_run(tmp_path)

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ServerFailed("the port is taken (fake)", "")

    run.server.start = refuse  # type: ignore[method-assign]
    result = run.run()
    assert result["status"] == "failed" and "port is taken" in result["error"]
    assert run.server.calls == [] and "stop" not in result
    assert _recorded(rundir, run)["finished_at"]
