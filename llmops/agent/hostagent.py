#!/usr/bin/env python3
"""llmops host agent: the few things llmops needs done *on* a host, in one stdlib-only file.

It is copied to each host (`~/.cache/llmops/agent/hostagent-<hash>.py`) and run with the
host's python3 (3.8+), locally or over SSH. Every command prints one JSON document on stdout.

    start    spawn a server detached: new session, stdin /dev/null, output to a log file
    alive    is a PID still running (zombies count as gone)
    procs    the processes of a server: its session plus its descendants, with RSS/PSS
    stop     SIGTERM, wait, SIGKILL; then verify that nothing of the server is left
    sample   background sampler: process-tree memory from /proc plus collector commands
    facts    OS, kernel, CPU, RAM, GPUs, tools: what a report needs to be reproducible
    fetch-sdist   download a PyPI sdist (sha256-checked) and unpack it, once
    port     is anything listening on 127.0.0.1:PORT
    serve    answer commands sent as JSON lines on stdin: one process per host for a whole run

Why a file and not shell one-liners: process-tree walks, timeouts around tools that hang
(amd-smi can), and atomic JSON output are far easier to get right once, here.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import traceback
import urllib.parse
import urllib.request

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


# --- processes --------------------------------------------------------------------------------

def read_stat(pid: int):
    """(ppid, pgid, sid, state, comm, starttime) from /proc/PID/stat, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    comm = data[lpar + 1:rpar]
    rest = data[rpar + 2:].split()
    # rest[0]=state, [1]=ppid, [2]=pgrp, [3]=session, ... [19]=starttime
    return int(rest[1]), int(rest[2]), int(rest[3]), rest[0], comm, int(rest[19])


def all_pids():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            out.append(int(name))
    return out


def is_alive(pid: int) -> bool:
    st = read_stat(pid)
    return st is not None and st[3] not in ("Z", "X")


def members(root: int, known=(), sid=None):
    """PIDs of the server started as `root`: its descendants (even after they are reparented,
    through `known`), and every process of its session `sid` except the session leader, which
    is our log keeper and not part of the server."""
    table = {}
    for pid in all_pids():
        st = read_stat(pid)
        if st is not None:
            table[pid] = st
    children = {}
    for pid, st in table.items():
        children.setdefault(st[0], []).append(pid)
    found = set()
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        if pid in table and pid != sid:
            found.add(pid)
        stack.extend(children.get(pid, []))
    session = sid if sid is not None else root
    for pid, st in table.items():
        if st[2] == session and pid != sid:
            found.add(pid)
    for pid in known:
        if pid in table and pid != sid and table[pid][5] >= table.get(root, (0, 0, 0, "", "", 0))[5]:
            found.add(pid)
    return sorted(p for p in found if table[p][3] not in ("Z", "X")), table


def memory_of(pid: int):
    """(rss_kb, pss_kb or None, swap_kb or None) for one process."""
    rss = pss = swap = None
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Swap:"):
                    swap = int(line.split()[1])
    except (OSError, ValueError):
        pass
    if rss is None:
        try:
            with open("/proc/%d/statm" % pid) as f:
                rss = int(f.read().split()[1]) * PAGE_KB
        except (OSError, ValueError, IndexError):
            rss = None
    return rss, pss, swap


def cmdline_of(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:300]
    except OSError:
        return ""


def proc_snapshot(root: int, known=(), sid=None):
    pids, table = members(root, known, sid)
    procs = []
    for pid in pids:
        ppid, pgid, sid, state, comm, _ = table[pid]
        rss, pss, swap = memory_of(pid)
        procs.append({"pid": pid, "ppid": ppid, "pgid": pgid, "sid": sid, "comm": comm, "state": state,
                      "rss_kb": rss, "pss_kb": pss, "swap_kb": swap, "cmdline": cmdline_of(pid)})
    return procs


