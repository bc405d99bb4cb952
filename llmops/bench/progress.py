"""Requests done out of those planned in the running level, and an estimate of the time left.

Fed by the engine's own callbacks (on_level, on_record) and shown through any function that
takes a line of text, so the engine knows nothing of terminals.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from llmops.bench.client import RequestRecord
from llmops.bench.engine import LevelPlan, LoadSpec


def planned_requests(load: LoadSpec, plan: LevelPlan) -> int | None:
    """How many requests the level sends, warm-up included; None when it runs for a duration."""
    if load.shape == "burst":
        return load.warmup + plan.concurrency
    if load.requests:
        return load.requests + load.warmup
    return None


class LevelProgress:
    def __init__(self, load: LoadSpec, show: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.load = load
        self.show = show
        self.clock = clock
        self.plan: LevelPlan | None = None
        self.done = 0
        self.t0 = 0.0

    def on_level(self, plan: LevelPlan, event: str, t: float) -> None:  # noqa: ARG002 - the engine's signature
        if event == "start":
            self.plan, self.done, self.t0 = plan, 0, self.clock()
            self.show(self.text())
        else:
            self.plan = None

    def on_record(self, record: RequestRecord) -> None:
        if self.plan is None or record.level != self.plan.index:
            return
        self.done += 1
        self.show(self.text())

    def text(self) -> str:
        assert self.plan is not None
        elapsed = self.clock() - self.t0
        total = planned_requests(self.load, self.plan)
        if total is not None:
            left = (elapsed / self.done * (total - self.done)) if self.done else None
            eta = "ETA ?" if left is None else f"ETA {left:.0f} s"
            return f"{self.plan.label}: {self.done}/{total} requests, {eta}"
        left = max(0.0, (self.load.duration or 0.0) - elapsed)
        return f"{self.plan.label}: {self.done} requests, ETA {left:.0f} s"
