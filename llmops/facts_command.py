"""`llmops facts`: gather facts from every selected host in parallel and show them."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import click

from llmops.errors import ConnectError, ExecutionError
from llmops.execute.session import HostSession
from llmops.load.inventory import Host
from llmops.load.sources import load_inventory


def _one(host: Host) -> dict[str, Any]:
    with HostSession(host) as session:  # the agent lives in the host's llmops_cache
        return session.facts()


def run_facts(inventory: Any, limit: str | None, *, as_json: bool, forks: int, vault: Any = None) -> int:
    inv = load_inventory(inventory, vault)
    hosts = inv.select(limit or "all")
    results: dict[str, Any] = {}
    failed = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts) or 1))) as pool:
        futures = {pool.submit(_one, h): h for h in hosts}
        for fut in concurrent.futures.as_completed(futures):
            host = futures[fut]
            try:
                results[host.name] = fut.result()
            except (ConnectError, ExecutionError) as exc:
                results[host.name] = {"unreachable": True, "error": str(exc)}
                failed = True
    ordered = {h.name: results[h.name] for h in hosts}
    if as_json:
        click.echo(json.dumps(ordered, indent=2, default=str))
    else:
        for name, f in ordered.items():
            click.echo(describe(name, f))
    return 4 if failed else 0


def _gib(n: Any) -> str:
    return "-" if not n else f"{n / 1024 ** 3:.1f} GiB"


def describe(name: str, f: dict[str, Any]) -> str:
    if f.get("unreachable"):
        return f"{name}: UNREACHABLE: {f.get('error')}\n"
    lines = [f"{name}:"]
    os_ = f.get("os") or {}
    kernel = f.get("kernel") or {}
    lines.append(f"  os       {os_.get('name')}   kernel {kernel.get('release')}")
    if kernel.get("gpu_params"):
        lines.append("  kernel   " + " ".join(f"{k}={v}" for k, v in kernel["gpu_params"].items()))
    cpu = f.get("cpu") or {}
    mem = f.get("memory") or {}
    lines.append(f"  cpu      {cpu.get('model')} x{cpu.get('count')}   ram {_gib(mem.get('total_bytes'))}")
    for g in f.get("gpus") or []:
        lines.append(f"  gpu      {g.get('vendor')} {g.get('model')}   vram {_gib(g.get('vram_total_bytes'))}"
                     f"   gtt {_gib(g.get('gtt_total_bytes'))}   ({g.get('source')})")
    if not f.get("gpus"):
        lines.append("  gpu      none found")
    versions = f.get("versions") or {}
    if versions:
        lines.append("  versions " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    tools = f.get("gpu_tools") or {}
    lines.append("  tools    " + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in tools.items()))
    return "\n".join(lines) + "\n"
