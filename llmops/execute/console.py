"""Progress lines while hosts work in parallel: one line per event, prefixed with the host.

Ansible-like wording (ok / changed / failed / unreachable) so that people who read Ansible
output know where to look. Thread-safe; verbosity 1 adds commands, 2 adds their output.

Long waits (a build, a benchmark level, a server starting) report through `status`: on a
terminal it is one live line on stderr, rewritten in place (cmake's percentage, requests done
and ETA, vLLM's startup phase); when stderr is not a terminal (CI logs, pipes) it becomes a
plain heartbeat line at most every HEARTBEAT_S per host, so a log shows the run is alive
without filling up. NO_COLOR (https://no-color.org) turns colours off.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import TextIO

from llmops import secrets

_COLORS = {"ok": "32", "changed": "33", "failed": "31", "unreachable": "31", "skipped": "36", "warn": "35"}
HEARTBEAT_S = 15.0


def color_wanted(stream: TextIO) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set to anything."""
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


class Console:
    """`stream` takes the event lines (ok/changed/failed ...), `progress` the live status line and
    heartbeats, `data` what the command produces (tables, the recap: `line(..., data=True)`).
    Commands that follow "data on stdout, progress on stderr" pass stream=sys.stderr and
    data=sys.stdout; `data` defaults to `stream`, which keeps one-stream callers as they were."""

    def __init__(self, stream: TextIO | None = None, verbosity: int = 0, color: bool | None = None,
                 progress: TextIO | None = None, heartbeat_s: float = HEARTBEAT_S, data: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.data = data or self.stream
        self.progress = progress or sys.stderr  # live status lines and heartbeats: never on the data stream
        self.verbosity = verbosity
        self.color = color_wanted(self.stream) if color is None else color
        self.live = bool(self.progress.isatty())
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._shown = False  # a live status line is on screen and must be cleared before the next line
        self._last_beat: dict[str, float] = {}
        self.t0 = time.monotonic()

    def _paint(self, word: str, status: str) -> str:
        code = _COLORS.get(status)
        return f"\033[{code}m{word}\033[0m" if self.color and code else word

    def _clear(self) -> None:
        if self._shown:
            self.progress.write("\r\033[K")
            self.progress.flush()
            self._shown = False

    def line(self, text: str = "", *, data: bool = False) -> None:
        out = self.data if data else self.stream
        with self._lock:
            self._clear()
            out.write(secrets.scrub(text) + "\n")  # the terminal follows the one masking rule too
            out.flush()

    def banner(self, title: str, *, data: bool = False) -> None:
        self.line("", data=data)
        self.line(f"{title} " + "*" * max(3, 78 - len(title)), data=data)

    def _stamp(self) -> str:
        return f"{time.monotonic() - self.t0:7.1f}s"

    def event(self, host: str, status: str, text: str) -> None:
        self.line(f"{self._stamp()} {self._paint(status + ':', status)} [{host}] {text}")

    def verbose(self, level: int, host: str, text: str) -> None:
        if self.verbosity >= level:
            self.line(f"         [{host}] {text}")

    def block(self, text: str, *, data: bool = False) -> None:
        self.line(text, data=data)

    def status(self, host: str, text: str) -> None:
        """How a long wait is going. Cheap to call often: off a terminal it prints rarely."""
        with self._lock:
            if self.live:
                width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
                self.progress.write("\r\033[K" + f"{self._stamp()} [{host}] {text}"[:width])
                self.progress.flush()
                self._shown = True
                return
            now = time.monotonic()
            if now - self._last_beat.get(host, self.t0) < self.heartbeat_s:
                return
            self._last_beat[host] = now
            self.progress.write(f"{self._stamp()} ...: [{host}] {text}\n")
            self.progress.flush()

    def status_done(self) -> None:
        """Take the live line away (the next event line would also do it)."""
        with self._lock:
            self._clear()
