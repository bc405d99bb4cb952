"""Shell words: quoting that keeps secrets masked and leaves `~/` for the host to expand.

The lowest layer: templates, provisioning scripts and the executor all build command lines
with `shell_word`, so there is one quoting rule in the whole program.
"""

from __future__ import annotations

import shlex
from typing import Any

MASK = "***"


class Secret(str):
    """A value that must never be shown: masked in displayed commands, logs and results."""

    def __repr__(self) -> str:  # keeps secrets out of tracebacks and debug prints
        return "Secret('***')"


class HostPath(str):
    """A path on the target host; `~/` at its start is left for the host's shell to expand."""


def shell_word(value: Any, *, reveal: bool) -> str:
    if isinstance(value, Secret):
        return shlex.quote(str(value)) if reveal else MASK
    if isinstance(value, HostPath) and value.startswith("~/"):
        rest = value[2:]
        return "~/" + shlex.quote(rest) if rest else "~/"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return shlex.quote(str(value))
