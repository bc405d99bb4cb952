"""The one exception tree of llmops. The CLI is the only place that formats these for people."""

from __future__ import annotations

from dataclasses import dataclass


class LlmopsError(Exception):
    """An error whose message is meant for the user as it is (no traceback)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a user's file, pointing at a line and column (both 1-based)."""

    file: str
    line: int
    col: int
    message: str
    expected: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.message}"
        if self.expected:
            text += f" ({self.expected})"
        return text


class ConfigError(LlmopsError):
    """Invalid inventory, playbook or template: one or more located problems. Exit code 2."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExecutionError(LlmopsError):
    """Something failed while acting on a host (start, readiness, stop, provisioning)."""


class ConnectError(ExecutionError):
    """A host could not be reached or refused us (network, authentication, host key)."""


class ServerFailed(ExecutionError):
    """The server process exited, timed out or misbehaved; carries the tail of its log."""

    def __init__(self, message: str, log_tail: str = ""):
        self.log_tail = log_tail
        super().__init__(message)
