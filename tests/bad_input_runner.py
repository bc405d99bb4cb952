"""Run one `llmops` command as the only child of this process and report its cost.

Usage: python bad_input_runner.py REPORT.json ARGS...  (cwd and env are inherited). The child
runs under an address-space rlimit; afterwards RUSAGE_CHILDREN holds exactly its CPU time and
peak RSS (this process has no other children), written to REPORT.json with its exit code.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

ADDRESS_SPACE = 2 * 1024 ** 3  # an unbounded expansion dies here quickly instead of eating the machine
WALL_SECONDS = 30  # a hang guard only (a FIFO read would block for ever)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def main() -> None:
    report, args = sys.argv[1], sys.argv[2:]
    try:
        proc = subprocess.run([sys.executable, "-m", "llmops", *args], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=WALL_SECONDS, preexec_fn=_limit)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = "timeout", exc.stdout or b"", exc.stderr or b""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(report, "w", encoding="utf-8") as f:
        json.dump({"code": code, "stdout": out.decode("utf-8", "replace"), "stderr": err.decode("utf-8", "replace"),
                   "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024}, f)


if __name__ == "__main__":
    main()
