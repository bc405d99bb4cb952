"""Several hosts at once, for real: network namespaces with their own sshd, servers bound to
127.0.0.1 inside each (reached only through llmops' SSH port forward), one host down."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import netns
import pytest
import sshd as sshd_mod
import yaml_helpers
from conftest import free_port, llmops, processes_matching, read_results

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root, iproute2 and sshd (make test installs them)")


@pytest.fixture
def lab(tmp_path: Path):
    lab = netns.Lab(tmp_path, run=f"{os.getpid() % 100:02d}")
    key = tmp_path / "client_key"
    sshd_mod.keygen(key)
    try:
        for i in (1, 2, 3):
            lab.add(i, client_key=key)
        lab.add(4, with_sshd=False)  # down: its address exists, nothing answers
        yield lab
    finally:
        lab.close()
    assert [n for n in netns.existing_namespaces() if n.startswith(f"{netns.PREFIX}{lab.run}")] == []


def test_three_hosts_in_parallel_with_one_down(provisioned: None, lab: netns.Lab, tmp_path: Path) -> None:
    port = free_port()
    inventory = yaml_helpers.dump(lab.inventory(), tmp_path / "inventory.yml")
    run_dir = tmp_path / "run"
    proc = llmops("apply", "tests/playbooks/llama.yml", "-i", str(inventory), "--run-dir", str(run_dir),
                  "-e", f"port={port}", "--json", timeout=1200)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # Ansible's code for unreachable hosts
    recap = json.loads(proc.stdout[proc.stdout.index('{\n  "recap"'):].split("\n\nresults:")[0])["recap"]
    for name in ("lab1", "lab2", "lab3"):
        assert recap[name]["ok"] == 2 and recap[name]["failed"] == 0 and recap[name]["unreachable"] == 0, recap
    assert recap["lab4"]["unreachable"] == 1

    cells = read_results(run_dir)["cells"]
    by_host: dict[str, list[dict]] = {}
    for cell in cells:
        by_host.setdefault(cell["host"], []).append(cell)
    for name in ("lab1", "lab2", "lab3"):
        assert [c["status"] for c in by_host[name]] == ["ok", "ok"]
        assert all(c["levels"][-1]["success_rate"] == 1.0 for c in by_host[name])
        # artifacts came home under the host's name
        assert (run_dir / "facts" / f"{name}.json").is_file()
        for c in by_host[name]:
            d = run_dir / "cells" / name / c["name"]
            assert (d / "server.log").is_file() and (d / "requests.jsonl").is_file() and (d / "memory.jsonl").is_file()
            assert "127.0.0.1" in c["command"]  # bound to the namespace's own loopback
    assert all(c["status"] == "failed" and "unreachable" in c["error"] for c in by_host["lab4"])

    # Hosts ran at the same time; variants on one host one after another.
    spans = {n: (by_host[n][0]["started_at"], by_host[n][-1]["finished_at"]) for n in ("lab1", "lab2", "lab3")}
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), spans
    for n in ("lab1", "lab2", "lab3"):
        first, second = by_host[n]
        assert first["finished_at"] <= second["started_at"]
    assert processes_matching(f"--port {port}") == []


def test_server_in_namespace_is_not_on_our_loopback(provisioned: None, lab: netns.Lab, tmp_path: Path) -> None:
    """The forward is what makes it reachable: inside lab1, the port is bound; here it is not."""
    port = free_port()
    host = lab.hosts[0]
    binary = sorted(Path("~/.cache/llmops/llama.cpp").expanduser().glob("*/bin/llama-server"))[0]
    model = sorted(Path("~/.cache/llmops/models").expanduser().glob("tiny-*/tiny.gguf"))[0]
    server = subprocess.Popen(["ip", "netns", "exec", host.netns, str(binary), "-m", str(model), "--host", "127.0.0.1",
                               "--port", str(port), "-c", "512"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        import urllib.request

        deadline = time.time() + 30
        inside = ""
        while time.time() < deadline and "200" not in inside:
            inside = subprocess.run(["ip", "netns", "exec", host.netns, "python3", "-c",
                                     f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/health').status)"],
                                    capture_output=True, text=True).stdout
            time.sleep(0.2)
        assert "200" in inside
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        server.kill()
        server.wait()
