"""Leases: the host stops a server by itself when the controller stops vouching for it."""

from __future__ import annotations

import json
import threading
from typing import Any

from llmops.errors import ConnectError, ExecutionError
from llmops.execute.agent import Agent
from llmops.execute.runner import Runner


class Leases:
    """Keeps every running server's lease fresh, so its host lets it live.

    Per host, one `agent heartbeat` process reads lease paths from its stdin (the SSH channel)
    and touches them; we write a line every second or so. That costs no process start per
    beat, and when the connection dies the beats stop, the leases run out, and the host's
    log keeper stops the server (see hostagent `_keep_log`).
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[Runner, Agent, float]] = {}
        self._streams: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, runner: Runner, agent: Agent, path: str, timeout: float) -> None:
        with self._lock:
            self._held[path] = (runner, agent, timeout)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="llmops-leases", daemon=True)
                self._thread.start()

    def release(self, path: str) -> None:
        with self._lock:
            self._held.pop(path, None)

    def close(self) -> None:
        self._stop.set()
        for stream in list(self._streams.values()):
            stream.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                held = dict(self._held)
            groups: dict[int, tuple[Runner, Agent, list[str]]] = {}
            period = 5.0
            for path, (runner, agent, timeout) in held.items():
                groups.setdefault(id(runner), (runner, agent, []))[2].append(path)
                period = min(period, max(timeout / 5.0, 0.2))
            for key, (runner, agent, paths) in groups.items():
                try:
                    stream = self._streams.get(key)
                    if stream is None:
                        stream = self._streams[key] = runner.open_stream(agent.command("heartbeat"))
                    stream.write(json.dumps(paths))
                except (ConnectError, ExecutionError, OSError, EOFError):
                    self._streams.pop(key, None)  # try a new stream next beat; the lease clock runs on
            self._stop.wait(period)
