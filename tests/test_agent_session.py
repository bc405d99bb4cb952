"""The agent's session (`hostagent serve`): one process per host answers every call.

Checked on this machine and over a real sshd: a call through the session gives what the same
command run on its own gives; the session is really one process; the servers it starts are
not its descendants (ending the SSH session's process tree must not end them); a call that
times out costs only that session; a host where the agent cannot run still gives the
one-shot error; and closing the agent ends its process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml_helpers

from llmops.errors import ExecutionError
from llmops.execute.agent import Agent, parse_json_line
from llmops.execute.runner import connect
from llmops.load.inventory import default_inventory
from llmops.load.sources import load_inventory


@pytest.fixture(params=["local", "ssh"])
def agent(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        host = default_inventory().hosts["localhost"]
    else:
        sshd = request.getfixturevalue("sshd")
        inventory = yaml_helpers.dump({"hosts": {"sshhost": sshd.inventory_entry()}}, tmp_path / "inv.yml")
        host = load_inventory(inventory).hosts["sshhost"]
    runner = connect(host)
    agent = Agent(runner, str(tmp_path / "cache"), host.python)
    agent.install()
    yield agent
    agent.close()
    runner.close()


def _gone(agent: Agent, pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        probe = agent.runner.run(f"test -e /proc/{pid} && echo there || echo gone", timeout=30)
        if probe.stdout.strip() == "gone":
            return True
        time.sleep(0.1)
    return False


def test_one_process_answers_every_call(agent: Agent) -> None:
    first, second = agent.call("info"), agent.call("info")
    assert first["pid"] == second["pid"]
    alone = parse_json_line(agent.runner.run(agent.command("info"), timeout=60).stdout)
    assert alone is not None and alone["pid"] != first["pid"]


@pytest.mark.parametrize("args", [
    ("alive", "1"),
    ("port", "1"),
    ("tool", "--timeout", "5", "echo out; echo err >&2; exit 3"),
    ("stop", "999999999", "--timeout", "1"),
    ("no-such-command",),
    ("procs", "not-a-pid"),
])
def test_session_gives_what_the_command_alone_gives(agent: Agent, args: tuple[str, ...]) -> None:
    served = agent.run(*args)
    alone = agent.runner.run(agent.command(*args), timeout=60)
    assert served.exit_code == alone.exit_code
    doc_served, doc_alone = parse_json_line(served.stdout), parse_json_line(alone.stdout)
    if doc_alone is None:
        assert doc_served is None
        assert "usage:" in served.stderr and "usage:" in alone.stderr
        return
    for volatile in ("time", "t", "dur"):
        doc_served.pop(volatile, None)
        doc_alone.pop(volatile, None)
    assert doc_served == doc_alone


def test_stdin_reaches_the_command(agent: Agent) -> None:
    items = [{"key": "a", "command": "echo one"}, {"key": "b", "command": "printf two"}]
    doc = agent.call("tools", stdin=json.dumps(items))
    assert (doc["a"]["out"], doc["b"]["out"]) == ("one\n", "two")


def test_servers_are_not_children_of_the_session(agent: Agent, tmp_path: Path) -> None:
    """The session lives as long as the SSH session; whatever ends that session's process tree
    (sshd killed, a dropped connection cleaned up) must not reach a server, which has its own
    rules for ending (stop, or its lease). And it must not linger as the session's zombie."""
    session_pid = agent.call("info")["pid"]
    log = "~/.cache/llmops-test-session.log" if not agent.runner.host.is_local else str(tmp_path / "s.log")
    doc = agent.call("start", "--no-stamp", "--log", log, "--command", "sleep 1")
    pid = int(doc["pid"])
    procs = agent.call("procs", str(pid))["procs"]
    assert procs and procs[0]["pid"] == pid and procs[0]["ppid"] != session_pid
    assert agent.alive(pid)
    deadline = time.monotonic() + 10
    while agent.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not agent.alive(pid)


def test_a_timed_out_call_costs_only_its_session(agent: Agent) -> None:
    before = agent.call("info")["pid"]
    result = agent.run("tool", "--timeout", "20", "sleep 3", timeout=0.5)
    assert result.timed_out
    after = agent.call("info")["pid"]
    assert after != before
    assert _gone(agent, before, within=10.0), "the busy session should end once its command finishes"


def test_closing_ends_the_session(agent: Agent) -> None:
    pid = agent.call("info")["pid"]
    agent.close()
    assert _gone(agent, pid)
    assert agent.call("alive", "1")["alive"] is True  # still usable: calls now run on their own


def test_host_without_a_working_python_gets_the_plain_error(tmp_path: Path) -> None:
    host = default_inventory().hosts["localhost"]
    runner = connect(host)
    agent = Agent(runner, str(tmp_path / "cache"), "/nonexistent/python3")
    with pytest.raises(ExecutionError, match=r"agent info failed \(exit 127\)"):
        agent.install()
    agent.close()
