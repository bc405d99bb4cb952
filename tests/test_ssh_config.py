"""~/.ssh/config is honoured, Include and ProxyJump included (which Fabric does not follow): a
host reachable only through a jump host, configured only in an included file, runs for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import netns
import pytest
import sshd as sshd_mod
import yaml_helpers
from conftest import free_port, llmops, processes_matching, read_results

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root, iproute2 and sshd (make test installs them)")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def hidden_host(tmp_path: Path):
    """`jump` (reachable from here) and `target`, reachable only from inside `jump`."""
    lab = netns.Lab(tmp_path, run=f"j{os.getpid() % 10}")
    key = tmp_path / "client_key"
    sshd_mod.keygen(key)
    target_ns = f"{netns.PREFIX}{lab.run}t"
    try:
        jump = lab.add(1, client_key=key)
        ip("netns", "add", target_ns)
        ip("link", "add", f"{target_ns}a", "type", "veth", "peer", "name", f"{target_ns}b")
        ip("link", "set", f"{target_ns}a", "netns", jump.netns)
        ip("link", "set", f"{target_ns}b", "netns", target_ns)
        ip("netns", "exec", jump.netns, "ip", "addr", "add", "10.232.9.1/30", "dev", f"{target_ns}a")
        ip("netns", "exec", jump.netns, "ip", "link", "set", f"{target_ns}a", "up")
        ip("netns", "exec", target_ns, "ip", "addr", "add", "10.232.9.2/30", "dev", f"{target_ns}b")
        ip("netns", "exec", target_ns, "ip", "link", "set", f"{target_ns}b", "up")
        ip("netns", "exec", target_ns, "ip", "link", "set", "lo", "up")
        target = sshd_mod.start(tmp_path / "target", address="10.232.9.2", port=22, netns=target_ns, client_key=key)
        yield jump, target, key
        target.stop()
    finally:
        lab.close()
        subprocess.run(["ip", "netns", "del", target_ns], capture_output=True)


def test_include_and_proxyjump(provisioned: None, hidden_host, tmp_path: Path) -> None:
    jump, target, key = hidden_host
    # Not reachable directly: only through the jump host.
    assert subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-o", "StrictHostKeyChecking=no",
                           "-i", str(key), "root@10.232.9.2", "true"], capture_output=True).returncode != 0
    conf_d = tmp_path / "ssh" / "conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "lab.conf").write_text(
        f"Host jump\n  HostName {jump.address}\n  User root\n  IdentityFile {key}\n"
        f"  UserKnownHostsFile {jump.sshd.known_hosts}\n  StrictHostKeyChecking yes\n\n"
        f"Host target\n  HostName 10.232.9.2\n  User root\n  IdentityFile {key}\n  ProxyJump jump\n"
        f"  UserKnownHostsFile {target.known_hosts}\n  StrictHostKeyChecking yes\n")
    config = tmp_path / "ssh" / "config"
    config.write_text(f"Include {conf_d}/*.conf\n")
    inventory = yaml_helpers.dump({"hosts": {"target": {"host": "target", "vars": {"llmops_ssh_config": str(config)}}}},
                                  tmp_path / "inv.yml")
    port = free_port()
    run_dir = tmp_path / "run"
    proc = llmops("apply", "tests/playbooks/llama.yml", "-i", str(inventory), "--run-dir", str(run_dir),
                  "-t", "llama.cpp-np1", "-e", f"port={port}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "using the system ssh client" in proc.stderr
    cell = read_results(run_dir)["cells"][0]
    assert cell["status"] == "ok" and cell["levels"][-1]["success_rate"] == 1.0
    assert processes_matching(f"--port {port}") == []
