"""Where a value sits in a JSON text: a path like ("cells", 0, "levels", 1, "gen_tps") -> line, col.

json.loads forgets positions, and a located refusal needs them. Positions are only wanted when
something is wrong, so nothing is indexed up front: `locate` walks the text down the one path
asked for, skipping every sibling with the C decoder (raw_decode), which keeps the cost at one
pass over the part of the file before the value.

The text must already be valid JSON (the reader parsed it first); on anything unexpected the
walk stops and answers the deepest position it reached.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

_WS = " \t\n\r"
# Skipping a sibling only needs its end, but NaN/Infinity must not stop the walk.
_DECODER = json.JSONDecoder(parse_constant=lambda name: None)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _child(text: str, i: int, step: str | int) -> int | None:
    """The offset of member `step` of the container starting at `i`, or None when absent."""
    opener = text[i] if i < len(text) else ""
    if opener == "{" and isinstance(step, str):
        i = _skip_ws(text, i + 1)
        while i < len(text) and text[i] != "}":
            key, i = _DECODER.raw_decode(text, i)
            i = _skip_ws(text, i)
            i = _skip_ws(text, i + 1)  # past ':'
            if key == step:
                return i
            _, i = _DECODER.raw_decode(text, i)
            i = _skip_ws(text, i)
            if i < len(text) and text[i] == ",":
                i = _skip_ws(text, i + 1)
        return None
    if opener == "[" and isinstance(step, int):
        i = _skip_ws(text, i + 1)
        index = 0
        while i < len(text) and text[i] != "]":
            if index == step:
                return i
            _, i = _DECODER.raw_decode(text, i)
            i = _skip_ws(text, i)
            if i < len(text) and text[i] == ",":
                i = _skip_ws(text, i + 1)
            index += 1
        return None
    return None


def offset_of(text: str, path: Sequence[str | int]) -> int:
    """The offset of the value at `path`; the deepest existing ancestor's when part is missing."""
    at = _skip_ws(text, 0)
    for step in path:
        try:
            found = _child(text, at, step)
        except ValueError:  # not valid JSON after all: the position reached is the best answer
            return at
        if found is None:
            return at
        at = found
    return at


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of `offset`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def locate(text: str, path: Sequence[str | int]) -> tuple[int, int]:
    return line_col(text, offset_of(text, path))


def dotted(path: Sequence[str | int]) -> str:
    """('cells', 0, 'levels', 1, 'gen_tps') -> 'cells[0].levels[1].gen_tps'."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "the top level"
