"""Kept so that `from llmops.execute.openssh import ...` goes on working: the OpenSSH transport now
lives in llmops.execute.transport.openssh."""

from __future__ import annotations

from llmops.execute.transport.openssh import (
                                              ADVANCED,
                                              OpenSshRunner,
                                              config_file,
                                              config_needs_openssh,
                                              forward,
                                              ssh_options,
                                              wanted,
)

__all__ = ["ADVANCED", "OpenSshRunner", "config_file", "config_needs_openssh", "forward", "ssh_options", "wanted"]