def container_pid(container, timeout=10.0):
    """The host PID of a container's first process ("ENGINE:NAME"), or None while it has none.

    A container's processes are not children of the `docker|podman run` CLI we started: they
    hang under containerd-shim or conmon, so the server's tree is found from here."""
    engine, _, name = (container or "").partition(":")
    if engine not in ("docker", "podman") or not name:
        return None
    try:
        done = subprocess.run([engine, "inspect", "--format", "{{.State.Pid}}", name], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout)
        pid = int(done.stdout.decode("ascii", "replace").split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return pid if pid > 0 and is_alive(pid) else None


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _memory_stat(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    out[key] = int(value)
    except OSError:
        pass
    return out


def cgroup_memory(pid):
    """What the kernel charges to the memory cgroup of `pid` (the container's own figure, the one
    `docker|podman stats` shows): usage, and the working set (usage less inactive file cache)."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v2_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if "memory" in controllers.split(","):  # cgroup v1 (or hybrid): the memory hierarchy
            base = "/sys/fs/cgroup/memory" + path
            usage = _read_int(base + "/memory.usage_in_bytes")
            if usage is not None:
                stat = _memory_stat(base + "/memory.stat")
                inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
                return {"version": 1, "path": path, "usage_bytes": usage,
                        "working_set_bytes": max(usage - inactive, 0), "rss_bytes": stat.get("total_rss")}
        if controllers == "":
            v2_path = path
    if v2_path is not None:
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            usage = _read_int(root + v2_path + "/memory.current")
            if usage is not None:
                stat = _memory_stat(root + v2_path + "/memory.stat")
                return {"version": 2, "path": v2_path, "usage_bytes": usage,
                        "working_set_bytes": max(usage - stat.get("inactive_file", 0), 0), "rss_bytes": stat.get("anon")}
    return None


class ContainerWatch:
    """The processes of a server that runs in a container: the container's own tree (found by
    its name), apart from the CLI's tree (the launcher, which holds no model)."""

    def __init__(self, container, cli_pid, sid):
        self.container = container
        self.cli = TreeWatch(cli_pid, sid)
        self.inner = None
        self.next_try = 0.0

    def pids(self):
        """(container PIDs, launcher PIDs, container init PID)."""
        launcher = self.cli.pids()
        if self.inner is None and time.time() >= self.next_try:
            self.next_try = time.time() + 1.0
            pid = container_pid(self.container)
            if pid is not None:
                self.inner = TreeWatch(pid, None)
        inside = self.inner.pids() if self.inner is not None else []
        return inside, launcher, (self.inner.root if self.inner is not None else None)


# --- commands ---------------------------------------------------------------------------------

def cmd_info(args) -> int:
    emit({"time": time.time(), "pid": os.getpid(), "python": sys.version.split()[0], "home": os.path.expanduser("~"),
          "uid": os.getuid(), "hostname": socket.gethostname(),
          "missing": [path for path in args.have or () if not os.path.isfile(os.path.expanduser(path))]})
    return 0


def _spawn(argv, log, env, cwd=None, stamp=True, lease=None, lease_timeout=0.0, on_expiry=None):
    """Start argv detached; return (pid, sid, t_spawn, error).

    A grandchild becomes a new session leader (setsid: no terminal, survives our exit and the
    SSH channel). The child between us exits at once, so the leader is nobody's child here:
    not a descendant of this agent (which may be a `serve` living as long as the SSH session,
    and whatever ends that session's process tree must not reach the server) and never a
    zombie of ours. With `stamp`, the leader forks the program with stdout/stderr on a pipe and
    stays behind as the log keeper: it copies the output to `log` and writes the arrival time
    of every line to `log.t`, so startup phases can be timed from any backend's log. It
    ignores SIGTERM so it can record the server's shutdown messages; it ends on EOF.
    """
    status_r, status_w = os.pipe()
    t_spawn = time.time()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(status_r)
            if os.fork() != 0:
                os._exit(0)
            os.setsid()
            # Let go of the caller's stdin/stdout/stderr: an SSH channel stays open while any
            # process holds them, which is why a bare `cmd &` over SSH hangs.
            fd_null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(fd_null, fd)
            if not stamp:
                fd_out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd_out, 1)
                os.dup2(fd_out, 2)
                os.write(status_w, ("%d %d\n" % (os.getpid(), os.getpid())).encode())
                os.close(status_w)
                os.closerange(3, 1024)
                if cwd:
                    os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            out_r, out_w = os.pipe()
            child = os.fork()
            if child == 0:
                os.close(out_r)
                os.dup2(out_w, 1)
                os.dup2(out_w, 2)
                os.close(status_w)
                os.closerange(3, 1024)
                if cwd:
                    os.chdir(cwd)
                try:
                    os.execvpe(argv[0], argv, env)
                except OSError as exc:
                    os.write(2, ("llmops: cannot run %s: %s\n" % (argv[0], exc)).encode())
                    os._exit(127)
            os.close(out_w)
            os.write(status_w, ("%d %d\n" % (child, os.getpid())).encode())
            os.close(status_w)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            _keep_log(out_r, log, child, lease, lease_timeout, on_expiry)
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(status_w, ("error %s: %s\n" % (type(exc).__name__, exc)).encode())
            finally:
                os._exit(127)
    os.close(status_w)
    os.waitpid(middle, 0)
    data = b""
    while True:
        chunk = os.read(status_r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(status_r)
    text = data.decode("utf-8", "replace").strip()
    if not text or text.startswith("error"):
        return None, None, t_spawn, text or "the launcher died"
    pid, leader = (int(x) for x in text.split()[:2])
    # Without a log keeper the program itself leads its session: no leader to leave out.
    return pid, (leader if stamp else None), t_spawn, ""


def _keep_log(fd: int, log: str, child: int = 0, lease=None, lease_timeout: float = 0.0, on_expiry=None) -> None:
    """Copy the server's output to `log`; `log.t` gets the time each line ended.

    Also the dead-man switch: when a lease file is given, the controller touches it while it
    is alive and connected; if it goes stale (llmops killed, SSH dropped, network gone), the
    keeper stops the server itself, so nothing is left holding the GPU. A full disk never
    kills the server: output that cannot be written is dropped, once noted.

    The lease is one file per run in a folder of the server's own (see `_lease_age`): a run
    that reuses the server adds its file beside the first one's and never takes it away. The
    keeper follows the server's process tree as it runs, so a child that escaped with setsid
    (out of reach of the group signal) and was then reparented is still stopped; `on_expiry`
    is a shell command for what is not a process of ours at all (a container: killing its CLI
    does not stop it).
    """
    import select

    out = open(log, "ab", buffering=0)
    times = open(log + ".t", "a", buffering=1)
    disk_full = False
    expired_at = None
    group = os.getpgrp()
    watch = TreeWatch(child, os.getpid()) if child else None
    seen = {}  # pid -> start time: a PID reused by someone else later is never signalled
    next_watch = 0.0
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not chunk:
                break
            now = time.time()
            try:
                out.write(chunk)
                n = chunk.count(b"\n")
                if n:
                    times.write(("%.6f\n" % now) * n)
            except OSError:
                disk_full = True  # keep draining the pipe: a blocked or broken pipe would stall or kill the server
        if not (lease and lease_timeout > 0):
            continue
        now = time.time()
        if watch is not None and expired_at is None and now >= next_watch:
            next_watch = now + 1.0
            try:
                for pid in watch.pids():
                    st = read_stat(pid)
                    if st is not None:
                        seen.setdefault(pid, st[5])
            except OSError:
                pass
        age = _lease_age(lease)
        if age > lease_timeout and expired_at is None:
            expired_at = now
            _note(out, "llmops: controller lease expired (%.0f s without contact); stopping the server" % age)
            if on_expiry:
                try:
                    _run_tool(on_expiry, max(10.0, lease_timeout))
                except Exception:  # noqa: BLE001 - the signals below still run
                    pass
            _signal_tree(seen, child, group, signal.SIGTERM)
        elif expired_at is not None and now - expired_at > max(15.0, min(lease_timeout, 60.0)):
            _signal_tree(seen, child, group, signal.SIGKILL)
            try:
                os.killpg(group, signal.SIGKILL)  # ends the keeper too
            except OSError:
                pass
    if disk_full:
        _note(out, "llmops: some server output was lost: the disk was full")


def _lease_age(lease: str) -> float:
    """Seconds since the freshest lease of the server was touched; 0 when there is none.

    `lease` names this run's file; its folder holds one file per run that uses the server.
    The server lives while any of them is fresh. No file at all means every run let the server
    go on purpose (left running): nothing to enforce. An older agent's single-file lease (the
    folder is the file) still works.
    """
    folder = os.path.dirname(lease)
    try:
        names = os.listdir(folder) if os.path.basename(folder) == "leases" else [os.path.basename(lease)]
    except OSError:
        return 0.0
    newest = None
    for name in names:
        try:
            mtime = os.stat(os.path.join(folder, name)).st_mtime
        except OSError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return 0.0 if newest is None else time.time() - newest


def _signal_tree(seen, child: int, group: int, sig) -> None:
    """Signal the server's group and every process it had, wherever they went (not the keeper)."""
    pids = []
    try:
        pids, table = members(child, (), os.getpid())  # what is still attached, found now
        pids += [p for p, start in seen.items() if p in table and table[p][5] == start]  # escaped earlier
    except OSError:
        pass
    _signal_all(sorted(set(p for p in pids if p != os.getpid())), sig)
    try:
        os.killpg(group, sig)
    except OSError:
        pass


def _note(out, text: str) -> None:
    try:
        out.write((text + "\n").encode())
    except OSError:
        pass


def _load_env(path):
    env = dict(os.environ)
    if path:
        with open(path) as f:
            env.update({str(k): str(v) for k, v in json.load(f).items()})
        os.unlink(path)  # held secrets; the child has them in its environment now
    return env


def cmd_start(args) -> int:
    env = _load_env(args.env_file)
    # Python servers (vLLM, SGLang) block-buffer stdout into a pipe, which would delay log
    # lines and blur the startup phases timed from them.
    env.setdefault("PYTHONUNBUFFERED", "1")
    log_dir = os.path.dirname(os.path.abspath(args.log))
    os.makedirs(log_dir, exist_ok=True)
    shell_line = "exec " + args.command if args.exec_prefix else args.command
    pid, sid, t_spawn, failure = _spawn(["/bin/sh", "-c", shell_line], args.log, env, args.cwd,
                                        stamp=args.stamp, lease=args.lease, lease_timeout=args.lease_timeout)
    if failure:
        emit({"ok": False, "error": failure})
        return 1
    if args.pidfile:
        tmp = args.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (pid, sid))
        os.replace(tmp, args.pidfile)
    st = read_stat(pid)
    emit({"ok": True, "pid": pid, "sid": sid if sid is not None else pid, "keeper": sid is not None,
          "starttime": st[5] if st else None,
          "t_spawn": t_spawn})
    return 0


