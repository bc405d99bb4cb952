"""`llmops model tiny DIR`: the tiny model pair, made on this machine with the provisioning steps."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from llmops.execute.provision import provision
from llmops.execute.session import HostSession
from llmops.load.inventory import default_inventory
from llmops.plan.model import DEFAULT_CACHE
from llmops.provision.steps import tiny_model


def make_tiny(directory: Path, seed: int) -> int:
    host = default_inventory().hosts["localhost"]
    with HostSession(host, DEFAULT_CACHE) as session:
        steps, gguf, hf = tiny_model(DEFAULT_CACHE, host.python, seed=seed, out=str(directory))
        cancel = threading.Event()
        for step in steps:
            outcome = provision(session.runner, session.agent, step, cancel,
                                on_start=lambda s: click.echo(f"running: {s.name} (log: {s.log})"))
            if outcome["status"] == "failed":
                click.echo(f"failed: {step.name}: {outcome['error']}\n{outcome.get('log_tail', '')}", err=True)
                return 1
            click.echo(f"{outcome['status']}: {step.name} ({outcome['seconds']:.1f} s)")
    click.echo(f"hf:   {hf}\ngguf: {gguf}")
    return 0
