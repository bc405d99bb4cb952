"""Read YAML with ruamel.yaml and keep where every value came from.

Everything downstream works on plain Python data; this module keeps a side table of
positions so that any later complaint (schema, template, plan) can name FILE:LINE:COL.
It also refuses inputs that would hurt us before they are parsed: huge files, binary
garbage and alias bombs (a document whose aliases expand to millions of nodes).
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from llmops.errors import ConfigError, Problem

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000

YamlPath = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data from one YAML file, plus 1-based (line, col) of each value and mapping key."""

    file: str
    data: Any
    values: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: YamlPath, *, key: bool = False) -> tuple[int, int]:
        """Position of the value at `path` (or of its key), else of the nearest ancestor."""
        path = tuple(path)
        while True:
            table = self.keys if key else self.values
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return (1, 1)
            path = path[:-1]

    def problem(self, path: YamlPath, message: str, expected: str | None = None, *, key: bool = False) -> Problem:
        line, col = self.where(path, key=key)
        return Problem(self.file, line, col, message, expected)

    def sub(self, prefix: YamlPath) -> "Located":
        """A view rooted at `prefix`, sharing this file's position tables."""
        prefix = tuple(prefix)
        node: Any = self.data
        for part in prefix:
            node = node[part]
        view = Located(self.file, node)
        n = len(prefix)
        view.values = {p[n:]: v for p, v in self.values.items() if p[:n] == prefix}
        view.keys = {p[n:]: v for p, v in self.keys.items() if p[:n] == prefix}
        if () not in view.values:
            view.values[()] = self.where(prefix)
        return view


def load_file(path: str | Path, *, display_name: str | None = None) -> Located:
    """Load one YAML file; any problem becomes a ConfigError pointing into the file."""
    name = display_name or str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ConfigError(Problem(name, 1, 1, "file not found", "a path to an existing YAML file")) from None
    except OSError as exc:
        raise ConfigError(Problem(name, 1, 1, f"cannot read file: {exc.strerror}")) from None
    if p.is_dir():
        raise ConfigError(Problem(name, 1, 1, "is a directory", "a YAML file"))
    if size > MAX_BYTES:
        raise ConfigError(Problem(name, 1, 1, f"file is {size} bytes, too large", f"at most {MAX_BYTES} bytes"))
    return load_bytes(p.read_bytes(), name)


def load_bytes(raw: bytes, name: str) -> Located:
    if len(raw) > MAX_BYTES:
        raise ConfigError(Problem(name, 1, 1, f"input is {len(raw)} bytes, too large", f"at most {MAX_BYTES} bytes"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw[: exc.start].decode("utf-8", "replace"), len(raw[: exc.start].decode("utf-8", "replace")))
        raise ConfigError(Problem(name, line, col, "not UTF-8 text (binary file?)", "a UTF-8 YAML file")) from None
    if "\x00" in text:
        line, col = _line_col(text, text.index("\x00"))
        raise ConfigError(Problem(name, line, col, "NUL byte in file (binary file?)", "a UTF-8 YAML file"))
    return load_text(text, name)


def load_text(text: str, name: str) -> Located:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(io.StringIO(text))
    except ReaderError as exc:
        line, col = _line_col(text, exc.position)
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise ConfigError(Problem(name, line, col, f"unacceptable character {char!r}", "printable text")) from None
    except MarkedYAMLError as exc:
        raise ConfigError(_marked_problem(name, exc, text)) from None
    except YAMLError as exc:  # pragma: no cover - ruamel raises marked errors for syntax
        raise ConfigError(Problem(name, 1, 1, f"invalid YAML: {exc}")) from None
    located = Located(name, None)
    counter = [0]
    located.data = _plain(tree, (), located, counter, 1, 1)
    return located


def _marked_problem(name: str, exc: MarkedYAMLError, text: str = "") -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    if type(exc).__name__ == "DuplicateKeyError":
        key = problem.split('"')[1] if '"' in problem else problem
        first = _first_definition(text, key, line, col, exc.context_mark.line + 1 if exc.context_mark else 1)
        where = f" (first defined on line {first})" if first else ""
        return Problem(name, line, col, f"duplicate key {key!r}{where}", "each key once per mapping")
    if "\t" in problem or "'\\t'" in problem:
        return Problem(name, line, col, "tab character used for indentation", "spaces for indentation")
    message = f"invalid YAML: {problem}" if problem else "invalid YAML"
    if context and context not in problem:
        message += f" ({context})"
    expected = None
    if "block end" in problem or "block mapping" in problem or "could not find expected ':'" in problem:
        expected = "consistent indentation: keys of one mapping start in the same column"
    elif "flow sequence" in context or "flow mapping" in context:
        expected = "a closing ] or } for every [ or {"
    elif "undefined alias" in problem:
        expected = "an anchor (&name) defined before its alias (*name)"
    return Problem(name, line, col, message, expected)


def _first_definition(text: str, key: str, line: int, col: int, mapping_line: int) -> int | None:
    """Line of the earlier `key:` at the same column (ruamel only points at the mapping)."""
    lines = text.splitlines()
    for n in range(max(mapping_line, 1), line):
        candidate = lines[n - 1][col - 1:] if len(lines[n - 1]) >= col else ""
        if candidate.startswith("- "):
            candidate = candidate[2:]
        for form in (key, f'"{key}"', f"'{key}'"):
            if candidate.startswith(form) and candidate[len(form):].lstrip().startswith(":"):
                return n
    return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return line, col


def _plain(node: Any, path: YamlPath, loc: Located, counter: list[int], line: int, col: int) -> Any:
    """Convert ruamel's round-trip tree to plain Python, recording positions as we go."""
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise ConfigError(
            Problem(loc.file, line, col, f"document expands to more than {MAX_NODES} nodes (an alias bomb?)",
                    "a reasonably sized document")
        )
    loc.values.setdefault(path, (line, col))
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            kl, kc = _pos(node.lc.key(key), line, col)
            vl, vc = _pos(node.lc.value(key), kl, kc)
            child_key = _plain_scalar(key)
            if isinstance(child_key, (dict, list)):
                raise ConfigError(Problem(loc.file, kl, kc, "mapping key is not a scalar", "a plain key"))
            if not isinstance(child_key, (str, int)) or isinstance(child_key, bool):
                child_key = str(child_key)
            child_path = path + (child_key,)
            loc.keys[child_path] = (kl, kc)
            out[child_key] = _plain(node[key], child_path, loc, counter, vl, vc)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            il, ic = _pos(node.lc.item(i), line, col)
            items.append(_plain(item, path + (i,), loc, counter, il, ic))
        return items
    if isinstance(node, dict):  # plain dict (merged keys); positions of the parent suffice
        return {_plain_scalar(k): _plain(v, path + (str(k),), loc, counter, line, col) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, path + (i,), loc, counter, line, col) for i, v in enumerate(node)]
    return _plain_scalar(node)


def _pos(pair: Any, line: int, col: int) -> tuple[int, int]:
    try:
        return int(pair[0]) + 1, int(pair[1]) + 1
    except (TypeError, IndexError, KeyError):
        return line, col


def _plain_scalar(value: Any) -> Any:
    if value is None or isinstance(value, (bool,)):
        return value
    # ruamel's scalar subclasses (ScalarInt, ScalarFloat, ScalarBoolean, ScalarString...)
    type_name = type(value).__name__
    if type_name == "ScalarBoolean":
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value
