"""Idempotence the Ansible way: a server left running with the same command is reused (ok), a
changed command replaces it (changed), --diff says which before anything happens."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from conftest import free_port, llmops, processes_matching, read_results

PLAYBOOK = "tests/playbooks/faults.yml"


def server_pids(port: int) -> list[int]:
    found = []
    for line in processes_matching(f"--port {port}"):
        pid, _, cmd = line.partition(": ")
        if cmd.split()[0].endswith("llama-server"):  # the server itself, not its log keeper
            found.append(int(pid))
    return found


def recap(stdout: str) -> dict:
    """With --json, stdout is one JSON document (progress goes to stderr)."""
    return json.loads(stdout)["recap"]["localhost"]


def test_keep_reuse_replace_and_diff(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    base = ["-t", "llama-np1", "--json", "-e", json.dumps({"port": port, "levels": [1], "max_tokens": 8})]
    try:
        first = llmops("apply", PLAYBOOK, *base, "--run-dir", str(tmp_path / "r1"), "--keep-running")
        assert first.returncode == 0, first.stdout + first.stderr
        assert recap(first.stdout)["changed"] == 1  # a server now runs that did not before
        [pid] = server_pids(port)
        assert read_results(tmp_path / "r1")["cells"][0]["left_running"] is True

        plan = llmops("apply", PLAYBOOK, *base, "--check", "--diff")
        assert f"already running with the same command (pid {pid})" in plan.stdout

        second = llmops("apply", PLAYBOOK, *base, "--run-dir", str(tmp_path / "r2"))
        assert second.returncode == 0, second.stdout
        assert "reusing the server already running" in second.stderr
        assert recap(second.stdout)["ok"] == 1
        assert recap(second.stdout)["changed"] == 0
        cell = read_results(tmp_path / "r2")["cells"][0]
        assert cell["server"] == "reused" and cell["startup"]["reused"] is True and cell["status"] == "ok"
        assert server_pids(port) == [pid]  # found running, left running, measured as it is

        changed = ["-t", "llama-np1", "--json", "-e", json.dumps({"port": port, "levels": [1], "max_tokens": 8,
                                                                    "alias": "other-name"})]
        plan = llmops("apply", PLAYBOOK, *changed, "--check", "--diff")
        assert f"replaces pid {pid}" in plan.stdout and "--alias other-name" in plan.stdout
        third = llmops("apply", PLAYBOOK, *changed, "--run-dir", str(tmp_path / "r3"), "--keep-running")
        assert third.returncode == 0, third.stdout
        assert "its command differs" in third.stderr and recap(third.stdout)["changed"] == 1
        [new_pid] = server_pids(port)
        assert new_pid != pid

        last = llmops("apply", PLAYBOOK, *changed, "--run-dir", str(tmp_path / "r4"), "--restart")
        assert last.returncode == 0, last.stdout
        assert "--restart" in last.stderr
        assert server_pids(port) == []  # replaced, measured, stopped: nothing kept this time
    finally:
        for pid in server_pids(port):
            os.kill(pid, signal.SIGKILL)
