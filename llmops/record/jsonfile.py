"""Read the JSON files of a run directory (meta.json, results.json, plan.json) with located errors.

A run directory can be corrupted (a crash mid-write, a hand edit, a copy from a newer llmops);
every reader goes through `load_json` and `checked_object` (`read_object` is both), which say
FILE:LINE:COL what is wrong instead of letting a JSONDecodeError, a KeyError or NaN arithmetic
escape later. results.json is then checked field by field by llmops.record.reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, Problem
from llmops.record.jsonpos import dotted, locate

MAX_JSON_BYTES = 512 * 1024 * 1024  # results of a long sweep are big, but not this big


class NonFinite:
    """What NaN, Infinity and -Infinity parse to, so the reader can say where they are."""

    def __init__(self, name: str) -> None:
        self.name = name


def _find_non_finite(data: Any, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str] | None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, path)]
    while stack:  # iterative: a deep document must not hit the recursion limit here
        value, at = stack.pop()
        if isinstance(value, NonFinite):
            return at, value.name
        if isinstance(value, dict):
            stack.extend((v, at + (k,)) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, at + (i,)) for i, v in reversed(list(enumerate(value))))
    return None


def load_json(path: Path) -> tuple[str, Any]:
    """The text of `path` and its JSON value; refuses non-files, huge files, bad JSON and
    NaN/Infinity (located where they are)."""
    name = str(path)
    if not path.is_file():
        raise ConfigError(Problem(name, 1, 1, "file not found or not a regular file", "a file written by llmops"))
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise ConfigError(Problem(name, 1, 1, f"cannot read file: {exc.strerror}", "a readable file")) from None
    if len(raw) > MAX_JSON_BYTES:
        raise ConfigError(Problem(name, 1, 1, "file too large", f"at most {MAX_JSON_BYTES} bytes"))
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=NonFinite)
    except UnicodeDecodeError:
        raise ConfigError(Problem(name, 1, 1, "not UTF-8 text", "a JSON file written by llmops")) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(Problem(name, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}",
                                  "a JSON file written by llmops")) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(Problem(name, 1, 1, f"invalid JSON: {exc}", "a JSON file written by llmops")) from None
    bad = _find_non_finite(data)
    if bad is not None:
        at, constant = bad
        line, col = locate(text, at)
        raise ConfigError(Problem(name, line, col, f"{dotted(at)}: {constant} is not a finite number",
                                  "JSON numbers only")) from None
    return text, data


def read_object(path: Path, *, required: tuple[str, ...] = (), newest_version: int | None = None) -> dict[str, Any]:
    """The JSON object in `path`; refuses what load_json refuses, a non-object, missing keys,
    and a "version" newer than `newest_version` (written by a newer llmops)."""
    return checked_object(path, *load_json(path), required=required, newest_version=newest_version)


def checked_object(path: Path, text: str, data: Any, *, required: tuple[str, ...] = (),
                   newest_version: int | None = None) -> dict[str, Any]:
    name = str(path)
    if not isinstance(data, dict):
        line, col = locate(text, ())
        raise ConfigError(Problem(name, line, col, f"holds a {_kind(data)}, not an object", "a JSON object"))
    missing = [k for k in required if k not in data]
    if missing:
        line, col = locate(text, ())
        raise ConfigError(Problem(name, line, col, f"missing key {missing[0]!r}", "a file written by llmops"))
    version = data.get("version")
    if newest_version is not None and version is not None:
        line, col = locate(text, ("version",))
        if isinstance(version, bool) or not isinstance(version, int):
            raise ConfigError(Problem(name, line, col, f"version {version!r} is not an integer", "an integer version"))
        if version > newest_version:
            raise ConfigError(Problem(name, line, col, f"written by a newer llmops (results version {version})",
                                      f"version <= {newest_version}; upgrade llmops to read it"))
    return data


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)
