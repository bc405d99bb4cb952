"""Progress lines while hosts work in parallel: one line per event, prefixed with the host.

Ansible-like wording (ok / changed / failed / unreachable) so that people who read Ansible
output know where to look. Thread-safe; verbosity 1 adds commands, 2 adds their output.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_COLORS = {"ok": "32", "changed": "33", "failed": "31", "unreachable": "31", "skipped": "36", "warn": "35"}


class Console:
    def __init__(self, stream: TextIO | None = None, verbosity: int = 0, color: bool | None = None):
        self.stream = stream or sys.stdout
        self.verbosity = verbosity
        self.color = self.stream.isatty() if color is None else color
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def _paint(self, word: str, status: str) -> str:
        code = _COLORS.get(status)
        return f"\033[{code}m{word}\033[0m" if self.color and code else word

    def line(self, text: str = "") -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def banner(self, title: str) -> None:
        self.line("")
        self.line(f"{title} " + "*" * max(3, 78 - len(title)))

    def event(self, host: str, status: str, text: str) -> None:
        stamp = f"{time.monotonic() - self.t0:7.1f}s"
        self.line(f"{stamp} {self._paint(status + ':', status)} [{host}] {text}")

    def verbose(self, level: int, host: str, text: str) -> None:
        if self.verbosity >= level:
            self.line(f"         [{host}] {text}")

    def block(self, text: str) -> None:
        self.line(text)
