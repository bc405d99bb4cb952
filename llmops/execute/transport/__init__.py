"""How llmops reaches a host: one Runner contract (transport/base.py), three transports.

    local.py    this machine, /bin/sh
    fabric.py   SSH through Fabric (paramiko), host keys checked
    openssh.py  SSH through the system's ssh client, for configs Fabric cannot follow

`connect(host)` is the one chooser. Each runner says which it is in `kind`, so callers never
test class names.
"""

from __future__ import annotations

from llmops.errors import ConnectError
from llmops.execute.transport import openssh
from llmops.execute.transport.base import CommandResult, LineStream, Runner, Trace, free_local_port, pid_alive
from llmops.execute.transport.fabric import SshRunner
from llmops.execute.transport.local import LocalRunner
from llmops.load.inventory import Host

__all__ = ["CommandResult", "LineStream", "LocalRunner", "Runner", "SshRunner", "Trace", "connect",
           "free_local_port", "pid_alive"]


def connect(host: Host) -> Runner:
    if host.is_local:
        return LocalRunner(host)
    if host.connection not in ("ssh", "paramiko", "smart"):
        raise ConnectError(f"{host.name}: connection {host.connection!r} is not supported (local or ssh)")
    if openssh.wanted(host):
        return openssh.OpenSshRunner(host)
    return SshRunner(host)
