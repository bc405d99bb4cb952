"""HostSession: everything that talks to one host, opened and closed in one place.

Connect through the one transport chooser (llmops.execute.transport.connect), copy and start
the host agent, gather facts, keep leases fresh. `apply`, `apply --diff`, `llmops facts` and
`llmops model tiny` all go through it, so a host is reached the same way by every command and
always let go of: leaving the `with` block closes the agent and then the transport, on
success, on error and on Ctrl-C alike.

    with HostSession(host, cache_dir) as session:
        facts = session.facts()

The executor opens it step by step instead (connect(), then start_agent()) because it reports
each step, and calls close() itself in its own finally.
"""

from __future__ import annotations

from typing import Any

from llmops.execute import transport
from llmops.execute.agent import Agent
from llmops.execute.facts import gather as gather_facts
from llmops.execute.leases import Leases
from llmops.execute.transport.base import Runner, Trace
from llmops.load.inventory import Host
from llmops.plan.model import DEFAULT_CACHE


def cache_dir_of(host: Host) -> str:
    """Where the agent and builds live on a host when no plan says so (llmops_cache)."""
    return str(host.vars.get("llmops_cache", DEFAULT_CACHE))


class HostSession:
    def __init__(self, host: Host, cache_dir: str | None = None, *, trace: Trace | None = None,
                 leases: Leases | None = None) -> None:
        self.host = host
        self.cache_dir = cache_dir or cache_dir_of(host)
        self.trace = trace
        self.leases = leases  # shared by the run: one heartbeat thread for every host
        self.runner: Runner | None = None
        self.agent: Agent | None = None

    @property
    def name(self) -> str:
        return self.host.name

    def connect(self) -> Runner:
        """Open the transport (raises ConnectError). `runner.kind` says which one was chosen."""
        self.runner = transport.connect(self.host)
        if self.trace is not None:
            self.runner.trace = self.trace
        return self.runner

    def start_agent(self) -> Agent:
        """Copy the host agent (when its hash changed) and check it runs."""
        assert self.runner is not None, "connect() first"
        self.agent = Agent(self.runner, self.cache_dir, self.host.python)
        self.agent.install()
        return self.agent

    def facts(self) -> dict[str, Any]:
        assert self.agent is not None, "start_agent() first"
        return gather_facts(self.agent)

    def hold_lease(self, path: str, timeout: float) -> None:
        """Vouch for a server on this host until release_lease(path): the host stops it when we stop."""
        assert self.leases is not None and self.runner is not None and self.agent is not None
        self.leases.hold(self.runner, self.agent, path, timeout)

    def release_lease(self, path: str) -> None:
        if self.leases is not None:
            self.leases.release(path)

    def close(self) -> None:
        """Agent first (its streams ride on the transport), then the transport. Safe to call twice."""
        try:
            if self.agent is not None:
                self.agent.close()
        finally:
            self.agent = None
            if self.runner is not None:
                self.runner.close()
            self.runner = None

    def __enter__(self) -> HostSession:
        try:
            self.connect()
            self.start_agent()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
