"""Validate located YAML data against pydantic models; report problems at the YAML line.

Pydantic's error locations are paths into the data (`('backends', 1, 'port')`); the
Located side table turns each into FILE:LINE:COL, and this module turns pydantic's
wording into "what is wrong (what was expected)".
"""

from __future__ import annotations

import difflib
import types
import typing
import unicodedata
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel

from llmops.errors import ConfigError, Problem
from llmops.load.yamlsrc import Located, YamlPath

M = TypeVar("M", bound=BaseModel)


def finite_number(value: Any) -> float:
    """The one check for "a finite number" (durations, timeouts, rates...): refuses booleans, .inf and .nan.

    Raises ValueError with a message fit for a located problem; shared by every schema that needs it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number (a finite number)")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite number (a finite number, not .inf or .nan)")
    return float(value)


# Names become folders (run directory cells, host logs, llmops_remote_dir): one safe path component.
NAME_RULE = ("a name of 1-128 characters, not '.' or '..', without '/', '\\', NUL, control or invisible formatting "
             "characters, not starting with '-'")


def safe_name(value: str) -> str:
    """Refuse a name that is not one safe path component (it would write outside its folder)."""
    if (not value or value in (".", "..") or len(value) > 128 or value.startswith("-")
            or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 or unicodedata.category(c) in ("Cf", "Zl", "Zp")
                   for c in value)):
        raise ValueError(f"{value!r} is not a safe name ({NAME_RULE})")
    return value


def not_an_option(value: str) -> str:
    """A value put in a positional place (a model, an image, an address) must not read as a flag."""
    if not value.strip():
        raise ValueError("the value is empty (a non-empty value)")
    if value.lstrip().startswith("-"):
        raise ValueError(f"{value!r} starts with '-' and would be read as an option (a value not starting with '-')")
    return value


def header_safe(value: str) -> str:
    """An API key travels in an HTTP header: visible ASCII only. A non-ASCII key crashed the client
    mid-run, and a CR/LF would have written headers of its own. The value is never echoed."""
    if not value or len(value) > 4096 or any(not 0x21 <= ord(c) <= 0x7E for c in value):
        raise ValueError("the key must be 1 to 4096 visible ASCII characters, no spaces or line breaks "
                         "(it is sent as an HTTP header; the value is not shown here)")
    return value


HeaderValue = typing.Annotated[str, pydantic.AfterValidator(header_safe)]
SafeName = typing.Annotated[str, pydantic.AfterValidator(safe_name)]
Positional = typing.Annotated[str, pydantic.AfterValidator(not_an_option)]


def _numeric(annotation: Any) -> bool:
    """True for int/float fields (also Optional, Annotated and lists of them), never for bool or str unions."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return bool(args) and _numeric(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(members) and all(m in (int, float) for m in members)
    return annotation in (int, float)


class Strict(BaseModel):
    """Base for every schema model: unknown keys are errors, values are not silently coerced to str.

    Numbers are strict in two ways pydantic is not by default: `.inf`/`.nan` are refused
    (allow_inf_nan), and a boolean is not a number (`port: true` would otherwise be port 1).
    """

    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _numeric(field.annotation):
            return value
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in items):
            shown = "true" if True in [v for v in items if isinstance(v, bool)] else "false"
            raise ValueError(f"{shown} is a boolean, not a number (a number)")
        return value


def validate(model: type[M], located: Located, prefix: YamlPath = (), data: Any = None, *, label: str = "",
             also_allowed: set[str] | None = None) -> M:
    """Validate `data` (default: located.data at `prefix`) as `model` or raise a located ConfigError."""
    if data is None:
        data = located.data
        for part in prefix:
            data = data[part]
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(problems_from(exc, model, located, prefix, label=label, also_allowed=also_allowed,
                                        data=data)) from None


_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def problems_from(exc: pydantic.ValidationError, model: type[BaseModel], located: Located,
                  prefix: YamlPath = (), *, label: str = "", also_allowed: set[str] | None = None,
                  data: Any = None) -> list[Problem]:
    problems = []
    seen = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"], data)
        # A value that fits no member of a union gets one error per member, tagged with the
        # member's type (`env.A.str`, `env.A.int`...); report it once, at the value.
        if loc and isinstance(loc[-1], str) and loc[-1].split("[")[0] in _UNION_TAGS and \
                annotation_at(model, loc) is None:
            loc = loc[:-1]
        problem = _problem(err, loc, model, located, tuple(prefix), label, also_allowed)
        if (problem.line, problem.col, problem.message) not in seen:
            seen.add((problem.line, problem.col, problem.message))
            problems.append(problem)
    problems.sort(key=lambda p: (p.line, p.col))
    return problems


