"""Jinja rendering: sandboxed, StrictUndefined, and shell-quoting by construction.

Command templates never have to remember `| quote`: every `{{ expression }}` output passes
through `finalize`, which shell-quotes it (a list becomes several quoted words). Only the
literal text of a template is trusted. Values of type `Secret` render as the real value
for execution and as `***` for everything people or files see; `HostPath` keeps a
leading `~/` unquoted so that the host's shell expands it.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmops.errors import ConfigError, Problem
from llmops.jinja_limits import BoundedSandbox, TemplateTooBig, check_output, time_limit
from llmops.load.yamlsrc import Located, YamlPath
from llmops.shell import Secret, shell_word


class _Quoting:
    """`finalize` for command templates: quote scalars, expand lists to words, refuse the rest.

    Each quoted word is handed to Jinja as an opaque placeholder and put back after the
    template's own whitespace has been folded, so a newline inside a value stays inside
    its quotes instead of being folded with the template's line breaks.
    """

    def __init__(self, reveal: bool):
        self.reveal = reveal
        self.words: list[str] = []

    def __call__(self, value: Any) -> str:
        if value is None:
            raise _NullPrinted()
        if isinstance(value, Mapping):
            raise _MappingPrinted()
        if isinstance(value, (list, tuple)):
            return " ".join(self(v) for v in value)
        self.words.append(shell_word(value, reveal=self.reveal))
        return f"\x00{len(self.words) - 1}\x00"

    def restore(self, text: str) -> str:
        return re.sub("\x00(\\d+)\x00", lambda m: self.words[int(m.group(1))], text)


class _NullPrinted(Exception):
    pass


class _MappingPrinted(Exception):
    pass


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates kept in memory for the life of the process.

    Each render needs its own environment (the quoting finalizer holds that render's
    placeholders), and a fresh environment compiles its templates again: planning 24 hosts x 3
    variants spent 4 of its 4.6 s compiling the same two templates 144 times. Jinja checks the
    source's checksum on every load, so an edited template is compiled anew."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


def command_environment(search_paths: Sequence[Path], *, reveal: bool) -> ImmutableSandboxedEnvironment:
    loader = jinja2.FileSystemLoader([str(p) for p in search_paths])
    env = BoundedSandbox(loader=loader, undefined=jinja2.StrictUndefined, finalize=_Quoting(reveal),
                         keep_trailing_newline=False, autoescape=False, bytecode_cache=_COMPILED)
    return env


def _quoting(env: jinja2.Environment) -> _Quoting:
    finalize = env.finalize
    assert isinstance(finalize, _Quoting)
    return finalize


def render_command(template_name: str, context: Mapping[str, Any], search_paths: Sequence[Path], *,
                   reveal: bool, where: Problem) -> str:
    """Render a command template to one shell command line (whitespace collapsed)."""
    env = command_environment(search_paths, reveal=reveal)
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound:
        searched = ", ".join(str(p) for p in search_paths)
        raise ConfigError(Problem(where.file, where.line, where.col, f"template {template_name!r} not found",
                                  f"a file in one of: {searched}")) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(Problem(exc.filename or template_name, exc.lineno or 1, 1,
                                  f"template syntax error: {exc.message}", "valid Jinja")) from None
    try:
        with time_limit():
            text = check_output(template.render(dict(context)))
    except Exception as exc:  # noqa: BLE001 - every template failure becomes a located problem
        raise ConfigError(_template_problem(exc, template, where)) from None
    # Values are placeholders at this point, so squeezing spaces cannot touch quoted content.
    return _quoting(env).restore(re.sub(r" {2,}", " ", " ".join(_collapse(text))))


def _collapse(text: str) -> list[str]:
    # A template spreads one command over lines; join them, keeping quoted words intact.
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("\\"):
            line = line[:-1].rstrip()
        if line:
            out.append(line)
    return out


def _template_problem(exc: Exception, template: jinja2.Template, where: Problem) -> Problem:
    filename = template.filename or template.name or "<template>"
    lineno = 1
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == template.filename and frame.lineno:
            lineno = frame.lineno
    if isinstance(exc, jinja2.UndefinedError):
        name = _undefined_name(str(exc))
        return Problem(filename, lineno, 1, f"undefined variable {name!r} in template (used by {where.file}:{where.line})",
                       "a backend option, play var, inventory var or -e extra var of that name")
    if isinstance(exc, _NullPrinted):
        return Problem(filename, lineno, 1, "template printed a null value (used by "
                       f"{where.file}:{where.line})", "guard optional values with {% if x is not none %}")
    if isinstance(exc, _MappingPrinted):
        return Problem(filename, lineno, 1, "template printed a mapping", "a string, number or list")
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return Problem(filename, lineno, 1, f"template tried something unsafe: {exc}", "plain variable use")
    if isinstance(exc, TemplateTooBig):
        return Problem(filename, lineno, 1, f"template too costly: {exc}", "a template of reasonable size")
    return Problem(filename, lineno, 1, f"template failed: {type(exc).__name__}: {exc}")


def _undefined_name(message: str) -> str:
    match = re.search(r"'([^']+)' is undefined", message) or re.search(r"has no attribute '([^']+)'", message)
    return match.group(1) if match else message


# --- templated values inside YAML files ----------------------------------------------------

_value_env = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
_WHOLE_EXPR = re.compile(r"^\{\{\s*(.+?)\s*\}\}$", re.S)


def has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


MAX_DEPTH = 10


def render_value(value: Any, context: Mapping[str, Any], located: Located, path: YamlPath, depth: int = 0) -> Any:
    """Render Jinja inside a YAML value (recursively). `"{{ x }}"` alone keeps x's type, as in Ansible.

    Variables may hold templates themselves (`flags: ["-DX={{ gpu_target }}"]` in group vars);
    those are rendered too, as Ansible does, up to MAX_DEPTH levels (a guard against cycles).
    """
    if depth > MAX_DEPTH:
        raise ConfigError(located.problem(path, "variables refer to each other in a loop",
                                          f"templates that resolve within {MAX_DEPTH} steps"))
    if isinstance(value, dict):
        return {k: render_value(v, context, located, path + (k,), depth) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, located, path + (i,), depth) for i, v in enumerate(value)]
    if not has_template(value):
        return value
    try:
        with time_limit():
            return _render_one(value, context, located, path, depth)
    except TemplateTooBig as exc:
        raise ConfigError(located.problem(path, f"template too costly: {exc}", "a template of reasonable size")) from None


def _render_one(value: str, context: Mapping[str, Any], located: Located, path: YamlPath, depth: int) -> Any:
    try:
        whole = _WHOLE_EXPR.match(value)
        if whole and "{{" not in whole.group(1):
            result = check_output(_value_env.compile_expression(whole.group(1), undefined_to_none=False)(**context))
            if isinstance(result, jinja2.Undefined):
                str(result)  # raises UndefinedError with the name
            if isinstance(result, (str, list, dict)):
                result = render_value(result, context, located, path, depth + 1)
            return result
        rendered = check_output(_value_env.from_string(value).render(**context))
        if has_template(rendered):
            rendered = render_value(rendered, context, located, path, depth + 1)
        return Secret(rendered) if _uses_secret(value, context) else rendered
    except jinja2.UndefinedError as exc:
        name = _undefined_name(str(exc))
        raise ConfigError(located.problem(path, f"undefined variable {name!r}",
                                          "a variable from the inventory, the play's vars or -e")) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(located.problem(path, f"template syntax error: {exc.message}", "valid Jinja")) from None
    except jinja2.exceptions.SecurityError as exc:
        raise ConfigError(located.problem(path, f"unsafe template: {exc}", "plain variable use")) from None
    except (TemplateTooBig, ConfigError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(located.problem(path, f"template failed: {type(exc).__name__}: {exc}")) from None


def _uses_secret(source: str, context: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Secret) and k in source for k, v in context.items())
