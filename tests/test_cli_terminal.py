"""Terminal conventions: data on stdout and progress on stderr, a live status line on a
terminal (tested under a pseudo-terminal) and plain heartbeats elsewhere, NO_COLOR, one
meaning per short option, help and an example everywhere, and docs/cli.md kept current."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from conftest import ROOT, free_port

from llmops.bench.emulator import EmulatorProcess
from llmops.cli_docs import all_commands, cli_reference
from llmops.execute.console import Console
from llmops.load.sources import load_inventory

ALL = [(path, command) for path, command, _ in all_commands()]


def test_docs_cli_md_is_current() -> None:
    """Regenerate with: python -m llmops.cli_docs > docs/cli.md"""
    assert (ROOT / "docs" / "cli.md").read_text() == cli_reference()


@pytest.mark.parametrize("path,command", ALL, ids=[p for p, _ in ALL])
def test_every_option_has_help_and_every_command_an_example(path: str, command: click.Command) -> None:
    missing = [p.name for p in command.params if isinstance(p, click.Option) and not p.hidden and not p.help]
    assert missing == []
    assert "Examples:" in (command.help or ""), path


def test_a_short_option_means_one_thing_in_every_command() -> None:
    meaning: dict[str, set[str]] = {}
    for _, command in ALL:
        for p in command.params:
            if isinstance(p, click.Option):
                longs = tuple(o for o in p.opts if o.startswith("--"))
                for short in (o for o in p.opts if re.fullmatch(r"-\w", o)):
                    meaning.setdefault(short, set()).add(longs[0] if longs else short)
    assert {s: m for s, m in meaning.items() if len(m) > 1} == {}
    assert meaning["-t"] == {"--tags"} and meaning["-f"] == {"--forks"}


def _pty_stream() -> tuple[int, io.TextIOWrapper]:
    master, slave = pty.openpty()
    return master, io.TextIOWrapper(os.fdopen(slave, "wb", buffering=0), write_through=True)


def _drain(master: int, seconds: float = 0.5) -> str:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    return out.decode("utf-8", "replace")


def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    master, tty = _pty_stream()
    try:
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert Console(stream=tty, progress=tty).color is True
        monkeypatch.setenv("NO_COLOR", "1")
        Console(stream=tty, progress=tty).event("h", "failed", "boom")
        assert "\033[" not in _drain(master) and Console(stream=tty).color is False
    finally:
        tty.close()
        os.close(master)


def test_status_is_one_live_line_on_a_terminal_and_heartbeats_elsewhere() -> None:
    master, tty = _pty_stream()
    try:
        live = Console(stream=tty, progress=tty, color=False)
        live.status("h", "c=4: 1/8 requests, ETA 3 s")
        live.status("h", "c=4: 2/8 requests, ETA 2 s")
        live.event("h", "ok", "done")
        shown = _drain(master)
    finally:
        tty.close()
        os.close(master)
    assert shown.count("\r\033[K") == 3  # two rewrites and the clear before the event line
    assert "2/8 requests" in shown and shown.rstrip().endswith("[h] done")

    logged = io.StringIO()
    plain = Console(stream=io.StringIO(), progress=logged, heartbeat_s=3600)
    plain.t0 -= 7200  # the first heartbeat is due; the next ones within the hour are not
    for i in range(50):
        plain.status("h", f"{i}/50 requests")
    assert logged.getvalue().count("\n") == 1 and "\r" not in logged.getvalue()


def test_bench_level_shows_requests_done_and_eta_under_a_pty() -> None:
    """`llmops bench` with stderr on a pseudo-terminal: a live line per request; stdout stays JSON."""
    emu = EmulatorProcess({"default": {"ttft": 0.02, "gap": 0.005, "output_tokens": 8}})
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "llmops", "bench", emu.url, "-c", "2", "--requests", "30",
                                 "--max-tokens", "8", "--format", "json"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=slave, env={**os.environ, "NO_COLOR": "1"})
        os.close(slave)
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(_drain(master, 60)), daemon=True)
        reader.start()
        out, _ = proc.communicate(timeout=120)
        reader.join(70)
    finally:
        os.close(master)
        emu.stop()
    assert proc.returncode == 0
    shown = "".join(chunks)
    seen = [int(n) for n in re.findall(r"c=2: (\d+)/30 requests, ETA", shown)]
    assert seen[-1] == 30 and len(set(seen)) > 10, shown[-2000:]  # it moved while the level ran
    assert "\r\033[K" in shown
    assert json.loads(out)  # progress never reached stdout


def test_build_progress_is_read_from_the_log_while_a_step_runs(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """provision() with a real agent on this machine: a fake build that prints cmake's percentages."""
    from llmops.execute import provision as provision_mod
    from llmops.execute.agent import Agent
    from llmops.execute.runner import connect
    from llmops.plugins.api import ProvisionStep

    monkeypatch.setattr(provision_mod, "PROGRESS_EVERY_S", 0.3)
    log = tmp_path / "build.log"
    done = tmp_path / "done"
    build = (f"for p in 10 42 77 100; do echo \"[ $p%] Building CXX object x.o\" >> {log}; sleep 0.6; done; "
             f"touch {done}")
    step = ProvisionStep(id="fake", name="fake build", check=f"test -e {done}", apply=build, timeout=60, log=str(log))
    runner = connect(load_inventory(None).hosts["localhost"])
    agent = Agent(runner, str(tmp_path / "cache"))
    agent.install()
    heard: list[str] = []
    try:
        outcome = provision_mod.provision(runner, agent, step, threading.Event(),
                                          on_progress=lambda s, text: heard.append(text))
    finally:
        agent.close()
        runner.close()
    assert outcome["status"] == "changed"
    percents = [int(t.split("%")[0]) for t in heard if "%" in t]
    assert percents and percents == sorted(percents) and percents[0] < 100, heard