def _clean_loc(loc: tuple[Any, ...], data: Any = None) -> tuple[Any, ...]:
    """pydantic inserts validator and union-member names into loc (`function-after[...]`,
    `list[int]`); drop them, but keep a part that is a key of the input at that point: a user's
    key may hold `[` too (a mutated playbook's `T[he ...` key made the path empty)."""
    out: list[Any] = []
    node = data
    for part in loc:
        is_key = isinstance(node, dict) and part in node
        if not is_key and isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(part)
        if is_key or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        else:
            node = None
    return tuple(out)


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def _problem(err: dict[str, Any], loc: tuple[Any, ...], model: type[BaseModel], located: Located,
             prefix: YamlPath, label: str, also_allowed: set[str] | None = None) -> Problem:
    kind = err["type"]
    full = prefix + loc
    name = dotted(((label,) if label else ()) + loc)
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = sorted(fields_at(model, loc[:-1]) | (also_allowed if len(loc) == 1 and also_allowed else set()))
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        expected = (f"did you mean {hint[0]!r}? " if hint else "") + ("allowed keys: " + ", ".join(allowed) if allowed else "no keys here")
        where = dotted(((label,) if label else ()) + loc[:-1])
        return located.problem(full, f"unknown key {key!r} in {where}", expected, key=True)
    if kind == "missing":
        where = dotted(((label,) if label else ()) + loc[:-1])
        return located.problem(full[:-1], f"missing required key {loc[-1]!r} in {where}", _expected_for(model, loc))
    message = _describe_value(kind, value, err["msg"])
    if kind == "value_error":  # our own validators say what is expected in their message
        return located.problem(full, f"{name}: {message}" if loc else f"{name or 'value'}: {message}")
    expected = _expected_from_ctx(kind, ctx) or _expected_for(model, loc)
    return located.problem(full, f"{name}: {message}", expected)


def _describe_value(kind: str, value: Any, msg: str) -> str:
    shown = _show(value)
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not an integer"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number"
    if kind == "finite_number":
        return f"{shown} is not a finite number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not a boolean"
    if kind in ("string_type",):
        return f"{shown} is not a string"
    if kind in ("list_type", "tuple_type"):
        return f"{shown} is not a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{shown} is not a mapping"
    if kind in ("str_type",):
        return f"{shown} is not a string"
    if kind == "literal_error":
        return f"{shown} is not allowed"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{shown} is out of range"
    if kind == "too_short" and value in ([], {}, ""):
        return "the list is empty" if isinstance(value, list) else "it is empty"
    if kind in ("too_short", "too_long"):
        return f"{shown} has the wrong length"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else kind


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _expected_from_ctx(kind: str, ctx: dict[str, Any]) -> str | None:
    if kind == "finite_number":
        return "a finite number, not .inf or .nan"
    if kind == "literal_error" and "expected" in ctx:
        return f"one of {ctx['expected']}"
    if kind == "greater_than_equal":
        return f"a value >= {ctx['ge']}"
    if kind == "less_than_equal":
        return f"a value <= {ctx['le']}"
    if kind == "greater_than":
        return f"a value > {ctx['gt']}"
    if kind == "less_than":
        return f"a value < {ctx['lt']}"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} item(s)"
    return None


def _expected_for(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    annotation = annotation_at(model, loc)
    if annotation is None:
        return None
    return "expected " + describe_type(annotation)


def annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """Follow a pydantic loc through model fields, lists and dicts to the annotation there."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            current = info.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple, set) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return None
    return current


def fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> set[str]:
    target = _unwrap(annotation_at(model, loc) if loc else model)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return {info.alias or name for name, info in target.model_fields.items()}
    return set()


def _unwrap(annotation: Any) -> Any:
    """Optional[X] / Annotated[X, ...] / X | None -> X (first model or non-None member)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else (members[0] if len(members) == 1 else annotation)
            if len(members) != 1 and not models:
                return annotation
            continue
        return annotation


def _plural(text: str) -> str:
    """'an integer or a string' -> 'integers or strings' (for "a list of ...")."""
    words = []
    for part in text.split(" or "):
        part = part.removeprefix("a ").removeprefix("an ")
        words.append(part if part.endswith("s") else part + "s")
    return " or ".join(words)


def describe_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe_type(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, set):
        return f"a list of {_plural(describe_type(args[0]))}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(annotation, "a value")
