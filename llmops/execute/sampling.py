"""The agent's background sampler for one server, plus one-off GPU snapshots.

The sampler runs on the host, detached, and writes memory.jsonl there: /proc samples of the
server's tree at the benchmark's `sample_interval`, and the raw output of each GPU collector
command at the telemetry interval, each with its own timeout. The file comes home when the
server has stopped and is parsed here by the collectors' pure parse functions.
"""

from __future__ import annotations

from pathlib import Path

from llmops.execute.agent import Agent
from llmops.execute.server import Server
from llmops.load.schema import TelemetrySpec
from llmops.plugins.api import Collector
from llmops.telemetry import gpumem, procmem
from llmops.telemetry.select import PROCESS_COLLECTORS


class Sampler:
    def __init__(self, agent: Agent, server: Server, remote_dir: str, interval: float,
                 collectors: list[Collector], telemetry: TelemetrySpec):
        self.agent = agent
        self.server = server
        self.remote_out = f"{remote_dir}/memory.jsonl"
        self.interval = interval
        # configure(): a collector set up for this play (the sysfs root of sysfs-power)
        self.collectors = {c.name: (c.configure(telemetry) if hasattr(c, "configure") else c) for c in collectors}
        self.telemetry = telemetry
        self.pid: int | None = None
        self.stopped = False  # set when the server's stop call already stopped the sampler
        self.snapshots: list[str] = []  # extra tool lines taken on demand (idle, after stop)

    def spec(self) -> dict:
        """What the agent's `launch` needs to start this sampler right after the server."""
        return {"out": self.remote_out, "interval": self.interval, "tool_timeout": self.telemetry.tool_timeout,
                "collectors": [f"{name}={self.telemetry.interval}:{c.command()}" for name, c in self.collectors.items()],
                "container": self.server.container}

    def start(self) -> None:
        """Start the sampler on its own (for a server we did not start: one left running)."""
        assert self.server.pid is not None
        args = ["sample", str(self.server.pid), "--sid", str(self.server.sid), "--out", self.remote_out,
                "--interval", str(self.interval), "--tool-timeout", str(self.telemetry.tool_timeout)]
        for name, collector in self.collectors.items():
            args += ["--collector", f"{name}={self.telemetry.interval}:{collector.command()}"]
        if self.server.container:
            args += ["--container", self.server.container]
        inner = self.agent.command(*args)
        doc = self.agent.call("start", "--no-stamp", "--log", self.remote_out + ".log", "--command", inner,
                              timeout=60, check=False)
        if doc.get("ok"):
            self.pid = int(doc["pid"])

    def _run_once(self, names: list[str]) -> list[str]:
        import json

        lines = []
        for name in names:
            collector = self.collectors[name]
            doc = self.agent.call("tool", "--timeout", str(self.telemetry.tool_timeout), collector.command(),
                                  timeout=self.telemetry.tool_timeout + 60, check=False)
            if "rc" not in doc:
                continue
            doc.update({"kind": "tool", "collector": name})  # "t" is the host's clock, as in the sampler
            lines.append(json.dumps(doc))
        return lines

    def power_collectors(self) -> list[str]:
        return [n for n, c in self.collectors.items() if getattr(c, "measures", "memory") == "power"]

    def probe_power(self) -> bool:
        """Read every power collector once now (kept as samples); True if any gave a reading, so
        the idle wait is spent only where power can be measured."""
        names = self.power_collectors()
        if not names:
            return False
        lines = self._run_once(names)
        self.snapshots += lines
        for sample in gpumem.read_tool_samples(lines, self.collectors, self.agent.clock_offset):
            for d in sample.telemetry.devices if sample.telemetry else []:
                if d.get("power_watts") is not None or d.get("energy_uj") is not None:
                    return True
        return False

    def process_collectors(self) -> list[str]:
        return [n for n in self.collectors if n in PROCESS_COLLECTORS]

    def snapshot_gpu(self) -> None:
        """Per-process GPU memory now (the tools are too slow to wait for the next tick)."""
        if self.process_collectors():
            self.snapshots += self._run_once(self.process_collectors())

    def finish(self, local: Path) -> tuple[list[procmem.TreeSample], list[gpumem.GpuSample]]:
        if self.pid is not None and not self.stopped:
            self.agent.call("stop", str(self.pid), "--timeout", "5", timeout=60, check=False)
        lines: list[str] = []
        if self.agent.runner.get(self.remote_out, local):
            with open(local, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        if self.snapshots:
            with open(local, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in self.snapshots))
            lines += self.snapshots
        proc = procmem.read_samples(lines, self.agent.clock_offset)
        gpu = gpumem.read_tool_samples(lines, self.collectors, self.agent.clock_offset)
        return proc, sorted(gpu, key=lambda s: s.t)

    def release_check(self, pids: set[int]) -> list[dict] | None:
        """Processes of the stopped server still holding GPU memory; None when no tool can tell."""
        names = self.process_collectors()
        if not names:
            return None
        lines = self._run_once(names)
        samples = gpumem.read_tool_samples(lines, self.collectors, self.agent.clock_offset)
        usable = [s for s in samples if s.telemetry is not None]
        if not usable:
            return None
        holders: list[dict] = []
        for sample in usable:
            holders += [h for h in gpumem.still_holding(sample, pids) if h not in holders]
        return holders
