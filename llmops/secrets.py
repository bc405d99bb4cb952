"""The one masking rule of llmops, and the one scrubber every writer and printer goes through.

Rule (documented in docs/secrets.md): a variable, env var or option is secret when its name
contains, in any case and at any position, one of: token, key, secret, password, pass, pwd,
credential, auth (so `MY_SIGNING_KEY`, `DB_PASS`, `hf_token`, `Authorization` all are), except
`tokens` (plural: `max_tokens`, `input_tokens` are counts, and masking them corrupted results); and any
value given as `!secret` or `!vault` (or derived from one) is secret whatever its name.
Secret values are registered here once they are known (load and plan) and replaced by `***`
in everything llmops writes or prints: run directory files, copied inventories, host logs,
the terminal, error messages.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

SECRET_NAME = re.compile(r"token(?!s)|key|secret|password|pass|pwd|credential|auth", re.I)

# Values shorter than this are not scrubbed from free text (masking every "1" or "on" in a log
# would destroy it); they are still masked where they appear under a secret name.
MIN_SCRUBBED = 4
# Short all-digit values (a port, a count under a secret-looking name) are not scrubbed from free
# text either: replacing "1500" inside results.json would corrupt every number that contains it.
MIN_SCRUBBED_DIGITS = 8


def _scrubbable(text: str) -> bool:
    # A Jinja expression under a secret name ("{{ api_key }}") is not the secret: its rendered
    # value is registered when it is rendered. Masking the expression itself made the playbook
    # copy differ from the playbook, and `--resume` then took the copy.
    if "{{" in text and "}}" in text:
        return False
    return len(text) >= (MIN_SCRUBBED_DIGITS if text.isdigit() else MIN_SCRUBBED)

_lock = threading.Lock()
_values: set[str] = set()


def is_secret_name(name: Any) -> bool:
    return isinstance(name, str) and bool(SECRET_NAME.search(name))


def register(values: Iterable[Any]) -> None:
    """Remember secret values so that scrub() removes them from any text from now on."""
    with _lock:
        for value in values:
            text = "" if value is None else str(value)
            if _scrubbable(text):
                _values.add(text)
                # A value may be written JSON- or shell-escaped; scrub those spellings too.
                for spelling in (text.replace("\\", "\\\\").replace('"', '\\"'), text.replace("'", "'\"'\"'")):
                    if spelling != text:
                        _values.add(spelling)


def registered() -> set[str]:
    with _lock:
        return set(_values)


def scrub(text: str, extra: Iterable[Any] = ()) -> str:
    """`text` with every registered (and `extra`) secret value replaced by MASK, longest first."""
    if not text:
        return text
    candidates = registered() | {str(v) for v in extra if v and _scrubbable(str(v))}
    for secret in sorted(candidates, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def collect(data: Any, *, under_secret: bool = False, tagged: type | tuple[type, ...] = ()) -> list[str]:
    """Every scalar value in nested `data` that is secret by the rule: under a secret name (at any
    depth above it) or an instance of a `tagged` type (Secret, vault text)."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            found += collect(value, under_secret=under_secret or is_secret_name(key), tagged=tagged)
    elif isinstance(data, (list, tuple)):
        for value in data:
            found += collect(value, under_secret=under_secret, tagged=tagged)
    elif data is not None and not isinstance(data, bool):
        if under_secret or (tagged and isinstance(data, tagged)):
            found.append(str(data))
    return found
