"""A pure parser for the Prometheus text exposition format (what `/metrics` returns).

Only what llmops reads from llama-server (`--metrics`) and vLLM: `# TYPE` lines and samples
`name{label="value",...} value [timestamp]`. A line that does not parse is kept as an error
(line number and why) instead of failing the whole page: a server that garbles one series
still gives us the others, and the caller says which were missing.

Values are floats as the format allows them (`1.5e+06`, `+Inf`, `NaN`); llama-server prints
its values with C++'s default six significant digits, which matters for deltas of large
counters (docs/metrics.md, "Cross-check with the server").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass
class Exposition:
    samples: list[Sample] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)  # metric family -> counter | gauge | histogram ...
    errors: list[str] = field(default_factory=list)  # "line N: why"

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def total(self, name: str) -> float | None:
        """The sum over every label set of `name` (vLLM labels each engine and model), or None
        when the page has no such sample. NaN samples make the total NaN: the caller refuses it."""
        values = [s.value for s in self.samples if s.name == name]
        return math.fsum(values) if values else None


def parse(text: str) -> Exposition:
    out = Exposition()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                out.types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE.match(line)
        if m is None:
            out.errors.append(f"line {number}: not a sample (expected NAME{{LABELS}} VALUE): {line[:80]!r}")
            continue
        name, label_text, value_text = m.group(1), m.group(2), m.group(3)
        labels = _labels(label_text) if label_text else ()
        if labels is None:
            out.errors.append(f"line {number}: bad labels in {line[:80]!r} (expected name=\"value\" pairs)")
            continue
        value = _value(value_text)
        if value is None:
            out.errors.append(f"line {number}: {value_text[:40]!r} is not a number")
            continue
        out.samples.append(Sample(name, labels, value))
    return out


def _labels(text: str) -> tuple[tuple[str, str], ...] | None:
    pairs = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None:
            return None
        value = re.sub(r"\\.", lambda e: _UNESCAPE.get(e.group(0), e.group(0)), m.group(2))
        pairs.append((m.group(1), value))
        pos = m.end()
    return tuple(pairs)


def _value(text: str) -> float | None:
    low = text.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None
