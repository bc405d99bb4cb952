"""Every bound llmops puts on its inputs, in one place, each raised by one environment variable.

A bound is checked *before* the work it protects (a file is read at most MAX_BYTES + 1 bytes,
a YAML document is counted while it is composed, a host range is sized before it is expanded),
so that a 20-byte input cannot cost gigabytes. The defaults are far above any real playbook;
docs/limits.md lists them with the variable that raises each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator


def _env_int(name: str, default: int) -> int:
    """An integer bound from the environment; a missing, malformed or non-positive value keeps the default."""
    text = os.environ.get(name, "")
    try:
        value = int(text)
    except ValueError:
        return default
    return value if value > 0 else default


def _env_float(name: str, default: float) -> float:
    """A bound in seconds from the environment; a missing, malformed, non-finite or non-positive value keeps the default."""
    text = os.environ.get(name, "")
    try:
        value = float(text)
    except ValueError:
        return default
    return value if 0 < value < float("inf") else default


MAX_BYTES = _env_int("LLMOPS_MAX_FILE_BYTES", 1024 * 1024)            # one playbook/inventory/-e file (~0.4 s to parse)
# Parsing is the slow part (ruamel composes ~20,000 nodes a second on a busy machine): the written nodes are
# bounded tighter than what aliases expand to, so that a refusal costs well under a second.
MAX_PARSED_NODES = _env_int("LLMOPS_MAX_YAML_PARSED_NODES", 10_000)     # nodes written in one document
MAX_NODES = _env_int("LLMOPS_MAX_YAML_NODES", 100_000)                 # nodes of one document, aliases expanded
MAX_DEPTH = _env_int("LLMOPS_MAX_YAML_DEPTH", 64)                       # nesting of lists and mappings
MAX_RANGE_HOSTS = _env_int("LLMOPS_MAX_RANGE_HOSTS", 10_000)           # hosts from one INI/YAML host pattern
MAX_HOSTS = _env_int("LLMOPS_MAX_HOSTS", 10_000)                       # hosts in one inventory
# A matrix multiplies: four options of 30 values each made 810,000 variants and took `check` past
# 2 GB before anything was refused. Both counts are known before anything is expanded.
MAX_VARIANTS = _env_int("LLMOPS_MAX_VARIANTS", 256)                   # variants of one backend entry
MAX_CELLS = _env_int("LLMOPS_MAX_CELLS", 1_000)                        # hosts x variants in one plan (~2 ms each)
MAX_TEMPLATE_OUTPUT = _env_int("LLMOPS_MAX_TEMPLATE_CHARS", 1_000_000)  # characters one template may produce
MAX_TEMPLATE_INT_BITS = _env_int("LLMOPS_MAX_TEMPLATE_INT_BITS", 4096)  # size of integers templates compute
MAX_TEMPLATE_SECONDS = _env_float("LLMOPS_MAX_TEMPLATE_SECONDS", 0.3)   # CPU time of one template (whole value)
# All slow templates of one command together: ten values that each stay under the bound above must
# not add up to five seconds. Renders under SLOW_TEMPLATE_SECONDS are free (a 200-host plan renders
# 1,200 commands in 0.11 s), so that a large lab never meets this bound.
MAX_TEMPLATE_TOTAL_SECONDS = _env_float("LLMOPS_MAX_TEMPLATE_TOTAL_SECONDS", 0.6)
SLOW_TEMPLATE_SECONDS = 0.01
MAX_PATTERN_SECONDS = _env_float("LLMOPS_MAX_PATTERN_SECONDS", 0.3)  # CPU to match one ~regex host pattern
MAX_SSE_LINE = _env_int("LLMOPS_MAX_SSE_LINE_BYTES", 8 * 1024 * 1024)  # one line of a streamed response
MAX_EXTRA_VARS = _env_int("LLMOPS_MAX_EXTRA_VARS_BYTES", 64 * 1024)  # one inline -e value (use -e @FILE beyond)


@contextlib.contextmanager
def cpu_deadline(seconds: float, error: Callable[[], Exception]) -> Iterator[None]:
    """Raise `error()` in the code inside once it has used `seconds` of this process's CPU.

    CPU time (ITIMER_PROF), not wall time: a bound on what hostile input costs must not depend on
    how busy the host is. Only the main thread gets signals; elsewhere the code runs unbounded."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise error()

    previous = signal.signal(signal.SIGPROF, expired)
    signal.setitimer(signal.ITIMER_PROF, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)

