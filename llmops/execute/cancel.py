"""Stopping on request: one Cancel per run, shared by the host pool and every cell.

Ctrl-C lands in the main thread while cells run in worker threads (and benchmarks in each
worker's own asyncio loop); setting the event and cancelling those loops' tasks is how the
request reaches them, and each step checks it before starting anything new.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from llmops.errors import LlmopsError


class Interrupted(LlmopsError):  # noqa: N818 - it is an event, not an error of ours
    """The user asked us to stop (Ctrl-C / SIGTERM)."""


class Cancel:
    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self._loops: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}

    def is_set(self) -> bool:
        return self.event.is_set()

    def interrupt(self) -> None:
        self.event.set()
        for loop, task in list(self._loops.values()):
            loop.call_soon_threadsafe(task.cancel)

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted("interrupted")

    def run(self, coro: Coroutine[Any, Any, Any], what: str = "the benchmark") -> Any:
        """Run `coro` in a fresh event loop of this thread that interrupt() can cancel."""
        loop = asyncio.new_event_loop()
        task = loop.create_task(coro)
        key = threading.get_ident()
        self._loops[key] = (loop, task)
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            raise Interrupted(f"interrupted during {what}") from None
        finally:
            self._loops.pop(key, None)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
