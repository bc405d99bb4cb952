"""One server's life on a host: start detached, wait until ready, stop without leftovers.

Start: the agent forks a new session (setsid) with stdin from /dev/null and output to a log
file on the host, then returns its PID; nothing hangs an SSH channel. Readiness: tenacity
polls GET {health_path} quickly at first, then less often; 200 means ready, connection
refused or 503 mean "still starting" while the process lives; if it exits we fail at once
with the tail of its log. Stop: SIGTERM to the process group, wait, SIGKILL, then verify that
no process of that session (or its descendants, even reparented ones) is left.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay

from llmops import secrets as secret_rule
from llmops.errors import ExecutionError, ServerFailed
from llmops.execute.agent import Agent, q
from llmops.execute.runner import Runner
from llmops.plan.model import Cell
from llmops.record.rundir import safe_name


class NotReady(Exception):
    """The server answered, or did not, in a way that means it is still starting."""


class Exited(Exception):
    pass


PHASE_EVERY_S = 2.0


def poll_interval(state: RetryCallState) -> float:
    """Fast while servers usually come up (llama.cpp: well under a second), slower later."""
    elapsed = state.seconds_since_start or 0.0
    if elapsed < 2.0:
        return 0.02
    if elapsed < 20.0:
        return 0.2
    return 1.0


@dataclass
class StopReport:
    stopped: bool
    forced: bool
    seconds: float
    survivors: list[dict[str, Any]] = field(default_factory=list)
    already_gone: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "forced": self.forced, "seconds": self.seconds,
                "survivors": self.survivors, "already_gone": self.already_gone}


class Server:
    def __init__(self, cell: Cell, runner: Runner, agent: Agent, remote_dir: str, run_id: str = "run"):
        self.cell = cell
        self.runner = runner
        self.agent = agent
        self.remote_dir = remote_dir
        self.run_id = safe_name(run_id)
        self.log_path = f"{remote_dir}/server.log"
        # One lease per run, in the server's own folder: a run that reuses the server adds its
        # own beside the first one's, and the host stops the server when all of them are stale.
        self.lease_path = f"{remote_dir}/leases/{self.run_id}"
        self.pid: int | None = None
        self.sid: int | None = None  # session of the server: our log keeper leads it
        self.starttime: int | None = None  # with the PID, tells this process from a later one
        self.t_spawn: float | None = None  # controller clock
        self.known_pids: set[int] = set()
        self.container: str | None = None  # "ENGINE:NAME" when the server runs in a container
        self.container_pid: int | None = None  # its init, as the host sees it
        self.cgroup: dict[str, Any] | None = None  # the container's cgroup memory at the last procs()
        self.launcher_procs: list[dict[str, Any]] = []  # the container CLI's tree (not the server)

    # --- start -------------------------------------------------------------------------------

    MIN_FREE_KB = 20 * 1024  # logs and samples need some room; a full disk is a clear error up front

    def start(self, sample: dict[str, Any] | None = None, *, restart: bool = False,
              prestart: str | None = None, on_expiry: str | None = None) -> dict[str, Any]:
        """Check disk and port, start the server (and its sampler), record it: one round trip.

        When llmops left a server running on this port, nothing starts: the answer says
        {"reuse": state} (same command, no restart asked) or error_kind "occupied" with its state.
        The environment travels on stdin (it may hold secrets): never on a command line, never
        in a file on the host.
        """
        spec = {
            "dir": self.remote_dir, "log": self.log_path, "lease": self.lease_path,
            "lease_timeout": self.cell.lease_timeout, "command": self.cell.command,
            "env": {k: str(v) for k, v in self.cell.env.items()}, "port": self.cell.spec.port,
            "host": self.cell.spec.bind if self.cell.spec.bind not in ("0.0.0.0", "::", "") else "127.0.0.1",
            "min_free_kb": self.MIN_FREE_KB, "state_path": self.state_path,
            "state": {"hash": command_hash(self.cell), "cell": self.cell.name, "command": self.cell.display_command,
                      "remote_dir": self.remote_dir},
            "sample": sample, "restart": restart, "prestart": prestart, "on_expiry": on_expiry,
        }
        doc = self.agent.call("launch", stdin=json.dumps(spec), timeout=300, check=False)
        if doc.get("reuse") or doc.get("error_kind") == "occupied":
            return doc
        if not doc.get("ok"):
            kind = doc.get("error_kind")
            host = self.cell.host.name
            if kind == "disk":
                raise ServerFailed(f"only {doc.get('free_kb')} KiB free for logs in {self.remote_dir} on {host} "
                                   f"(need {self.MIN_FREE_KB // 1024} MiB); free some space or set llmops_remote_dir")
            if kind == "port":
                raise ServerFailed(f"port {self.cell.spec.port} on {host} is already in use by another process; "
                                   "stop it or choose another port")
            raise ServerFailed(f"could not start the server on {host}: {doc.get('error', doc)}", self.log_tail())
        self.pid = int(doc["pid"])
        self.sid = int(doc["sid"])
        self.starttime = doc.get("starttime")
        self.t_spawn = self.agent.to_controller_time(float(doc["t_spawn"]))
        self.known_pids.add(self.pid)
        return doc

    # --- what is already running (idempotence) ----------------------------------------------

    @property
    def state_path(self) -> str:
        # Named by host as well as port: home folders (and so the cache) are often shared between
        # lab machines over NFS, and one machine's server must never look like another's.
        return f"{self.cell.cache_dir.rstrip('/')}/servers/{safe_name(self.cell.host.name)}-{self.cell.spec.port}.json"

    def read_state(self) -> dict[str, Any] | None:
        """The server llmops left running on this port (for --diff), if it is still that process."""
        return self.agent.call("state", self.state_path, timeout=60).get("state")

    def adopt(self, state: dict[str, Any]) -> None:
        """Take over a server a previous run left running (same command): measure it as it is."""
        self.pid, self.sid, self.starttime = int(state["pid"]), int(state["sid"]), state.get("starttime")
        self.remote_dir = state.get("remote_dir") or self.remote_dir
        self.log_path = f"{self.remote_dir}/server.log"
        self.lease_path = f"{self.remote_dir}/leases/{self.run_id}"
        self.t_spawn = None
        self.known_pids.add(self.pid)

    def take_lease(self) -> None:
        """Our own lease on a server another run started, beside that run's (never instead of it)."""
        folder = self.lease_path.rsplit("/", 1)[0]
        self.runner.run(f"mkdir -p {q(folder)} && touch {q(self.lease_path)}", timeout=60)

    def release_lease(self) -> None:
        """Leave the server running after we go: only our own lease goes; once no run holds one,
        the host enforces nothing (a run still holding one keeps its dead-man switch)."""
        self.runner.run(f"rm -f {q(self.lease_path)}", timeout=60)

    # --- readiness ---------------------------------------------------------------------------

    def alive(self) -> bool:
        if self.pid is None:
            return False
        return self.agent.alive(self.pid)

    def wait_ready(self, host: str, port: int, timeout: float,
                   check_cancel: Callable[[], None] | None = None,
                   on_phase: Callable[[str], None] | None = None,
                   phases: dict[str, re.Pattern[str]] | None = None) -> float:
        """Block until GET health answers 200; return seconds from spawn to that answer.

        Between probes the server must still be alive, else we fail at once. On a remote host
        that check is a round trip to the agent, so it runs at most every quarter second there
        (a host whose agent runs each command on its own pays a shell start per check); the
        HTTP probe itself is cheap and stays fast.
        """
        path = self.cell.health_path
        every = 0.0 if self.runner.host.is_local else 0.25
        last_alive_check = [0.0]
        # on_phase hears the latest startup milestone found in the log (vLLM: weights loaded,
        # compiled, KV cache ready...), looked up every PHASE_EVERY_S at most.
        next_phase = [time.monotonic() + PHASE_EVERY_S]
        t_wait = time.monotonic()

        def probe() -> None:
            if check_cancel is not None:
                check_cancel()
            if on_phase is not None and time.monotonic() >= next_phase[0]:
                next_phase[0] = time.monotonic() + PHASE_EVERY_S
                on_phase(f"starting: {self.startup_phase(phases or {})} ({time.monotonic() - t_wait:.0f} s)")
            status = http_status(host, port, path, timeout=2.0)
            if status == 200:
                return
            now = time.monotonic()
            if now - last_alive_check[0] >= every:
                last_alive_check[0] = now
                if not self.alive():
                    raise Exited(status)
            raise NotReady(status)

        retrying = Retrying(stop=stop_after_delay(timeout), wait=poll_interval,
                            retry=retry_if_exception_type(NotReady), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    probe()
        except Exited:
            raise ServerFailed(f"server exited before it was ready ({self.cell.spec.kind} {self.cell.name})",
                               self.log_tail()) from None
        except NotReady as exc:
            raise ServerFailed(f"server not ready after {timeout:g} s (last answer: {exc.args[0]}); "
                               "raise ready_timeout if the model needs longer", self.log_tail()) from None
        if self.t_spawn is None:  # adopted: it was ready long ago
            return 0.0
        return max(time.time() - self.t_spawn, 0.0)

    # --- stop --------------------------------------------------------------------------------

    def stop(self, timeout: float | None = None, sampler_pid: int | None = None) -> StopReport:
        """Stop the server (and then its sampler), verify, and forget it: one round trip."""
        if self.pid is None:
            return StopReport(stopped=True, forced=False, seconds=0.0, already_gone=True)
        timeout = timeout or self.cell.spec.stop_timeout
        args = ["stop", str(self.pid), "--sid", str(self.sid), "--timeout", str(timeout), "--state", self.state_path]
        if sampler_pid:
            args += ["--sampler", str(sampler_pid)]
        if self.known_pids:
            args += ["--known", *[str(p) for p in sorted(self.known_pids)]]
        doc = self.agent.call(*args, timeout=timeout + 60, check=False)
        if "stopped" not in doc:
            raise ExecutionError(f"stopping {self.cell.name} on {self.cell.host.name} failed: {doc}")
        return StopReport(stopped=bool(doc["stopped"]), forced=bool(doc.get("forced")),
                          seconds=float(doc.get("seconds", 0.0)), survivors=list(doc.get("survivors", [])),
                          already_gone=bool(doc.get("already_gone")))

    # --- logs --------------------------------------------------------------------------------

    def startup_phase(self, phases: dict[str, re.Pattern[str]]) -> str:
        """The last milestone the log shows so far, as words ("kv cache ready"), or "waiting"."""
        tail = self.runner.run(f"tail -c 65536 {q(self.log_path)} 2>/dev/null", timeout=30).stdout
        reached = "waiting for health"
        for name, rx in phases.items():  # in startup order
            if rx.search(tail):
                reached = name.removesuffix("_s").replace("_", " ")
        return reached

    def log_tail(self, lines: int = 30) -> str:
        result = self.runner.run(f"tail -n {int(lines)} {q(self.log_path)} 2>/dev/null", timeout=30)
        return scrub(result.stdout.rstrip(), self.cell.secrets)

    def fetch_log(self, local: Path) -> bool:
        """Copy the log home (secrets scrubbed), with the line times the log keeper wrote."""
        ok = self.runner.get(self.log_path, local)
        if ok and self.cell.secrets:
            local.write_text(scrub(local.read_text(errors="replace"), self.cell.secrets))
        self.runner.get(self.log_path + ".t", local.with_name(local.name + ".t"))
        return ok

    def timed_log(self, local: Path) -> list[tuple[float, str]]:
        """(seconds since spawn, line) for each line of a fetched log."""
        times_file = local.with_name(local.name + ".t")
        lines = local.read_text(errors="replace").splitlines()
        if not times_file.exists() or self.t_spawn is None:
            return [(float("nan"), line) for line in lines]
        stamps = [float(x) for x in times_file.read_text().split()]
        spawn_host = self.t_spawn + self.agent.clock_offset
        return [(stamps[i] - spawn_host if i < len(stamps) else float("nan"), line) for i, line in enumerate(lines)]

    def procs(self) -> list[dict[str, Any]]:
        if self.pid is None:
            return []
        args = ["procs", str(self.pid), "--sid", str(self.sid)]
        if self.known_pids:
            args += ["--known", *[str(p) for p in sorted(self.known_pids)]]
        if self.container:
            args += ["--container", self.container]
        doc = self.agent.call(*args, timeout=60)
        procs = list(doc.get("procs", []))
        if self.container:
            self.container_pid = doc.get("container_pid")
            self.cgroup = doc.get("cgroup")
            self.launcher_procs = list(doc.get("launcher") or [])
            self.known_pids |= {int(p["pid"]) for p in self.launcher_procs}
        self.known_pids |= {int(p["pid"]) for p in procs}
        return procs


def command_hash(cell: Cell) -> str:
    """What makes two servers the same: the exact command and environment (secrets included)."""
    data = json.dumps({"command": cell.command, "env": {k: str(v) for k, v in sorted(cell.env.items())}})
    return hashlib.sha256(data.encode()).hexdigest()


def scrub(text: str, secrets: list[str]) -> str:
    """Host logs: the cell's own secrets plus every registered one (llmops.secrets, the one rule)."""
    return secret_rule.scrub(text, secrets)


def http_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | str:
    """Status code of GET path, or a short word for what went wrong (refused, reset, timeout)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except ConnectionRefusedError:
        return "connection refused"
    except (ConnectionResetError, http.client.RemoteDisconnected, http.client.BadStatusLine):
        return "connection closed"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"{type(exc).__name__}"
    finally:
        conn.close()
