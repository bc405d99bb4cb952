"""A pytest plugin: a SIGTERM to a test process ends it as Ctrl-C does, with every fixture's
teardown run (sshd, network namespaces, emulators, servers), instead of leaving them behind.

Python's default for SIGTERM is to die on the spot; `kill`, `timeout`, a CI runner's cancel and
the fast tier's own controller (tests/fast_tier.py) all send it. Also `die_with_parent`, for
processes a test starts that must not outlive a test process killed outright (SIGKILL skips
every teardown)."""

from __future__ import annotations

import ctypes
import signal
import threading


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: object) -> None:
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)


def die_with_parent() -> None:
    """A preexec_fn: the child gets a SIGTERM when the process that started it dies, however it
    dies (PR_SET_PDEATHSIG, Linux; kept across exec)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
