"""HostPool: hosts in parallel (up to `forks`), each host's work in one thread, in order.

A host's work is one function; whatever it raises is that host's failure, never another
host's. Ctrl-C (KeyboardInterrupt in the main thread) asks every host to stop through the run's
Cancel and waits for them: they stop their servers and record what they measured. A second
Ctrl-C leaves at once, after saying which servers may still be running.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from llmops.execute.cancel import Cancel, Interrupted
from llmops.execute.console import Console
from llmops.load.inventory import Host


@dataclass
class HostRecap:
    """One host's line in the PLAY RECAP."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "changed": self.changed, "unreachable": int(self.unreachable), "failed": self.failed,
                "skipped": self.skipped, "error": self.error}

    def mark_unreachable(self, error: str) -> None:
        self.unreachable = True
        self.error = error


class HostPool:
    def __init__(self, console: Console, cancel: Cancel, forks: int,
                 still_running: Callable[[], Iterable[str]] = lambda: ()) -> None:
        self.console = console
        self.cancel = cancel
        self.forks = forks
        self.still_running = still_running  # lines naming live servers, for a forced exit

    def run(self, hosts: list[Host], work: Callable[[Host, HostRecap], None]) -> dict[str, HostRecap]:
        recaps = {h.name: HostRecap(h.name) for h in hosts}
        workers = max(1, min(self.forks, len(hosts) or 1))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmops-host")
        futures = {pool.submit(work, host, recaps[host.name]): host.name for host in hosts}
        try:
            pending = set(futures)
            while pending:  # short waits: the main thread must stay able to take Ctrl-C
                done, pending = concurrent.futures.wait(pending, timeout=0.2)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None and not isinstance(exc, Interrupted):
                        name = futures[fut]
                        recaps[name].failed += 1
                        recaps[name].error = f"internal error: {type(exc).__name__}: {exc}"
                        self.console.event(name, "failed", recaps[name].error)
        except KeyboardInterrupt:
            self.cancel.interrupt()
            self.console.line("\nllmops: interrupted; stopping every server this run started (Ctrl-C again to "
                              "force exit)...")
            try:
                concurrent.futures.wait(futures, timeout=None)
            except KeyboardInterrupt:
                self.console.line("llmops: forced exit. These servers may still be running:")
                for line in self.still_running():
                    self.console.line(f"  {line}")
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
            raise Interrupted("interrupted") from None
        pool.shutdown(wait=True)
        return recaps
