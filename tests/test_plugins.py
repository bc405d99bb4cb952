"""Plugins come from entry points: built-ins the same way as a third-party package."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import free_port, llmops, processes_matching, read_results

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "plugins" / "llmops-tinyllama"
WHEELS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmops" / "test-wheels"


def pip_install(source: Path, site: Path) -> None:
    """`pip install --target SITE` of the plugin SOURCE, from a wheel kept per content hash: pip's
    isolated build (a fresh setuptools in a temporary venv) costs about 4 s of CPU, the install
    itself under one. A changed file makes a new wheel."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    kept = WHEELS / f"{source.name}-{digest.hexdigest()[:16]}"
    if not any(kept.glob("*.whl")):
        build = site.parent / f"build-{source.name}"
        shutil.copytree(source, build)  # pip builds in the source folder: keep the checkout clean
        partial = kept.with_name(f"{kept.name}.{os.getpid()}")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(partial), str(build)],
                       check=True, timeout=300)
        try:
            partial.rename(kept)
        except OSError:  # another run kept the same wheel meanwhile
            shutil.rmtree(partial)
    wheel = next(kept.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, timeout=300)


def test_builtins_are_entry_points() -> None:
    proc = llmops("plugins", "--json", check=True)
    entries = json.loads(proc.stdout)
    llama = [e for e in entries if e["group"] == "llmops.backends" and e["name"] == "llama.cpp"]
    assert llama and llama[0]["distribution"] == "llmops" and llama[0]["error"] is None


def test_external_plugin_installed_with_pip_is_used(provisioned: None, tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip_install(PLUGIN, site)
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


EXTRAS = HERE / "plugins" / "llmops-extras"
RUNS = HERE / "data" / "runs"


def test_builtin_reporters_are_entry_points() -> None:
    entries = json.loads(llmops("plugins", "--json", check=True).stdout)
    names = {e["name"] for e in entries if e["group"] == "llmops.reporters" and e["distribution"] == "llmops"}
    assert names == {"md", "html", "json", "csv", "requests-csv"}


def test_external_reporter_and_collector_are_used(tmp_path: Path) -> None:
    """A reporter installed with pip is a `report --format`; a collector is chosen by its `requires`."""
    site = tmp_path / "site"
    pip_install(EXTRAS, site)
    env = {"PYTHONPATH": str(site)}
    listed = llmops("plugins", env=env, check=True).stdout
    assert "tokens" in listed and "fakegpu" in listed and "llmops-extras" in listed

    out = llmops("report", "--format", "tokens", str(RUNS / "llama-only"), env=env, check=True).stdout
    first = json.loads((RUNS / "llama-only" / "results.json").read_text())["cells"][0]
    assert out.splitlines()[0].startswith(f"{first['name']}: c{first['levels'][0]['concurrency']}=")
    # The plugin reads through read_run: a broken results.json is the same located refusal.
    broken = llmops("report", "--format", "tokens", str(HERE / "bad_inputs" / "runs" / "gen_tps_string"), env=env)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert 'results.json:17:22: cells[0].levels[1].gen_tps: expected a number (got "fast")' in broken.stderr
    # Without the plugin the format is refused before anything is read, naming what is installed.
    bad = llmops("report", "--format", "tokens", str(RUNS / "llama-only"))
    assert bad.returncode == 2 and "installed: csv, html, json, md, requests-csv" in bad.stderr

    probe = ("import json; from llmops.plugins.registry import registry; "
             "from llmops.telemetry.select import choose, required_programs; "
             "a = registry().collectors(); "
             "print(json.dumps([required_programs(a), "
             "[c.name for c in choose({'tools': {'fakegpu-smi': '/usr/bin/fakegpu-smi'}}, a)], "
             "[c.name for c in choose({'tools': {'fakegpu-smi': None}}, a)]]))")
    proc = subprocess.run([sys.executable, "-c", probe], env={**__import__("os").environ, **env},
                          capture_output=True, text=True, check=True, timeout=120)
    programs, with_tool, without_tool = json.loads(proc.stdout)
    assert "fakegpu-smi" in programs  # facts look it up on every host
    assert with_tool == ["fakegpu", "sysfs-power"] and without_tool == ["sysfs-power"]  # power: RAPL/hwmon