def test_startup_phase_names_the_last_milestone_in_the_log(tmp_path: Path) -> None:
    from llmops.backends.vllm import VLLM_PHASES
    from llmops.execute.runner import connect
    from llmops.execute.server import Server

    server = Server.__new__(Server)  # only the runner and the log path are needed to read a phase
    server.runner = connect(load_inventory(None).hosts["localhost"])
    server.log_path = str(tmp_path / "server.log")
    assert server.startup_phase(VLLM_PHASES) == "waiting for health"
    (tmp_path / "server.log").write_text("INFO Loading weights took 1.2 seconds\n"
                                         "INFO Available KV cache memory: 2.1 GiB\n")
    assert server.startup_phase(VLLM_PHASES) == "kv cache ready"


def test_apply_json_is_one_json_document_on_stdout(provisioned: None, tmp_path: Path) -> None:
    """`llmops apply --json ... | python -m json.tool` works: progress and tables go to stderr."""
    port = free_port()
    extra = json.dumps({"port": port, "levels": [1], "max_tokens": 8})
    run_dir = tmp_path / "run"
    cmd = (f"{sys.executable} -m llmops apply tests/playbooks/llama.yml -t llama.cpp-np1 --json -e '{extra}' "
           f"--run-dir {run_dir} | {sys.executable} -m json.tool")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["recap"]["localhost"]["ok"] + doc["recap"]["localhost"]["changed"] >= 1
    assert doc["status"] == "complete" and doc["results"] == str(run_dir / "results.json")
    assert "PLAY RECAP" not in proc.stdout and "RUN " in proc.stderr


def test_apply_shows_the_level_live_under_a_pty(provisioned: None, tmp_path: Path) -> None:
    """A real llama-server run with stdout and stderr on a pseudo-terminal, as a person sees it."""
    port = free_port()
    extra = json.dumps({"port": port, "levels": [4], "max_tokens": 16})
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "llmops", "apply", "tests/playbooks/llama.yml", "-t",
                                 "llama.cpp-np1", "-e", extra, "--run-dir", str(tmp_path / "run")], cwd=ROOT,
                                stdout=slave, stderr=slave, env={**os.environ, "NO_COLOR": "1"})
        os.close(slave)
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(_drain(master, 300)), daemon=True)
        reader.start()
        proc.wait(timeout=600)
        reader.join(5)
    finally:
        os.close(master)
    shown = "".join(chunks)
    assert proc.returncode == 0, shown[-3000:]
    assert re.search(r"\r\033\[K\s*[\d.]+s \[localhost\] \[llama.cpp-np1\] benchmark c=4: 4/4 requests", shown), \
        shown[-3000:]
    assert "PLAY RECAP" in shown


def test_apply_puts_progress_on_stderr_and_the_recap_on_stdout(tmp_path: Path) -> None:
    """Without --json: event lines (here a host that cannot be reached) on stderr; the tables,
    the PLAY RECAP and where the results are on stdout. No server is started."""
    inventory = tmp_path / "inv.yml"
    inventory.write_text(json.dumps({"hosts": {"gone": {"host": "127.0.0.1", "port": free_port(),
                                                        "connect_timeout": 3}}}))  # JSON is YAML
    proc = subprocess.run([sys.executable, "-m", "llmops", "apply", "tests/playbooks/llama.yml", "-i", str(inventory),
                           "--run-dir", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "unreachable: [gone]" in proc.stderr and "RUN " in proc.stderr
    assert "unreachable: [gone]" not in proc.stdout and "RUN " not in proc.stdout
    assert "PLAY RECAP" in proc.stdout and "unreachable=1" in proc.stdout and "COMPARISON" in proc.stdout
    assert "results: " in proc.stdout and "PLAY RECAP" not in proc.stderr


def test_console_data_lines_go_to_the_data_stream_and_clear_the_live_line() -> None:
    events, data, progress = io.StringIO(), io.StringIO(), io.StringIO()
    console = Console(stream=events, data=data, progress=progress, color=False)
    console.live = True
    console.status("h", "building 10%")
    console.banner("PLAY RECAP", data=True)
    console.event("h", "ok", "started")
    assert "PLAY RECAP" in data.getvalue() and "PLAY RECAP" not in events.getvalue()
    assert "ok: [h] started" in events.getvalue() and "started" not in data.getvalue()
    assert progress.getvalue().endswith("\r\033[K")  # the live line was cleared before the data line
    assert Console(stream=events).data is events  # one stream unless told otherwise
