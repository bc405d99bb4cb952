"""Read YAML with ruamel.yaml and keep where every value came from.

Everything downstream works on plain Python data; this module keeps a side table of
positions so that any later complaint (schema, template, plan) can name FILE:LINE:COL.
It also refuses inputs that would hurt us before they are parsed: huge files, binary
garbage and alias bombs (a document whose aliases expand to millions of nodes).
"""

from __future__ import annotations

import datetime
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import RoundTripScanner

from llmops.errors import ConfigError, Problem
from llmops.limits import MAX_BYTES, MAX_DEPTH, MAX_NODES, MAX_PARSED_NODES
from llmops.secrets import register as register_secrets
from llmops.shell import Secret

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

    def sub(self, prefix: YamlPath) -> Located:
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
    return load_bytes(read_bounded(path, name), name)


_KINDS = [(stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")]


def read_bounded(path: str | Path, name: str | None = None, *, limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or a located ConfigError.

    Devices (/dev/zero), FIFOs and sockets are refused by kind before they are opened (a FIFO would
    block for ever, /dev/zero never ends), also behind symlinks; and never more than limit + 1 bytes are
    read, so a file that grows while we read it cannot exhaust memory either.
    """
    name = name or str(path)
    limit = MAX_BYTES if limit is None else limit
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(Problem(name, 1, 1, "file not found", "a path to an existing file")) from None
    except OSError as exc:
        raise ConfigError(Problem(name, 1, 1, f"cannot read file: {exc.strerror}", "a readable file")) from None
    for test, kind in _KINDS:
        if test(info.st_mode):
            what = "is a directory" if kind == "a directory" else f"is {kind}, not a regular file"
            raise ConfigError(Problem(name, 1, 1, what, "a regular file"))
    if info.st_size > limit:
        raise ConfigError(Problem(name, 1, 1, f"file is {info.st_size} bytes, too large",
                                  f"at most {limit} bytes; LLMOPS_MAX_FILE_BYTES raises it"))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(Problem(name, 1, 1, f"cannot read file: {exc.strerror}", "a readable file")) from None
    if len(raw) > limit:
        raise ConfigError(Problem(name, 1, 1, f"file is more than {limit} bytes, too large",
                                  f"at most {limit} bytes; LLMOPS_MAX_FILE_BYTES raises it"))
    return raw


def load_bytes(raw: bytes, name: str) -> Located:
    if len(raw) > MAX_BYTES:
        raise ConfigError(Problem(name, 1, 1, f"input is {len(raw)} bytes, too large",
                                  f"at most {MAX_BYTES} bytes; LLMOPS_MAX_FILE_BYTES raises it"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw[: exc.start].decode("utf-8", "replace"), len(raw[: exc.start].decode("utf-8", "replace")))
        raise ConfigError(Problem(name, line, col, "not UTF-8 text (binary file?)", "a UTF-8 YAML file")) from None
    if "\x00" in text:
        line, col = _line_col(text, text.index("\x00"))
        raise ConfigError(Problem(name, line, col, "NUL byte in file (binary file?)", "a UTF-8 YAML file"))
    return load_text(text, name)


class _TooBig(Exception):
    """Raised from inside the composer; carries the position where a bound was crossed."""

    def __init__(self, line: int, col: int, message: str, expected: str):
        super().__init__(message)
        self.line, self.col, self.message, self.expected = line, col, message, expected


class _BoundedComposer(Composer):
    """ruamel's composer, counting nodes and nesting while it composes: a 4 MB document of a million
    tiny nodes, or 250 nested `[`, is refused long before it is all built (or blows the stack)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._count = getattr(self, "_count", 0) + 1
        self._nesting = getattr(self, "_nesting", 0) + 1
        try:
            if self._count > MAX_PARSED_NODES or self._nesting > MAX_DEPTH:
                mark = self.parser.peek_event().start_mark
                if self._count > MAX_PARSED_NODES:
                    raise _TooBig(mark.line + 1, mark.column + 1, f"document has more than {MAX_PARSED_NODES} nodes",
                                  "a reasonably sized document; LLMOPS_MAX_YAML_PARSED_NODES raises it")
                raise _TooBig(mark.line + 1, mark.column + 1, f"nesting deeper than {MAX_DEPTH} levels",
                              f"at most {MAX_DEPTH} nested lists/mappings; LLMOPS_MAX_YAML_DEPTH raises it")
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1


class _BoundedScanner(RoundTripScanner):
    """ruamel's scanner, refusing flow nesting past MAX_DEPTH as it reads it: every open `[`
    leaves a possible simple key that the scanner re-checks for each later token, so 1,000
    nested `[` cost seconds of scanning before the composer ever saw depth 65."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: Any) -> None:  # noqa: N803 - ruamel's name
        if len(self.flow_context) >= MAX_DEPTH:
            mark = self.reader.get_mark()
            raise _TooBig(mark.line + 1, mark.column + 1, f"nesting deeper than {MAX_DEPTH} levels",
                          f"at most {MAX_DEPTH} nested lists/mappings; LLMOPS_MAX_YAML_DEPTH raises it")
        super().fetch_flow_collection_start(TokenClass, to_push)


def _refuse_many_nodes_fast(text: str) -> None:
    """Count the document's nodes with libyaml (PyYAML's C parser) before ruamel reads it.

    ruamel's round-trip parser is pure Python, about 70 us a node: a document at the node bound
    cost 0.7 s of parsing before the composer refused it. libyaml finds the same node, at the same
    position, ten times faster. Only the count is taken from it; anything libyaml dislikes is left
    to ruamel, whose messages we already locate. Without libyaml the composer's count still holds.
    """
    try:
        import yaml as pyyaml
        from yaml.cyaml import CParser

        parser = CParser(text)
    except (ImportError, AttributeError):
        return
    nodes = (pyyaml.ScalarEvent, pyyaml.SequenceStartEvent, pyyaml.MappingStartEvent, pyyaml.AliasEvent)
    count = 0
    try:
        while True:
            event = parser.get_event()
            if event is None or isinstance(event, (pyyaml.DocumentEndEvent, pyyaml.StreamEndEvent)):
                return  # ruamel reads one document; later ones are its error to report
            if isinstance(event, nodes):
                count += 1
                if count > MAX_PARSED_NODES:
                    mark = event.start_mark
                    raise _TooBig(mark.line + 1, mark.column + 1, f"document has more than {MAX_PARSED_NODES} nodes",
                                  "a reasonably sized document; LLMOPS_MAX_YAML_PARSED_NODES raises it")
    except pyyaml.YAMLError:
        return
    finally:
        parser.dispose()


def load_text(text: str, name: str) -> Located:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Composer = _BoundedComposer
    yaml.Scanner = _BoundedScanner
    try:
        _refuse_many_nodes_fast(text)
        tree = yaml.load(io.StringIO(text))
    except _TooBig as exc:
        raise ConfigError(Problem(name, exc.line, exc.col, exc.message, exc.expected)) from None
    except RecursionError:
        raise ConfigError(Problem(name, 1, 1, "nesting too deep to read",
                                  f"at most {MAX_DEPTH} nested lists/mappings")) from None
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
    try:
        _refuse_alias_bomb(tree, name)
        located.data = _plain(tree, (), located, counter, 1, 1)
    except RecursionError:  # aliases nested in aliases can go deeper than the text does
        raise ConfigError(Problem(name, 1, 1, "nesting too deep once aliases are expanded",
                                  f"at most {MAX_DEPTH} nested lists/mappings")) from None
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


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """Nodes once aliases are expanded, counted over the unique nodes only: an alias is the
    same object as its anchor, so a billion-laughs document costs its own size here."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = 1  # a cycle (an alias inside its own anchor) counts once; deeper checks catch it
    if isinstance(node, dict):
        total = 1 + sum(_expanded_size(v, sizes) for v in node.values())
    elif isinstance(node, list):
        total = 1 + sum(_expanded_size(v, sizes) for v in node)
    else:
        total = 1
    sizes[key] = total
    return total


def _refuse_alias_bomb(tree: Any, name: str) -> None:
    """Refuse a document that expands past MAX_NODES before walking it (walking 200,000
    expanded nodes to find that out took ~2 s), at the first value whose expansion crosses."""
    sizes: dict[int, int] = {}
    if tree is None or _expanded_size(tree, sizes) <= MAX_NODES:
        return
    node, line, col, seen = tree, 1, 1, 0
    while isinstance(node, (dict, list)):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        seen += 1
        for key, child in children:
            if seen + sizes.get(id(child), 1) > MAX_NODES:
                if isinstance(node, CommentedMap):
                    line, col = _pos(_lc(node.lc.value, key), line, col)
                elif isinstance(node, CommentedSeq):
                    line, col = _pos(_lc(node.lc.item, key), line, col)
                node = child
                break
            seen += sizes.get(id(child), 1)
        else:
            break
    raise ConfigError(Problem(name, line, col, f"document expands to more than {MAX_NODES} nodes (an alias bomb?)",
                              "a reasonably sized document; LLMOPS_MAX_YAML_NODES raises it"))


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
                    "a reasonably sized document; LLMOPS_MAX_YAML_NODES raises it")
        )
    loc.values.setdefault(path, (line, col))
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            # A key merged in by `<<: *base` has no position of its own in this mapping: it is
            # reported at the mapping (ruamel raises KeyError when asked for it).
            kl, kc = _pos(_lc(node.lc.key, key), line, col)
            vl, vc = _pos(_lc(node.lc.value, key), kl, kc)
            child_key = _plain_scalar(key)
            if isinstance(child_key, str) and "\x00" in child_key:
                raise ConfigError(Problem(loc.file, kl, kc, "NUL character in a key", "a key without NUL (\\0) characters"))
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
    value = _plain_scalar(node)
    if isinstance(value, str) and "\x00" in value:  # from an escape ("\0", "\x00"); raw NULs are refused earlier
        raise ConfigError(Problem(loc.file, line, col, "NUL character in a string", "text without NUL (\\0) characters"))
    return value


def _lc(lookup: Any, key: Any) -> Any:
    try:
        return lookup(key)
    except (KeyError, IndexError, TypeError):
        return None


def _pos(pair: Any, line: int, col: int) -> tuple[int, int]:
    try:
        return int(pair[0]) + 1, int(pair[1]) + 1
    except (TypeError, IndexError, KeyError):
        return line, col


def _plain_scalar(value: Any) -> Any:
    if value is None or isinstance(value, (bool,)):
        return value
    if type(value).__name__ == "TaggedScalar":
        tag = str(getattr(getattr(value, "tag", None), "value", "") or "")
        text = str(getattr(value, "value", "") or "")
        if tag in ("!secret", "!vault"):  # secret whatever its name (llmops.secrets' rule)
            register_secrets([text])
            return Secret(text)
        return text
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
