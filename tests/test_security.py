"""Hostile values stay literal on a real host (locally and through SSH), and secrets never reach
logs, the run directory, reports or -vvv output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml_helpers
from conftest import ROOT, free_port, llmops, processes_matching, read_results

PLAYBOOK = "tests/playbooks/faults.yml"


def hostile(tmp_path: Path) -> dict[str, object]:
    pwned = tmp_path / "pwned"
    alias = f"x; touch {pwned}1 $(touch {pwned}2) `touch {pwned}3` && echo 'quoted' \"double\" \\ | cat > {pwned}4\nnext"
    env = {"LLMOPS_HOSTILE": f"$(touch {pwned}5); `touch {pwned}6`; rm -rf ~/nothing-here *"}
    return {"alias": alias, "server_env": env, "pwned": str(pwned)}


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_shell_metacharacters_stay_literal(provisioned: None, sshd, tmp_path: Path, where: str) -> None:
    values = hostile(tmp_path)
    port = free_port()
    extra = {"port": port, "alias": values["alias"], "server_env": values["server_env"], "levels": [1],
             "max_tokens": 8}
    args = ["apply", PLAYBOOK, "-t", "llama-np1", "--run-dir", str(tmp_path / "run"), "-e", json.dumps(extra)]
    if where == "ssh":
        inventory = yaml_helpers.dump({"hosts": {"sshhost": sshd.inventory_entry()}}, tmp_path / "inv.yml")
        args += ["-i", str(inventory)]
    proc = subprocess.Popen([sys.executable, "-m", "llmops", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    argv: list[str] = []
    deadline = time.time() + 180
    while not argv and time.time() < deadline and proc.poll() is None:
        for line in processes_matching(f"--port {port}"):
            pid = line.split(":")[0]
            try:
                words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue
            if words and words[0].endswith(b"llama-server"):
                argv = [w.decode() for w in words]
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    # The server process itself received each hostile value as one literal argument.
    assert "--alias" in argv, (argv, out[-3000:])
    assert argv[argv.index("--alias") + 1] == values["alias"], argv
    cell = read_results(tmp_path / "run")["cells"][0]
    assert cell["status"] == "ok" and cell["levels"][0]["success_rate"] == 1.0
    for i in range(1, 7):
        assert not Path(f"{values['pwned']}{i}").exists(), f"value {i} was executed"
    assert processes_matching(f"--port {port}") == []


def test_secrets_never_leak(provisioned: None, tmp_path: Path) -> None:
    api_key = "sk-llmops-test-4f8a9c2e1b7d"
    hf_token = "hf_llmopsTestTokenQ9w8e7r6"
    port = free_port()
    run_dir = tmp_path / "run"
    extra = {"port": port, "api_key": api_key, "server_env": {"HF_TOKEN": hf_token}, "levels": [1, 2],
             "max_tokens": 8}
    proc = llmops("apply", PLAYBOOK, "-t", "llama-np1", "--run-dir", str(run_dir), "-e", json.dumps(extra), "-vvv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cell = read_results(run_dir)["cells"][0]
    assert cell["levels"][-1]["success_rate"] == 1.0  # the key was really used: the server requires it
    assert cell["env"]["HF_TOKEN"] == "***" and cell["env"]["LLAMA_API_KEY"] == "***"
    for secret in (api_key, hf_token):
        assert secret not in proc.stdout and secret not in proc.stderr
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"{secret} leaked into {path}"
    # The server really enforces the key: without it, requests are refused.
    assert "LLAMA_API_KEY" in (run_dir / "cells" / "localhost" / "llama-np1" / "command.txt").read_text()
    assert processes_matching(f"--port {port}") == []


def test_key_is_enforced_by_the_server(provisioned: None, tmp_path: Path) -> None:
    """Guards the test above: a client without the key is refused (401), so the key was really used."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmops", "apply", PLAYBOOK, "-t", "llama-np1", "--run-dir",
                             str(tmp_path / "run"), "-e", json.dumps({"port": port, "api_key": "sk-abc123",
                                                                      "levels": [1], "max_tokens": 4000})],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        status = None
        while time.time() < deadline and status in (None, 503):  # 503: still loading
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                             data=b'{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}',
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                pass
            time.sleep(0.05)
        assert status == 401
    finally:
        proc.terminate()
        proc.wait(timeout=60)
