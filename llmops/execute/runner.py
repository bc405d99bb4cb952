"""Kept so that `from llmops.execute.runner import ...` goes on working: the runners now live in
the llmops.execute.transport package (local, Fabric, OpenSSH) with its one chooser, connect()."""

from __future__ import annotations

from llmops.execute.transport import connect
from llmops.execute.transport.base import (
                                           CommandResult,
                                           LineStream,
                                           Runner,
                                           Trace,
                                           _Lines,
                                           _PipeStream,
                                           _traced,
                                           free_local_port,
                                           pid_alive,
)
from llmops.execute.transport.fabric import SshRunner, _ChannelStream
from llmops.execute.transport.local import LocalRunner

__all__ = ["CommandResult", "LineStream", "LocalRunner", "Runner", "SshRunner", "Trace", "_ChannelStream", "_Lines",
           "_PipeStream", "_traced", "connect", "free_local_port", "pid_alive"]
