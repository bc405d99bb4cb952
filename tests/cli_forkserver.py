"""A process that imports llmops once and forks a child per `llmops` command, reporting each
child's exit code, output, CPU time and peak RSS (os.wait4 gives exactly the child's usage).

Why: a fresh `python -m llmops` spends 0.3-0.7 s of CPU importing llmops before the command
begins; the fast tier runs a few hundred commands (the bad-input corpus alone about 200), which
cost over a minute of its two cores. A forked child starts with llmops imported, so its own CPU is
the command's work. The child is still a process of its own (exit code, stdout/stderr, cwd,
environment, rlimits), running the same entry point as `python -m llmops` (llmops.cli.main).
What it cannot show is the import itself: the cost is measured once here (`startup_cpu_s`) and
tests that bound CPU add it back; bounds read from LLMOPS_* variables at import are the server's,
so tests/cli_forks.py sends a command whose LLMOPS_* or PYTHON* variables differ to a fresh
interpreter instead. Tests that look for the llmops process by its command line, and the real
tier, never come here (tests/conftest.py).

Protocol: one JSON request per stdin line {"args", "cwd", "timeout", "env", "stdin",
"limit_as"}; one JSON answer per line {"code", "stdout", "stderr", "cpu_s", "max_rss_mb"}.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import json
import os
import resource
import signal
import sys
import tempfile
import time

import llmops.cli  # noqa: E402 - the point of this process: import once, before any fork
from llmops.plugins.registry import GROUPS

# The modules commands import lazily (apply, check, inventory, report, compare, docs, bench).
# Imported here, their cost moves from every child into STARTUP, which a test bounding CPU adds to
# each command: it is then charged for every one of them, used or not (at least as strict as a
# fresh interpreter). The plugin registry is not read here: a test may install a plugin.
PRELOAD = ("llmops.apply", "llmops.load.playbook", "llmops.load.sources", "llmops.plan.planner", "llmops.plan.text",
           "llmops.load.ansible_list", "llmops.load.ansible_tools", "llmops.record.reader", "llmops.report.command",
           "llmops.report.html", "llmops.report.setupdoc", "llmops.execute.diff", "llmops.execute.probe",
           "llmops.cli_bench", "llmops.cli_quality", "llmops.cli_docs")
for _name in PRELOAD:
    importlib.import_module(_name)
# The built-in plugins' modules too (about 0.1 s of CPU in every child otherwise): imported, not
# registered, so each child still discovers the plugins installed when it runs.
for _group in GROUPS.values():
    for _ep in importlib.metadata.entry_points(group=_group):
        if _ep.dist is not None and _ep.dist.name == "llmops":
            importlib.import_module(_ep.module)

# What is imported so far moves to the permanent generation: a child's collections then skip it,
# instead of walking (and so copying, page by page) the whole inherited heap.
gc.freeze()
STARTUP = resource.getrusage(resource.RUSAGE_SELF)


def _child(request: dict, paths: dict[str, str]) -> None:
    try:
        os.chdir(request["cwd"])
        if request.get("env") is not None:
            os.environ.clear()
            os.environ.update(request["env"])
        if request.get("limit_as"):
            resource.setrlimit(resource.RLIMIT_AS, (request["limit_as"], request["limit_as"]))
        os.dup2(os.open(paths["in"], os.O_RDONLY), 0)
        os.dup2(os.open(paths["out"], os.O_WRONLY | os.O_TRUNC), 1)
        os.dup2(os.open(paths["err"], os.O_WRONLY | os.O_TRUNC), 2)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sys.argv = ["llmops", *request["args"]]
        code = 0
        try:
            llmops.cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - as Python itself does: a traceback and exit code 1
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the server
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(70)


def _serve_one(request: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, k) for k in ("in", "out", "err")}
        with open(paths["in"], "w", encoding="utf-8") as f:
            f.write(request.get("stdin") or "")
        for k in ("out", "err"):
            open(paths[k], "w").close()
        pid = os.fork()
        if pid == 0:
            _child(request, paths)
        deadline = time.monotonic() + float(request.get("timeout") or 30)
        code: object = None
        pause = 0.0005
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:  # a hang guard (a FIFO read would block for ever)
                os.kill(pid, signal.SIGKILL)
                _, status, usage = os.wait4(pid, 0)
                code = "timeout"
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        with open(paths["out"], "rb") as f:
            out = f.read().decode("utf-8", "replace")
        with open(paths["err"], "rb") as f:
            err = f.read().decode("utf-8", "replace")
    return {"code": code, "stdout": out, "stderr": err, "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024}


def serve() -> None:
    print(json.dumps({"startup_cpu_s": STARTUP.ru_utime + STARTUP.ru_stime,
                      "startup_rss_mb": STARTUP.ru_maxrss / 1024}), flush=True)
    for line in sys.stdin:
        print(json.dumps(_serve_one(json.loads(line))), flush=True)


if __name__ == "__main__":
    serve()
