"""A process that imports llmops once and forks a child per `llmops` command, reporting each
child's exit code, output, CPU time and peak RSS (os.wait4 gives exactly the child's usage).

Why: the bad-input corpus runs some 190 commands; a fresh interpreter for each spent about
0.3 s of CPU importing llmops before the command began (a minute of the fast tier). A forked
child starts with llmops imported, so its own CPU is the command's work; the import cost is
measured once here (`startup_cpu_s`) and the test adds it back, so each case's bound is still
what a user pays (measured side by side here: within 0.06 s of CPU and 7 MB of RSS of a fresh
interpreter, the fork reading lower). Commands with their own environment (bounds are read at import) are run by
tests/bad_input_runner.py in a fresh interpreter instead.

Protocol: one JSON request per stdin line {"args", "cwd", "timeout"}; one JSON answer per line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import time

ADDRESS_SPACE = 2 * 1024 ** 3  # as bad_input_runner.py: an unbounded expansion dies here quickly

import importlib  # noqa: E402

import llmops.cli  # noqa: E402 - the point of this process: import once, before any fork

# The modules the corpus's commands import lazily (apply, check, inventory, report, compare,
# docs). Imported here, their cost moves from every child into STARTUP, which the test adds to
# each case: a case is then charged for every one of them, whether it uses it or not (a bound
# at least as strict as a fresh interpreter's).
PRELOAD = ("llmops.apply", "llmops.load.playbook", "llmops.load.sources", "llmops.plan.planner", "llmops.plan.text",
           "llmops.load.ansible_list", "llmops.load.ansible_tools", "llmops.record.reader", "llmops.report.command",
           "llmops.report.html", "llmops.report.setupdoc", "llmops.execute.diff", "llmops.cli_bench",
           "llmops.cli_quality")
for _name in PRELOAD:
    importlib.import_module(_name)
from llmops.plugins.registry import registry  # noqa: E402

registry().all()  # entry points read once: each child would read the same metadata again

STARTUP = resource.getrusage(resource.RUSAGE_SELF)


def _child(args: list[str], cwd: str, out_path: str, err_path: str) -> None:
    try:
        os.chdir(cwd)
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(os.open(out_path, os.O_WRONLY | os.O_TRUNC), 1)
        os.dup2(os.open(err_path, os.O_WRONLY | os.O_TRUNC), 2)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sys.argv = ["llmops", *args]
        code = 0
        try:
            llmops.cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the server
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(70)


def serve() -> None:
    print(json.dumps({"startup_cpu_s": STARTUP.ru_utime + STARTUP.ru_stime,
                      "startup_rss_mb": STARTUP.ru_maxrss / 1024}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryDirectory() as tmp:
            out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
            open(out_path, "w").close()
            open(err_path, "w").close()
            pid = os.fork()
            if pid == 0:
                _child(request["args"], request["cwd"], out_path, err_path)
            deadline = time.monotonic() + float(request.get("timeout", 30))
            code: object = None
            while True:
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:  # a hang guard only (a FIFO read would block for ever)
                    os.kill(pid, signal.SIGKILL)
                    _, status, usage = os.wait4(pid, 0)
                    code = "timeout"
                    break
                time.sleep(0.005)
            with open(out_path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
            with open(err_path, "rb") as f:
                err = f.read().decode("utf-8", "replace")
        print(json.dumps({"code": code, "stdout": out, "stderr": err, "cpu_s": usage.ru_utime + usage.ru_stime,
                          "max_rss_mb": usage.ru_maxrss / 1024}), flush=True)


if __name__ == "__main__":
    serve()
