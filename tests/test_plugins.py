"""Plugins come from entry points: built-ins the same way as a third-party package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import free_port, llmops, processes_matching, read_results

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "plugins" / "llmops-tinyllama"


def test_builtins_are_entry_points() -> None:
    proc = llmops("plugins", "--json", check=True)
    entries = json.loads(proc.stdout)
    llama = [e for e in entries if e["group"] == "llmops.backends" and e["name"] == "llama.cpp"]
    assert llama and llama[0]["distribution"] == "llmops" and llama[0]["error"] is None


def test_external_plugin_installed_with_pip_is_used(provisioned: None, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(PLUGIN)], check=True, timeout=300)
    env = {"PYTHONPATH": str(site)}
    listed = llmops("plugins", env=env, check=True).stdout
    assert "tinyllama" in listed and "llmops-tinyllama" in listed

    port = free_port()
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  models: {tiny: {generate: tiny}}\n"
        "  backends:\n"
        "    - name: plug\n"
        "      kind: tinyllama\n"
        "      model: tiny\n"
        f"      port: {port}\n"
        "      ctx_size: 2048\n"
        "      install: {version: '11434.0.0', cmake_flags: []}\n"
        "  benchmark: {concurrency: [2], max_tokens: 16}\n"
    )
    run_dir = tmp_path / "run"
    proc = llmops("apply", str(playbook), "--run-dir", str(run_dir), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cell = read_results(run_dir)["cells"][0]
    assert cell["backend"] == "tinyllama" and cell["status"] == "ok"
    assert "--threads 1" in cell["command"]
    assert cell["levels"][0]["success_rate"] == 1.0
    assert processes_matching(f"--port {port}") == []

    # Without the plugin on the path, the same playbook is a located error naming the kinds installed.
    bad = llmops("check", str(playbook))
    assert bad.returncode == 2
    assert "pb.yml:5:13: unknown backend kind 'tinyllama'" in bad.stderr
