"""ansible-core's own programs, run when an inventory needs what only Ansible can do.

Inventory plugins (constructed, aws_ec2, netbox, proxmox...) and inventory scripts run code that
llmops does not reimplement, and Ansible Vault needs Ansible's cryptography. When ansible-core is
installed on the controller, llmops runs `ansible-inventory --list` / `ansible-vault decrypt` as
programs (ansible-core is GPL-3.0 and stays an optional, separately installed tool; llmops imports
none of it) with the user's environment, so the user's ansible.cfg and ANSIBLE_* settings apply.
Without it, the error says so and how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, Problem

INSTALL_HINT = "pip install 'ansible-core>=2.19' (on the controller, next to llmops)"
TIMEOUT_S = 600  # a cloud inventory plugin may page through many API calls


@dataclass(frozen=True)
class VaultSecret:
    """How the user unlocks Ansible Vault: a password file (or script), or a password typed once.
    The password itself never goes on a command line, into a log or into results."""

    password_file: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed

    def args_and_input(self) -> tuple[list[str], str | None]:
        if self.password_file:
            return ["--vault-password-file", self.password_file], None
        # ansible-vault reads a password file with open(); a pipe on stdin is one.
        return ["--vault-password-file", "/dev/stdin"], (self.password or "") + "\n"


def find_program(name: str) -> str | None:
    """The ansible-core program beside this Python first (same venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _missing(source: str, what: str, program: str) -> ConfigError:
    return ConfigError(Problem(source, 1, 1, f"{what} needs ansible-core, and {program} was not found",
                               INSTALL_HINT))


def inventory_list(sources: list[str], why: str, vault: VaultSecret | None = None,
                   where: str | None = None) -> dict[str, Any]:
    """`ansible-inventory -i SOURCE... --list` as parsed JSON (when a plugin config or a script is among them).
    Errors name `where`: the source that needed Ansible."""
    source = where or sources[0]
    program = find_program("ansible-inventory")
    if program is None:
        raise _missing(source, why, "ansible-inventory")
    args, stdin = vault.args_and_input() if vault else ([], None)
    # Run where the user runs llmops: ansible.cfg in the current folder is Ansible's first choice.
    env = dict(os.environ)
    # A source that no plugin parsed is only a warning for Ansible, and an empty inventory would follow.
    env.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
    try:
        proc = subprocess.run([program, *(a for s in sources for a in ("-i", s)), "--list", *args], capture_output=True, text=True,
                              input=stdin, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise ConfigError(Problem(source, 1, 1, f"ansible-inventory took over {TIMEOUT_S} s ({why})")) from None
    if proc.returncode != 0:
        raise ConfigError(Problem(source, 1, 1, f"ansible-inventory could not read it ({why}): "
                                  + _last_lines(proc.stderr), "a source `ansible-inventory -i SOURCE --list` reads"))
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise ConfigError(Problem(source, 1, 1, "ansible-inventory printed no JSON",
                                  "the output of ansible-inventory --list")) from None
    if not isinstance(data, dict):
        raise ConfigError(Problem(source, 1, 1, "ansible-inventory printed JSON that is not a mapping"))
    return data


def vault_decrypt(path: str, vault: VaultSecret | None, line: int = 1) -> bytes:
    """The plaintext of a vault-encrypted file, through `ansible-vault decrypt --output -`."""
    if vault is None:
        raise ConfigError(Problem(path, line, 1, "encrypted with Ansible Vault and no vault password was given",
                                  "--vault-password-file FILE or --ask-vault-pass"))
    program = find_program("ansible-vault")
    if program is None:
        raise _missing(path, "an Ansible Vault file", "ansible-vault")
    args, stdin = vault.args_and_input()
    proc = subprocess.run([program, "decrypt", "--output", "-", *args, path], capture_output=True,
                          input=stdin.encode() if stdin is not None else None, timeout=120, env=dict(os.environ))
    if proc.returncode != 0:
        raise ConfigError(Problem(path, line, 1, "ansible-vault could not decrypt it: "
                                  + _last_lines(proc.stderr.decode("utf-8", "replace")), "the right vault password"))
    return proc.stdout


def vault_decrypt_strings(ciphertexts: list[str], vault: VaultSecret, wheres: list[tuple[str, int, int]]) -> list[str]:
    """The plaintexts of inline `!vault` values, all through one `ansible-vault decrypt` run.

    ansible-vault takes one file with `--output -`, but any number decrypted in place, so each
    ciphertext goes in a file of a private folder (0700, in memory under /dev/shm where there is
    one) that is removed at once: one run instead of one per value.
    """
    program = find_program("ansible-vault")
    if program is None:
        file, line, col = wheres[0]
        raise ConfigError(Problem(file, line, col, "an Ansible Vault value needs ansible-core, and ansible-vault "
                                  "was not found", INSTALL_HINT))
    args, stdin = vault.args_and_input()
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="llmops-vault-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    try:
        paths = []
        for i, text in enumerate(ciphertexts):
            path = folder / f"value{i}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            paths.append(path)
        proc = subprocess.run([program, "decrypt", *args, *map(str, paths)], capture_output=True,
                              input=stdin.encode() if stdin is not None else None, timeout=120, env=dict(os.environ))
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace")
            # name the value ansible-vault stopped at (its message names our temporary file)
            failed = next((i for i, p in enumerate(paths) if str(p) in message), 0)
            file, line, col = wheres[failed]
            raise ConfigError(Problem(file, line, col, "ansible-vault could not decrypt this value: "
                                      + _last_lines(message.replace(str(paths[failed]), "the value")),
                                      "the right vault password"))
        return [p.read_bytes().decode("utf-8", "replace") for p in paths]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _last_lines(text: str, count: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-count:]) or "no message"
