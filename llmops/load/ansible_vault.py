"""Inline Ansible Vault values (`password: !vault |` in YAML inventories, group_vars/, host_vars/).

Ansible keeps such a value encrypted until a play uses it, and `ansible-inventory --list` prints the
ciphertext ({"__ansible_vault": ...}) with or without a password. llmops does the same in its
listings, but a host it is asked to use needs the plaintext: with a vault password the values are
decrypted through `ansible-vault decrypt` (a program; ansible-core is GPL and never imported), all
of them in one run, and each becomes a DecryptedVault (a Secret: masked wherever llmops writes or
prints). Without a password, using a host that has one is an error at the value's FILE:LINE:COL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmops import secrets
from llmops.errors import ConfigError, Problem
from llmops.load import ansible_tools
from llmops.load.ansible_tools import VaultSecret
from llmops.shell import Secret

Where = tuple[str, int, int]

LOCKED = "vault-encrypted value; give --vault-password-file or --ask-vault-pass"
LOCKED_HOW = "decrypted through ansible-vault"


class VaultText(str):
    """An inline `!vault` ciphertext, kept as it is (as `ansible-inventory --list` prints it), with
    where it was written; whole vault-encrypted files are decrypted through ansible-vault instead."""

    where: Where | None = None


class DecryptedVault(Secret):
    """The plaintext of an inline vault value: a Secret to every writer, listed as its ciphertext."""

    ciphertext: str = ""


def vault_text(value: str, where: Where | None) -> VaultText:
    text = VaultText(value)
    text.where = where
    return text


def walk(value: Any) -> Iterable[VaultText]:
    """Every VaultText in nested data."""
    if isinstance(value, VaultText):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk(item)


class InlineVault:
    """Decrypts every inline value of one inventory at once (each ansible-vault run costs about half
    a second), and swaps the plaintext in where the inventory's values are used."""

    def __init__(self, secret: VaultSecret | None):
        self.secret = secret
        self.plain: dict[str, str] = {}
        self.seen = False  # any inline vault value at all (most inventories have none)

    def decrypt(self, values: Iterable[Any]) -> None:
        locked: dict[str, VaultText] = {}
        for value in values:
            for text in walk(value):
                if str(text) not in self.plain:
                    locked.setdefault(str(text), text)
        self.seen = self.seen or bool(locked)
        if not locked or self.secret is None:
            return
        texts = list(locked.values())
        fallback = (texts[0].where or ("<inventory>", 1, 1))
        plaintexts = ansible_tools.vault_decrypt_strings([str(t) for t in texts], self.secret,
                                                         [t.where or fallback for t in texts])
        for text, plain in zip(texts, plaintexts, strict=True):
            self.plain[str(text)] = plain
        secrets.register(plaintexts)

    def apply(self, value: Any) -> Any:
        """`value` with each decrypted VaultText replaced by its DecryptedVault (others kept)."""
        if isinstance(value, VaultText):
            if str(value) not in self.plain:
                return value
            out = DecryptedVault(self.plain[str(value)])
            out.ciphertext = str(value)
            return out
        if isinstance(value, dict):
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value

    def locked_error(self, host: str, values: dict[str, Any], fallback: Where) -> ConfigError | None:
        """The error for a host that still has encrypted values (no password was given): each named."""
        if not self.seen or self.plain:
            return None
        problems = []
        for key, value in values.items():
            for text in walk(value):
                file, line, col = text.where or fallback
                problems.append(Problem(file, line, col, f"host {host!r}: {key}: {LOCKED}", LOCKED_HOW))
        return ConfigError(problems) if problems else None
