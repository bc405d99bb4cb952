"""Talk to the host agent (llmops/agent/hostagent.py) through any Runner.

The agent file is copied once per content hash. Each host gets one long-lived `hostagent
serve` process for the whole run: a call is a JSON line on its stdin and a reply line back, a
round trip on an open channel. Running the agent as a command of its own costs an SSH exec, a
login shell reading ~/.bashrc and a python start (0.2-0.5 s on a typical host, more with pyenv
or conda hooks), which is what made per-variant overhead and many-host runs slow. Whenever the
session cannot take a call (busy with another thread's call, or gone) the command runs on its
own, with the same result.
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from typing import Any

from llmops.errors import ExecutionError
from llmops.execute.runner import CommandResult, LineStream, Runner, pid_alive
from llmops.provision.steps import HostFile, agent_file, tinymodel_file
from llmops.shell import HostPath, shell_word


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
        self.home: str | None = None
        self._stream: LineStream | None = None
        self._lock = threading.Lock()
        self._serve = True  # False once a session could not start: every call runs on its own

    def install(self, extra: list[HostFile] | None = None) -> None:
        """Make sure our files are on the host, start the session; measure the host's clock offset.

        One exec when the host already has everything: the session starts, and its first
        answer says which of our other files are missing.
        """
        files = [tinymodel_file(self.cache_dir), *(extra or [])]
        ask = ("info", "--have", *[hf.remote for hf in files])
        self._installed = True
        first = self._session_call(ask, None, 60)
        if first is None or not first.ok:
            put_file(self.runner, self.file)  # the usual reason: a new agent version
            self._close_stream()
            first = self._session_call(ask, None, 60)
        if first is not None and first.ok:
            info = _reply(self, ask, first, 60, True)
        else:  # no session on this host: every call runs on its own, failing as such a call fails
            self._serve = False
            self._close_stream()
            info = self.call(*ask, timeout=60)
        for hf in files:
            if hf.remote in info.get("missing", []):
                put_file(self.runner, hf)
        if not self.runner.host.is_local:
            t0 = time.time()
            info = self.call("info", timeout=60)  # on an open session: a round trip, no start-up in it
            t1 = time.time()
            self.clock_offset = float(info["time"]) - (t0 + t1) / 2
        self.home = info.get("home")

    def command(self, *args: str) -> str:
        return " ".join([shell_word(self.python, reveal=True), q(self.file.remote), *(shlex.quote(a) for a in args)])

    def run(self, *args: str, timeout: float | None = 60, stdin: str | None = None) -> CommandResult:
        if not self._installed:
            self.install()
        result = self._session_call(args, stdin, timeout)
        if result is not None:
            return result
        return self.runner.run(self.command(*args), timeout=timeout, stdin=stdin)

    def call(self, *args: str, timeout: float | None = 60, stdin: str | None = None, check: bool = True) -> dict[str, Any]:
        return _reply(self, args, self.run(*args, timeout=timeout, stdin=stdin), timeout, check)

    def alive(self, pid: int) -> bool:
        """Is the process there and not a zombie; over the session where there is one."""
        if self.runner.host.is_local or not self._serve:
            return pid_alive(self.runner, pid)
        result = self._session_call(("alive", str(int(pid))), None, 30)
        if result is None:
            return pid_alive(self.runner, pid)
        doc = parse_json_line(result.stdout)
        return bool(doc and doc.get("alive"))

    def to_controller_time(self, host_time: float) -> float:
        return host_time - self.clock_offset

    def close(self) -> None:
        """End the session (its process exits when its stdin closes)."""
        self._serve = False
        self._close_stream()

    # --- the session -----------------------------------------------------------------------

    def _session_call(self, args: tuple[str, ...], stdin: str | None, timeout: float | None) -> CommandResult | None:
        """The command's result from the session, or None when the session cannot take it."""
        if not self._serve or not self._lock.acquire(blocking=False):
            return None
        try:
            command = self.command(*args)
            t0 = time.monotonic()
            try:
                if self._stream is None:
                    self._stream = self.runner.open_stream(self.command("serve"), replies=True)
                self._stream.write(json.dumps({"argv": list(args), "stdin": stdin}))
                line = self._stream.read_line(timeout)
            except (OSError, EOFError):
                self._close_stream()  # the agent or the channel went away; a new one next time
                return None
            if line is None:
                # Timed out. That agent stays busy for as long as the command takes; the next
                # call starts another one.
                self._close_stream()
                result = CommandResult(command, None, "", "", time.monotonic() - t0)
            else:
                try:
                    reply = json.loads(line)
                    result = CommandResult(command, int(reply["rc"]), str(reply["out"]), str(reply["err"]),
                                           time.monotonic() - t0)
                except (ValueError, KeyError, TypeError):
                    self._close_stream()
                    return None
            trace = getattr(self.runner, "trace", None)
            if trace is not None:
                trace(result)
            return result
        finally:
            self._lock.release()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()


def _reply(agent: Agent, args: tuple[str, ...], result: CommandResult, timeout: float | None,
           check: bool) -> dict[str, Any]:
    doc = parse_json_line(result.stdout)
    if doc is None:
        if result.timed_out:
            raise ExecutionError(f"{agent.runner.host.name}: agent {args[0]} timed out after {timeout} s")
        raise ExecutionError(f"{agent.runner.host.name}: agent {args[0]} failed (exit {result.exit_code}): "
                             f"{result.brief()}")
    if check and "error" in doc and len(doc) == 1:
        raise ExecutionError(f"{agent.runner.host.name}: agent {args[0]}: {doc['error']}")
    return doc


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
