"""Test hosts as network namespaces on this machine, each with its own sshd (recipes.md).

Each namespace has its own loopback, so a server bound to 127.0.0.1 inside it is reachable only
through SSH port forwarding, as on a real lab machine. Addresses come from 10.231.0.0/16, used
only by namespaces this module made; everything is removed again by `Lab.close()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import sshd as sshd_mod

PREFIX = "llmt"  # namespace and veth names: llmt<run><i>, short enough for interface names


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None and sshd_mod.available()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class NsHost:
    name: str
    netns: str
    address: str
    sshd: sshd_mod.Sshd | None = None


@dataclass
class Lab:
    folder: Path
    hosts: list[NsHost] = field(default_factory=list)
    run: str = ""

    def add(self, index: int, *, with_sshd: bool = True, client_key: Path | None = None) -> NsHost:
        ns = f"{PREFIX}{self.run}{index}"
        host_if, ns_if = f"{ns}h", f"{ns}n"
        subnet = 200 + len(self.hosts)
        host_addr, ns_addr = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
        _ip("netns", "add", ns)
        try:
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            _ip("link", "set", ns_if, "netns", ns)
            _ip("addr", "add", f"{host_addr}/30", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_addr}/30", "dev", ns_if)
            _ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            self._remove(ns, host_if)
            raise
        host = NsHost(name=f"lab{index}", netns=ns, address=ns_addr)
        if with_sshd:
            host.sshd = sshd_mod.start(self.folder / ns, address=ns_addr, port=22, netns=ns, client_key=client_key)
        self.hosts.append(host)
        return host

    def inventory(self, **host_extra: object) -> dict:
        hosts = {}
        for h in self.hosts:
            if h.sshd is not None:
                entry = h.sshd.inventory_entry(**host_extra)
            else:  # a host that is down: the address exists, nothing listens
                entry = {"host": h.address, "port": 22, "user": "root", "connect_timeout": 3, **host_extra}
            hosts[h.name] = entry
        return {"hosts": hosts}

    def close(self) -> None:
        for h in self.hosts:
            if h.sshd is not None:
                h.sshd.stop()
            self._remove(h.netns, f"{h.netns}h")
        self.hosts.clear()

    @staticmethod
    def _remove(ns: str, host_if: str) -> None:
        # Processes still inside the namespace (a server we failed to stop) die with it.
        pids = _ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        _ip("link", "del", host_if, check=False)
        _ip("netns", "del", ns, check=False)


def existing_namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]
