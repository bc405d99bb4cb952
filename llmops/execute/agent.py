"""Talk to the host agent (llmops/agent/hostagent.py) through any Runner.

The agent file is copied once per content hash; each call runs it with the host's python
and reads the one JSON document it prints.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from typing import Any

from llmops.errors import ExecutionError
from llmops.execute.runner import CommandResult, Runner
from llmops.shell import HostPath, shell_word
from llmops.provision.steps import HostFile, agent_file, tinymodel_file


def q(path: str) -> str:
    return shell_word(HostPath(path), reveal=True)


class Agent:
    def __init__(self, runner: Runner, cache_dir: str, python: str = "python3"):
        self.runner = runner
        self.cache_dir = cache_dir
        # On this machine, our own interpreter is a known-good python3 and starts at once; a
        # `python3` found on PATH may be a wrapper (pyenv's shim adds ~0.25 s to every call).
        self.python = sys.executable if runner.host.is_local and python == "python3" and sys.executable else python
        self.file = agent_file(cache_dir)
        self._installed = False
        self.clock_offset = 0.0  # host clock minus controller clock

    def install(self, extra: list[HostFile] | None = None) -> None:
        """Copy the agent (and other host files) if missing; measure the host's clock offset."""
        for hf in [self.file, tinymodel_file(self.cache_dir), *(extra or [])]:
            put_file(self.runner, hf)
        self._installed = True
        t0 = time.time()
        info = self.call("info", timeout=60)
        t1 = time.time()
        self.clock_offset = float(info["time"]) - (t0 + t1) / 2 if not self.runner.host.is_local else 0.0
        self.home = info.get("home")

    def command(self, *args: str) -> str:
        return " ".join([shell_word(self.python, reveal=True), q(self.file.remote), *(shlex.quote(a) for a in args)])

    def run(self, *args: str, timeout: float | None = 60, stdin: str | None = None) -> CommandResult:
        if not self._installed:
            self.install()
        return self.runner.run(self.command(*args), timeout=timeout, stdin=stdin)

    def call(self, *args: str, timeout: float | None = 60, stdin: str | None = None, check: bool = True) -> dict[str, Any]:
        result = self.run(*args, timeout=timeout, stdin=stdin)
        doc = parse_json_line(result.stdout)
        if doc is None:
            if result.timed_out:
                raise ExecutionError(f"{self.runner.host.name}: agent {args[0]} timed out after {timeout} s")
            raise ExecutionError(f"{self.runner.host.name}: agent {args[0]} failed (exit {result.exit_code}): "
                                 f"{result.brief()}")
        if check and "error" in doc and len(doc) == 1:
            raise ExecutionError(f"{self.runner.host.name}: agent {args[0]}: {doc['error']}")
        return doc

    def to_controller_time(self, host_time: float) -> float:
        return host_time - self.clock_offset


def parse_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def put_file(runner: Runner, hf: HostFile) -> None:
    """Copy one of our files to the host unless a file of that name (and so content) is there."""
    content = hf.source.read_text()
    remote = q(hf.remote)
    folder = q(hf.remote.rsplit("/", 1)[0])
    # Always read all of stdin before deciding: exiting early would cut the sender off mid-write.
    script = (f"mkdir -p {folder} && cat > {remote}.tmp.$$ && "
              f"if test -f {remote}; then rm -f {remote}.tmp.$$; else mv -f {remote}.tmp.$$ {remote}; fi")
    result = runner.run(script, stdin=content, timeout=120)
    if not result.ok:
        raise ExecutionError(f"{runner.host.name}: could not copy {hf.source.name} to {hf.remote}: {result.brief()}")