def cmd_launch(args) -> int:
    """Everything a server start needs, in one round trip (each SSH command costs a connection's
    shell start-up on the host). Reads a JSON document on stdin (so the environment, which may
    hold secrets, is never on a command line or on disk):

      {"dir", "log", "lease", "lease_timeout", "command", "env", "port", "host", "min_free_kb",
       "state_path", "state", "sample": {"out", "interval", "tool_timeout", "collectors"} | null}

    Checks free disk space and that the port is free, starts the server under its log keeper,
    starts the memory sampler, and records the server in its state file.
    """
    spec = json.load(sys.stdin)
    state_path = os.path.expanduser(spec["state_path"]) if spec.get("state_path") else None
    existing = _live_state(state_path) if state_path else None
    if existing is not None:
        # A server llmops left on this port is still up: the same one is reused, another one is
        # the controller's to stop first (it decides, and says so).
        if existing.get("hash") == (spec.get("state") or {}).get("hash") and not spec.get("restart"):
            emit({"ok": True, "reuse": existing, "in_use_by": _other_leases(existing, spec)})
        else:
            emit({"ok": False, "error_kind": "occupied", "state": existing})
        return 0
    folder = os.path.expanduser(spec["dir"])
    os.makedirs(folder, exist_ok=True)
    vfs = os.statvfs(folder)
    free_kb = vfs.f_bavail * vfs.f_frsize // 1024
    if free_kb < int(spec.get("min_free_kb", 0)):
        emit({"ok": False, "error_kind": "disk", "free_kb": free_kb, "error": "only %d KiB free in %s" % (free_kb, folder)})
        return 1
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect((spec.get("host") or "127.0.0.1", int(spec["port"])))
        busy = True
    except OSError:
        busy = False
    finally:
        probe.close()
    if busy:
        emit({"ok": False, "error_kind": "port", "error": "port %s is already in use" % spec["port"]})
        return 1
    lease = os.path.expanduser(spec["lease"]) if spec.get("lease") else None
    if lease:
        os.makedirs(os.path.dirname(lease), exist_ok=True)
        with open(lease, "a"):
            pass
        os.utime(lease, None)
    if spec.get("prestart"):  # e.g. remove a container left by a crashed run
        _run_tool(spec["prestart"], 120.0)
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    env.setdefault("PYTHONUNBUFFERED", "1")  # see cmd_start
    log = os.path.expanduser(spec["log"])
    pid, sid, t_spawn, failure = _spawn(["/bin/sh", "-c", "exec " + spec["command"]], log, env,
                                        stamp=True, lease=lease, lease_timeout=float(spec.get("lease_timeout") or 0),
                                        on_expiry=spec.get("on_expiry"))
    if failure:
        emit({"ok": False, "error_kind": "spawn", "error": failure})
        return 1
    st = read_stat(pid)
    out = {"ok": True, "pid": pid, "sid": sid, "starttime": st[5] if st else None, "t_spawn": t_spawn}
    sample = spec.get("sample")
    if sample:
        argv = [sys.executable, os.path.abspath(__file__), "sample", str(pid), "--sid", str(sid),
                "--out", os.path.expanduser(sample["out"]), "--interval", str(sample["interval"]),
                "--tool-timeout", str(sample.get("tool_timeout", 10.0))]
        for item in sample.get("collectors") or []:
            argv += ["--collector", item]
        if sample.get("container"):
            argv += ["--container", sample["container"]]
        spid, _, _, sfail = _spawn(argv, os.path.expanduser(sample["out"]) + ".log", dict(os.environ), stamp=False)
        out["sampler_pid"] = spid
        if sfail:
            out["sampler_error"] = sfail
    if spec.get("state_path"):
        state = dict(spec.get("state") or {})
        state.update({"pid": pid, "sid": sid, "starttime": out["starttime"], "started": t_spawn})
        path = os.path.expanduser(spec["state_path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)
    emit(out)
    return 0


def _other_leases(state, spec):
    """Runs (other than this one) whose lease on this server is fresh: they are using it now."""
    folder = os.path.join(os.path.expanduser(state.get("remote_dir") or ""), "leases")
    mine = os.path.basename(spec.get("lease") or "")
    limit = float(spec.get("lease_timeout") or 0) or 120.0
    out = []
    try:
        names = os.listdir(folder)
    except OSError:
        return out
    for name in sorted(names):
        try:
            age = time.time() - os.stat(os.path.join(folder, name)).st_mtime
        except OSError:
            continue
        if name != mine and age <= limit:
            out.append({"run": name, "age_s": round(age, 1)})
    return out


def _live_state(path: str):
    """The state file's server if that very process (PID and start time) still runs, else None."""
    try:
        with open(path) as f:
            state = json.load(f)
        pid, starttime = int(state["pid"]), state.get("starttime")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    st = read_stat(pid)
    if st is None or st[3] in ("Z", "X") or starttime is None or st[5] != int(starttime):
        try:
            os.unlink(path)  # stale: the server is gone, or the PID is someone else's now
        except OSError:
            pass
        return None
    return state


def cmd_state(args) -> int:
    emit({"state": _live_state(os.path.expanduser(args.path))})
    return 0


def cmd_alive(args) -> int:
    alive = is_alive(args.pid)
    emit({"pid": args.pid, "alive": alive, "time": time.time()})
    return 0 if alive else 1


def cmd_procs(args) -> int:
    if getattr(args, "container", None):
        # The server is the container's tree; the CLI that started it is listed apart.
        cpid = container_pid(args.container)
        inside = proc_snapshot(cpid, args.known or ()) if cpid is not None else []
        emit({"time": time.time(), "procs": inside, "launcher": proc_snapshot(args.pid, (), args.sid),
              "container_pid": cpid, "cgroup": cgroup_memory(cpid) if cpid is not None else None})
        return 0
    emit({"time": time.time(), "procs": proc_snapshot(args.pid, args.known or (), args.sid)})
    return 0


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def cmd_stop(args) -> int:
    """SIGTERM the server's process group, wait up to --timeout, SIGKILL what is left, verify."""
    t0 = time.time()
    sid = args.sid
    pids, _ = members(args.pid, args.known or (), sid)
    if not pids:
        _reap_session(sid)
        _after_stop(args, stopped=True)
        emit({"stopped": True, "already_gone": True, "forced": False, "survivors": [], "seconds": 0.0})
        return 0
    snapshot = set(pids)  # children reparent to init when the leader dies; remember them now
    group = sid if sid is not None else args.pid
    try:
        os.killpg(group, signal.SIGTERM)  # the log keeper ignores it and records the shutdown
    except (ProcessLookupError, PermissionError):
        _signal_all([args.pid], signal.SIGTERM)
    deadline = t0 + args.timeout
    forced = False
    while True:
        left, _ = members(args.pid, snapshot, sid)
        if not left:
            break
        if time.time() >= deadline:
            forced = True
            _signal_all(left, signal.SIGKILL)
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            kill_deadline = time.time() + 5.0
            while time.time() < kill_deadline:
                left, _ = members(args.pid, snapshot, sid)
                if not left:
                    break
                time.sleep(0.05)
            break
        time.sleep(0.05)
    _reap_session(sid)
    survivors = []
    left, table = members(args.pid, snapshot, sid)
    for pid in left:
        survivors.append({"pid": pid, "comm": table[pid][4], "cmdline": cmdline_of(pid)})
    _after_stop(args, stopped=not survivors)
    emit({"stopped": not survivors, "already_gone": False, "forced": forced, "survivors": survivors,
          "seconds": round(time.time() - t0, 3), "members": sorted(snapshot)})
    return 0 if not survivors else 1


def _after_stop(args, stopped: bool) -> None:
    """The server is down: let its sampler write its last line and go, forget the server."""
    if getattr(args, "sampler", None):
        try:
            os.kill(args.sampler, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.time() + 3.0
        while time.time() < deadline and is_alive(args.sampler):
            time.sleep(0.02)
        if is_alive(args.sampler):
            try:
                os.kill(args.sampler, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if stopped and getattr(args, "state", None):
        try:
            os.unlink(os.path.expanduser(args.state))
        except OSError:
            pass


def _reap_session(sid) -> None:
    """Give the log keeper a moment to drain the last output, then make sure it is gone."""
    if sid is None:
        return
    deadline = time.time() + 2.0
    while time.time() < deadline and is_alive(sid):
        time.sleep(0.02)
    if is_alive(sid):
        try:
            os.killpg(sid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _run_tool(command: str, timeout: float):
    """Run a collector command with a hard timeout; a hanging tool is killed with its group."""
    t0 = time.time()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return {"rc": 127, "out": "", "err": str(exc), "dur": 0.0}
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
        timed_out = False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        out, err = proc.communicate()
        rc, timed_out = None, True
    return {"rc": rc, "timed_out": timed_out, "out": out.decode("utf-8", "replace"),
            "err": err.decode("utf-8", "replace")[-4000:], "dur": round(time.time() - t0, 3)}


def _children(pid: int):
    """Direct children from /proc/PID/task/*/children (no scan of every process)."""
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


class TreeWatch:
    """The server's processes, cheaply: walk down from the server and re-check the ones we know;
    scan all of /proc only now and then (for session members that were reparented)."""

    def __init__(self, root: int, sid, full_every: float = 5.0):
        self.root, self.sid, self.full_every = root, sid, full_every
        self.known = set()
        self.next_full = 0.0
        self.has_children_file = os.path.exists("/proc/%d/task/%d/children" % (os.getpid(), os.getpid()))

    def pids(self):
        now = time.time()
        if not self.has_children_file or now >= self.next_full:
            self.next_full = now + self.full_every
            pids, _ = members(self.root, self.known, self.sid)
        else:
            found = set()
            stack = [self.root]
            while stack:
                pid = stack.pop()
                if pid in found or pid == self.sid:
                    continue
                if is_alive(pid):
                    found.add(pid)
                    stack.extend(_children(pid))
            for pid in self.known:
                if pid not in found and pid != self.sid:
                    st = read_stat(pid)
                    if st is not None and st[3] not in ("Z", "X") and (self.sid is None or st[2] == self.sid):
                        found.add(pid)
            pids = sorted(found)
        self.known |= set(pids)
        return pids


def cmd_sample(args) -> int:
    """Sample until the server is gone, or we are told to stop (SIGTERM, or a stop file).

    /proc memory of the server's process tree every --interval seconds in this thread; each
    collector command in a thread of its own, at its own interval, with a hard timeout, so a
    tool that hangs (amd-smi can) never delays the memory samples.
    """
    import threading

    stop = threading.Event()

    def on_term(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    lock = threading.Lock()
    out = open(args.out, "a", buffering=1)

    def write(obj) -> None:
        with lock:
            out.write(json.dumps(obj) + "\n")

    def tool_loop(name: str, interval: float, command: str) -> None:
        while not stop.is_set():
            t = time.time()
            result = _run_tool(command, args.tool_timeout)
            result.update({"t": t, "kind": "tool", "collector": name})
            write(result)
            stop.wait(max(0.0, interval - (time.time() - t)))

    threads = []
    for spec in args.collector or []:
        name, _, rest = spec.partition("=")
        interval, _, command = rest.partition(":")
        th = threading.Thread(target=tool_loop, args=(name, float(interval), command), daemon=True)
        th.start()
        threads.append(th)
    container = getattr(args, "container", None)
    watch = ContainerWatch(container, args.pid, args.sid) if container else TreeWatch(args.pid, args.sid)

    def described(pids):
        procs = []
        for pid in pids:
            st = read_stat(pid)
            if st is None:
                continue
            rss, pss, swap = memory_of(pid)
            procs.append({"pid": pid, "ppid": st[0], "comm": st[4], "rss_kb": rss, "pss_kb": pss, "swap_kb": swap})
        return procs

    next_tick = time.time()
    while not stop.is_set():
        now = time.time()
        if container:
            inside, launcher, cpid = watch.pids()
            procs = described(inside)
            sample = {"t": now, "kind": "proc", "procs": procs, "launcher": described(launcher)}
            if cpid is not None:
                sample["cgroup"] = cgroup_memory(cpid)
            write(sample)
            gone = not procs and not launcher  # the CLI ends before or with the container
        else:
            procs = described(watch.pids())
            write({"t": now, "kind": "proc", "procs": procs})
            gone = not procs
        if gone or (args.stop_file and os.path.exists(args.stop_file)):
            break
        next_tick += args.interval
        if next_tick < time.time():
            next_tick = time.time()
        stop.wait(max(0.0, next_tick - time.time()))
    stop.set()
    for th in threads:
        th.join(timeout=args.tool_timeout + 1)
    out.close()
    return 0


def cmd_heartbeat(args) -> int:
    """Touch the lease files named on each stdin line (JSON list) until stdin closes.

    One of these runs per controller connection; its stdin is the SSH channel (or pipe), so
    when the controller goes away, so do the heartbeats, and the leases run out.
    """
    for line in sys.stdin:
        try:
            paths = json.loads(line)
        except ValueError:
            continue
        now = time.time()
        for path in paths:
            try:
                os.utime(os.path.expanduser(path), (now, now))
            except OSError:
                pass
    return 0


# Commands that run for as long as their caller lives: each needs a process of its own.
NOT_SERVED = ("serve", "heartbeat", "sample")


def cmd_serve(args) -> int:  # noqa: ARG001
    """Run commands sent as JSON lines on stdin until it closes; one reply line per request.

    Request: {"argv": ["stop", "123", ...], "stdin": "..." | null}. Reply: {"rc", "out", "err"},
    exactly what the same command run on its own would have exited with and printed. The
    controller keeps one of these per host, so a call costs a round trip on an open channel
    instead of an SSH exec (a login shell reading ~/.bashrc, then a python start: 0.2-0.5 s on
    a typical host, and CPU the host should spend on the server being measured).
    """
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    # Anything a command's children write to fd 1 or 2 must not land in the reply stream, and
    # nothing may read our requests from fd 0.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for line in requests:
        try:
            request = json.loads(line)
            argv = [str(a) for a in request["argv"]]
        except (ValueError, KeyError, TypeError):
            continue
        out, err = io.StringIO(), io.StringIO()
        if not argv or argv[0] in NOT_SERVED:
            rc = 2
            err.write("serve: %s cannot be served (it needs a process of its own)\n" % (argv[:1] or ["?"])[0])
        else:
            saved = sys.stdin, sys.stdout, sys.stderr
            sys.stdin, sys.stdout, sys.stderr = io.StringIO(request.get("stdin") or ""), out, err
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse on a bad argument
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except Exception:  # noqa: BLE001 - report it as the lone command would have
                rc = 1
                err.write(traceback.format_exc())
            finally:
                sys.stdin, sys.stdout, sys.stderr = saved
        reply = {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}
        try:
            replies.write((json.dumps(reply) + "\n").encode())
            replies.flush()
        except (BrokenPipeError, OSError):
            return 0
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    rest = data[data.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def _sysfs_sum(pattern: str):
    total, found = 0, False
    for path in glob.glob(pattern):
        value = _read(path)
        if value is not None and value.strip().isdigit():
            total += int(value.strip())
            found = True
    return total if found else None


def cmd_noise(args) -> int:
    """One snapshot of how busy the host is, for the controller to difference over a level:
    /proc/stat's CPU line, load average, CPU time of the server's tree and of the processes the
    controller names (itself, when local), CPU frequency and thermal throttle counts from sysfs."""
    out = {"t": time.time(), "clk_tck": os.sysconf("SC_CLK_TCK"), "ncpu": os.cpu_count() or 1}
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    ticks = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    out["cpu_total"] = sum(ticks[:8])
    out["cpu_idle"] = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    out["cpu_steal"] = ticks[7] if len(ticks) > 7 else 0
    load = (_read("/proc/loadavg") or "").split()
    out["loadavg"] = [float(x) for x in load[:3]] if len(load) >= 3 else None
    tree, _ = members(args.pid, args.known or (), args.sid) if args.pid else ([], None)
    if getattr(args, "also", None):  # a container's init: its tree is the server too
        tree = sorted(set(tree) | set(members(args.also)[0]))
    out["tree_ticks"] = sum(_cpu_ticks(p) for p in tree)
    me = os.getpid()
    excluded = set(args.exclude or ()) | {me}
    out["excluded_ticks"] = sum(_cpu_ticks(p) for p in excluded if p not in tree)
    out["freq_cur_khz"] = _sysfs_sum("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
    out["freq_max_khz"] = _sysfs_sum("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq")
    out["throttle_count"] = _sysfs_sum("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle/*_throttle_count")
    emit(out)
    return 0


def cmd_tools(args) -> int:
    """Several tool commands in one round trip: stdin is a JSON list of {"key", "command",
    "requires"}; a command whose required program is missing is skipped. Each has its own timeout."""
    out = {}
    for item in json.load(sys.stdin):
        if item.get("requires") and not shutil.which(item["requires"]):
            continue
        t = time.time()
        result = _run_tool(item["command"], float(item.get("timeout") or args.timeout))
        result["t"] = t
        out[item["key"]] = result
    emit(out)
    return 0


def cmd_tool(args) -> int:
    t = time.time()
    result = _run_tool(args.command, args.timeout)
    result["t"] = t
    emit(result)
    return 0


def cmd_port(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect((args.host, args.port))
        busy = True
    except OSError:
        busy = False
    finally:
        s.close()
    emit({"port": args.port, "in_use": busy})
    return 0


def cmd_fetch_sdist(args) -> int:
    """Download NAME==VERSION's sdist from PyPI once, check its sha256, unpack it; print the folder."""
    dest_root = os.path.expanduser(args.dest)
    os.makedirs(dest_root, exist_ok=True)
    marker = os.path.join(dest_root, "%s-%s.unpacked" % (args.name, args.version))
    if os.path.exists(marker):
        with open(marker) as f:
            path = f.read().strip()
        if os.path.isdir(path):
            _emit_path(args, path, False)
            return 0
    index = os.environ.get("LLMOPS_PYPI_URL", "https://pypi.org").rstrip("/")
    meta_url = "%s/pypi/%s/json" % (index, args.name)
    with urllib.request.urlopen(meta_url, timeout=60) as resp:
        meta = json.load(resp)
    files = (meta.get("releases") or {}).get(args.version) or []
    sdists = [u for u in files if u.get("packagetype") == "sdist"]
    if not sdists:
        return _fail(args, "no sdist for %s %s on %s" % (args.name, args.version, index))
    info = sdists[0]
    url = urllib.parse.urljoin(meta_url, info["url"])
    archive = os.path.join(dest_root, info["filename"])
    if not (os.path.exists(archive) and _sha256(archive) == info["digests"]["sha256"]):
        tmp = archive + ".part"
        with urllib.request.urlopen(url, timeout=600) as resp, open(tmp, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
        got = _sha256(tmp)
        if got != info["digests"]["sha256"]:
            os.unlink(tmp)
            return _fail(args, "sha256 mismatch for %s: got %s, PyPI says %s" % (url, got, info["digests"]["sha256"]))
        os.replace(tmp, archive)
    unpack_to = os.path.join(dest_root, "unpacked-%s-%s" % (args.name, args.version))
    shutil.rmtree(unpack_to, ignore_errors=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(unpack_to, filter="data")
        else:  # Python < 3.12 without the filter argument
            for member in tar.getmembers():
                target = os.path.realpath(os.path.join(unpack_to, member.name))
                if not target.startswith(os.path.realpath(unpack_to) + os.sep):
                    raise RuntimeError("unsafe path in archive: %s" % member.name)
            tar.extractall(unpack_to)
    tops = os.listdir(unpack_to)
    path = os.path.join(unpack_to, tops[0]) if len(tops) == 1 else unpack_to
    with open(marker + ".tmp", "w") as f:
        f.write(path + "\n")
    os.replace(marker + ".tmp", marker)
    _emit_path(args, path, True)
    return 0


def _fail(args, message: str) -> int:
    if getattr(args, "path_only", False):
        sys.stderr.write("error: %s\n" % message)
    else:
        emit({"error": message})
    return 1


def _emit_path(args, path: str, changed: bool) -> None:
    if args.path_only:
        sys.stdout.write(path + "\n")
    else:
        emit({"path": path, "changed": changed})


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_facts(args) -> int:
    from_facts = _facts(args.tool_timeout)
    emit(from_facts)
    return 0


def _read(path: str, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _facts(tool_timeout: float):
    facts = {"time": time.time(), "hostname": socket.gethostname()}
    uname = os.uname()
    facts["kernel"] = {"release": uname.release, "version": uname.version, "machine": uname.machine,
                       "cmdline": _read("/proc/cmdline", "")}
    os_release = {}
    for line in (_read("/etc/os-release", "") or "").splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            os_release[k] = v.strip().strip('"')
    facts["os"] = {"name": os_release.get("PRETTY_NAME") or os_release.get("NAME"), "id": os_release.get("ID"),
                   "version": os_release.get("VERSION_ID")}
    cpu_model = None
    for line in (_read("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    facts["cpu"] = {"model": cpu_model, "count": os.cpu_count()}
    mem = {}
    for line in (_read("/proc/meminfo", "") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].rstrip(":") in ("MemTotal", "MemAvailable", "SwapTotal"):
            mem[parts[0].rstrip(":")] = int(parts[1]) * 1024
    facts["memory"] = {"total_bytes": mem.get("MemTotal"), "available_bytes": mem.get("MemAvailable"),
                       "swap_bytes": mem.get("SwapTotal")}
    tools = {}
    for tool in ("amd-smi", "rocm-smi", "nvidia-smi", "nvcc", "hipcc", "cmake", "ninja", "docker", "podman", "git"):
        tools[tool] = shutil.which(tool)
    facts["tools"] = tools
    facts["python"] = sys.version.split()[0]
    facts["gpus_sysfs"] = _drm_cards()
    facts["platform"] = _platform()
    return facts


# Module parameters that decide how much memory an APU's GPU may map (gttsize, ttm pages_limit)
# and the power settings that move benchmark numbers; each is left out where sysfs lacks it.
PLATFORM_FILES = {
    "amdgpu.gttsize": "/sys/module/amdgpu/parameters/gttsize",
    "amdgpu.vramlimit": "/sys/module/amdgpu/parameters/vramlimit",
    "amdgpu.gartsize": "/sys/module/amdgpu/parameters/gartsize",
    "ttm.pages_limit": "/sys/module/ttm/parameters/pages_limit",
    "ttm.page_pool_size": "/sys/module/ttm/parameters/page_pool_size",
    "amdttm.pages_limit": "/sys/module/amdttm/parameters/pages_limit",
    "amdgpu.version": "/sys/module/amdgpu/version",
    "cpu_governor": "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
    "cpu_scaling_driver": "/sys/devices/system/cpu/cpu0/cpufreq/scaling_driver",
    "cpu_energy_preference": "/sys/devices/system/cpu/cpu0/cpufreq/energy_performance_preference",
    "platform_profile": "/sys/firmware/acpi/platform_profile",
    "bios_vendor": "/sys/class/dmi/id/bios_vendor",
    "bios_version": "/sys/class/dmi/id/bios_version",
    "bios_date": "/sys/class/dmi/id/bios_date",
    "board_name": "/sys/class/dmi/id/board_name",
    "product_name": "/sys/class/dmi/id/product_name",
}


def _platform():
    out = {}
    for key, path in PLATFORM_FILES.items():
        value = _read(path)
        if value:
            out[key] = value
    return out


def _drm_cards(base="/sys/class/drm"):
    cards = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return cards
    for name in names:
        if not name.startswith("card") or "-" in name:
            continue
        dev = os.path.join(base, name, "device")
        vendor = _read(os.path.join(dev, "vendor"))
        if vendor is None:
            continue
        card = {"card": name, "vendor_id": vendor, "device_id": _read(os.path.join(dev, "device")),
                "pci": os.path.basename(os.path.realpath(dev))}
        for key in ("mem_info_vram_total", "mem_info_vram_used", "mem_info_gtt_total", "mem_info_gtt_used",
                    "mem_info_vis_vram_total"):
            value = _read(os.path.join(dev, key))
            if value is not None and value.isdigit():
                card[key] = int(value)
        # amdgpu shows its VBIOS and each firmware block's version (fw_version/mec_fw_version...)
        vbios = _read(os.path.join(dev, "vbios_version"))
        if vbios:
            card["vbios_version"] = vbios
        fw_dir = os.path.join(dev, "fw_version")
        try:
            fw_names = sorted(os.listdir(fw_dir))
        except OSError:
            fw_names = []
        firmware = {}
        for fw in fw_names:
            value = _read(os.path.join(fw_dir, fw))
            if value:
                firmware[fw[:-len("_fw_version")] if fw.endswith("_fw_version") else fw] = value
        if firmware:
            card["firmware"] = firmware
        cards.append(card)
    return cards


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hostagent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info")
    p.add_argument("--have", nargs="*", help="files the controller wants here: those missing are listed")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("start")
    p.add_argument("--log", required=True)
    p.add_argument("--env-file")
    p.add_argument("--pidfile")
    p.add_argument("--cwd")
    p.add_argument("--no-exec", dest="exec_prefix", action="store_false")
    p.add_argument("--no-stamp", dest="stamp", action="store_false", help="no log keeper (write the log directly)")
    p.add_argument("--lease", help="file the controller keeps touching; stale for --lease-timeout s = stop")
    p.add_argument("--lease-timeout", type=float, default=0.0)
    p.add_argument("--command", required=True)
    p.set_defaults(fn=cmd_start)

    sub.add_parser("launch").set_defaults(fn=cmd_launch)

    p = sub.add_parser("state")
    p.add_argument("path")
    p.set_defaults(fn=cmd_state)

    p = sub.add_parser("alive")
    p.add_argument("pid", type=int)
    p.set_defaults(fn=cmd_alive)

    p = sub.add_parser("procs")
    p.add_argument("pid", type=int)
    p.add_argument("--sid", type=int)
    p.add_argument("--known", type=int, nargs="*")
    p.add_argument("--container", help="ENGINE:NAME: the server runs in this container")
    p.set_defaults(fn=cmd_procs)

    p = sub.add_parser("stop")
    p.add_argument("pid", type=int)
    p.add_argument("--sid", type=int)
    p.add_argument("--sampler", type=int, help="sampler to stop once the server is down")
    p.add_argument("--state", help="state file to remove once the server is down")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--known", type=int, nargs="*")
    p.set_defaults(fn=cmd_stop)

    p = sub.add_parser("sample")
    p.add_argument("pid", type=int)
    p.add_argument("--sid", type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--collector", action="append", help="NAME=INTERVAL:COMMAND")
    p.add_argument("--tool-timeout", type=float, default=10.0)
    p.add_argument("--stop-file")
    p.add_argument("--container", help="ENGINE:NAME: sample this container's processes and cgroup")
    p.set_defaults(fn=cmd_sample)

    sub.add_parser("heartbeat").set_defaults(fn=cmd_heartbeat)
    sub.add_parser("serve").set_defaults(fn=cmd_serve)

    p = sub.add_parser("noise")
    p.add_argument("pid", type=int)
    p.add_argument("--sid", type=int)
    p.add_argument("--known", type=int, nargs="*")
    p.add_argument("--also", type=int, help="another root whose tree is the server's (a container's init)")
    p.add_argument("--exclude", type=int, nargs="*", help="more processes that are not other work (the controller)")
    p.set_defaults(fn=cmd_noise)

    p = sub.add_parser("tools")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(fn=cmd_tools)

    p = sub.add_parser("tool")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("command")
    p.set_defaults(fn=cmd_tool)

    p = sub.add_parser("port")
    p.add_argument("port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(fn=cmd_port)

    p = sub.add_parser("fetch-sdist")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("dest")
    p.add_argument("--path-only", action="store_true")
    p.set_defaults(fn=cmd_fetch_sdist)

    p = sub.add_parser("facts")
    p.add_argument("--tool-timeout", type=float, default=10.0)
    p.set_defaults(fn=cmd_facts)

    args = parser.parse_args(argv)
    for name in ("log", "env_file", "pidfile", "cwd", "out", "stop_file", "lease"):
        value = getattr(args, name, None)
        if value:
            setattr(args, name, os.path.expanduser(value))  # paths may arrive as literal ~/...
    try:
        return args.fn(args)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - one JSON error line is what the controller reads
        return _fail(args, "%s: %s" % (type(exc).__name__, exc))


if __name__ == "__main__":
    sys.exit(main())
