"""A Jinja sandbox that cannot be made to eat the machine: bounded integers, strings, time.

Jinja's own sandbox stops attribute tricks, not arithmetic: `{{ 7 ** 123456789 }}` runs for
minutes and `{{ 'x' * 10**10 }}` allocates 10 GB. Here `**`, `*` and `+` are intercepted
(which also stops Jinja from folding them at compile time), their result size is checked
from the operands *before* computing, and every render is given a wall-clock budget.
The bounds live in llmops.limits with the environment variables that raise them.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmops.limits import (
    MAX_TEMPLATE_INT_BITS,
    MAX_TEMPLATE_OUTPUT,
    MAX_TEMPLATE_SECONDS,
    MAX_TEMPLATE_TOTAL_SECONDS,
    SLOW_TEMPLATE_SECONDS,
    cpu_deadline,
)


class TemplateTooBig(Exception):
    """A template computed (or was about to compute) something past a bound; the message says which."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


_WIDTH = re.compile(r"\d+")
# str methods and filters whose integer arguments (or format widths) size their output.
_SIZING_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map", "__mod__"}
_SIZING_FILTERS = ("center", "indent", "format", "wordwrap", "truncate", "batch", "slice")


def _check_widths(values: Any) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TEMPLATE_OUTPUT:
            raise TemplateTooBig(f"a width or count of {value} is more than {MAX_TEMPLATE_OUTPUT} "
                                 "(LLMOPS_MAX_TEMPLATE_CHARS raises the bound)")
        if isinstance(value, str) and "%" in value or isinstance(value, str) and "{" in value:
            for digits in _WIDTH.findall(value):
                if len(digits) > 7 or int(digits) > MAX_TEMPLATE_OUTPUT:
                    raise TemplateTooBig(f"a format width of {digits} is more than {MAX_TEMPLATE_OUTPUT} "
                                         "(LLMOPS_MAX_TEMPLATE_CHARS raises the bound)")


def _bounded_filter(filter_: Any) -> Any:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_widths(list(args) + list(kwargs.values()))
        return check_output(filter_(*args, **kwargs))

    for attr in ("jinja_pass_arg",):  # keep @pass_context / @pass_environment markers
        if hasattr(filter_, attr):
            setattr(bounded, attr, getattr(filter_, attr))
    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*", "+", "%"})
    intercepted_unops = frozenset()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for name in _SIZING_FILTERS:
            if name in self.filters:
                self.filters[name] = _bounded_filter(self.filters[name])

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str) and getattr(target, "__name__", "") in _SIZING_METHODS:
            _check_widths([owner, *args, *kwargs.values()])
        return check_output(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _int_bits(left) > 1 and isinstance(right, int) and not isinstance(right, bool):
            if right > 0 and _int_bits(left) * right > MAX_TEMPLATE_INT_BITS:
                raise TemplateTooBig(f"{left} ** {right} is larger than {MAX_TEMPLATE_INT_BITS} bits "
                                     "(LLMOPS_MAX_TEMPLATE_INT_BITS raises the bound)")
        if operator == "*":
            ints = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
            if len(ints) == 2 and _int_bits(left) + _int_bits(right) > MAX_TEMPLATE_INT_BITS:
                raise TemplateTooBig(f"a product larger than {MAX_TEMPLATE_INT_BITS} bits "
                                     "(LLMOPS_MAX_TEMPLATE_INT_BITS raises the bound)")
            if len(ints) == 1:
                times = ints[0]
                other = right if times is left else left
                if _size(other) * max(times, 0) > MAX_TEMPLATE_OUTPUT:
                    raise TemplateTooBig(f"repetition would make more than {MAX_TEMPLATE_OUTPUT} items "
                                         "(LLMOPS_MAX_TEMPLATE_CHARS raises the bound)")
        if operator == "%" and isinstance(left, str):
            _check_widths([left])
        if operator == "+" and _size(left) + _size(right) > MAX_TEMPLATE_OUTPUT:
            raise TemplateTooBig(f"a value longer than {MAX_TEMPLATE_OUTPUT} characters "
                                 "(LLMOPS_MAX_TEMPLATE_CHARS raises the bound)")
        return super().call_binop(context, operator, left, right)


def check_output(text: Any) -> Any:
    """Refuse a rendered value longer than the output bound (self-doubling variables end here)."""
    if _size(text) > MAX_TEMPLATE_OUTPUT:
        raise TemplateTooBig(f"template output is longer than {MAX_TEMPLATE_OUTPUT} characters "
                             "(LLMOPS_MAX_TEMPLATE_CHARS raises the bound)")
    return text


_timing = False
_slow_spent = 0.0  # CPU seconds spent so far in renders slower than SLOW_TEMPLATE_SECONDS


@contextlib.contextmanager
def time_limit(seconds: float = MAX_TEMPLATE_SECONDS) -> Iterator[None]:
    """Interrupt a render that uses more than `seconds` of CPU, or more than what is left of
    the command's budget for slow renders (main thread only: signals need it).

    CPU time (ITIMER_PROF), not wall time: on a busy host a wall-clock bound let a template
    burn as much CPU as the machine gave it, and the bound is about what hostile input costs."""
    global _timing, _slow_spent
    if _timing or threading.current_thread() is not threading.main_thread():
        yield  # nested renders share the outermost budget; other threads get no signals
        return
    left = MAX_TEMPLATE_TOTAL_SECONDS - _slow_spent
    if left < seconds:
        reason = (f"templates of this command took more than {MAX_TEMPLATE_TOTAL_SECONDS:g} s of CPU together "
                  "(LLMOPS_MAX_TEMPLATE_TOTAL_SECONDS raises the bound)")
    else:
        reason = f"template took longer than {seconds:g} s of CPU (LLMOPS_MAX_TEMPLATE_SECONDS raises the bound)"
    started = time.process_time()
    _timing = True
    try:
        with cpu_deadline(min(seconds, left), lambda: TemplateTooBig(reason)):
            yield
    finally:
        _timing = False
        spent = time.process_time() - started
        if spent > SLOW_TEMPLATE_SECONDS:
            _slow_spent += spent
