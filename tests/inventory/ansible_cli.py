"""Run the real `ansible-inventory` (from ansible-core in this venv) in a clean, isolated setting."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def require_ansible() -> str:
    """The installed ansible-core version; the tests fail (not skip) without it: they are the proof."""
    try:
        version = metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        pytest.fail("ansible-core is not installed: pip install -e '.[test]' (it brings ansible-core)")
    if not ANSIBLE_INVENTORY.exists():
        pytest.fail(f"{ANSIBLE_INVENTORY} is missing although ansible-core {version} is installed")
    return version


def isolated_env(workdir: Path) -> dict[str, str]:
    """No user config or ANSIBLE_* settings, and a source that fails to parse is an error, not a warning."""
    config = workdir / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(workdir / "home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
    })
    return env


# ansible-inventory costs about a second a call (30 s of the fast tier); its answer depends only on
# its version, its arguments and the bytes of the sources they name, so it is kept by those, with
# the paths it names held as placeholders (see _places).
CACHE = Path(os.environ.get("LLMOPS_TEST_CACHE", os.path.expanduser("~/.cache/llmops/test-oracle/ansible-inventory")))


def _tree_digest(path: Path, digest: Any) -> None:
    if path.is_dir():
        for child in sorted(path.iterdir()):
            digest.update(b"\0d" + child.name.encode())
            _tree_digest(child, digest)
    elif path.is_file():
        digest.update(b"\0f" + str(path.stat().st_mode & 0o111).encode() + path.read_bytes())


def _cache_key(version: str, args: list[str]) -> str | None:
    """Version, arguments with each existing path replaced by its name and content (for a file, also
    the group_vars/ and host_vars/ beside it, which Ansible reads too); None when a path cannot be
    read (the answer is then not kept)."""
    digest = hashlib.sha256(f"{version}\0".encode())
    for arg in args:
        path = Path(arg)
        if os.sep in arg and path.exists():
            try:
                digest.update(b"\0p" + path.name.encode())
                _tree_digest(path, digest)
                if path.is_file():
                    for beside in ("group_vars", "host_vars"):
                        digest.update(b"\0b" + beside.encode())
                        _tree_digest(path.parent / beside, digest)
            except OSError:
                return None
        else:
            digest.update(b"\0a" + arg.encode())
    return digest.hexdigest()


def _places(args: list[str], workdir: Path) -> list[tuple[str, str]]:
    """Paths of this run that an answer may name (the sources, their folders, the working folder),
    longest first, each with the placeholder it is kept under: with them, an answer that names its
    input (inventory_file, an error message) is kept too, and read back with this run's paths."""
    places = {str(workdir): "@@WORKDIR@@"}
    for i, arg in enumerate(args):
        if os.sep in arg:
            places.setdefault(arg, f"@@ARG{i}@@")
            folder = os.path.dirname(arg)
            if os.path.isabs(folder) and folder.count(os.sep) > 1:  # never "/" or "/tmp" alone
                places.setdefault(folder, f"@@ARGDIR{i}@@")
    return sorted(places.items(), key=lambda kv: -len(kv[0]))


def _swap(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        if old:
            text = text.replace(old, new)
    return text


def _kept(parts: list[str], make: Callable[[], str]) -> str:
    """make()'s text, kept under the oracle cache by ansible-core's version and PARTS."""
    key = hashlib.sha256("\0".join([require_ansible(), *parts]).encode()).hexdigest()
    cached = CACHE.parent / "ansible-vault" / f"{key}.txt"
    if cached.exists():
        return cached.read_text()
    text = make()
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(cached)
    return text


# ansible-vault costs about half a second a call. Any ciphertext it made for a password decrypts
# to the same plaintext (a salt apart), so one made earlier for the same version, plaintext and
# password is as good a test input as a new one, and the oracle's cached answer for it still holds.
VAULT = ANSIBLE_INVENTORY.parent / "ansible-vault"


def vault_encrypt_string(value: str, password: Path, env: dict[str, str]) -> str:
    """`!vault |` and the indented ciphertext lines, as `ansible-vault encrypt_string` prints them."""
    def make() -> str:
        return subprocess.run([str(VAULT), "encrypt_string", "--vault-password-file", str(password), value],
                              capture_output=True, text=True, env=env, check=True, timeout=120).stdout.strip()
    return _kept(["string", value, password.read_text()], make)


def vault_encrypt_file(path: Path, password: Path, env: dict[str, str]) -> None:
    """`ansible-vault encrypt PATH`: the file's text replaced by its ciphertext."""
    def make() -> str:
        subprocess.run([str(VAULT), "encrypt", "--vault-password-file", str(password), str(path)],
                       check=True, capture_output=True, env=env, timeout=120)
        return path.read_text()
    path.write_text(_kept(["file", path.read_text(), password.read_text()], make))


def run_many(arg_lists: list[list[str]], workdir: Path) -> list[subprocess.CompletedProcess]:
    """Run `ansible-inventory ARGS` for each list, a few at a time (each call costs about a second).

    The working folder is an empty one: ansible-inventory also reads group_vars/ from its current
    folder (as a playbook folder), which would blur the comparison.
    """
    env = isolated_env(workdir)
    version = require_ansible()

    def one(args: list[str]) -> subprocess.CompletedProcess:
        key = _cache_key(version, args)
        cached = CACHE / f"{key}.json" if key else None
        places = _places(args, workdir)
        back = [(hold, path) for path, hold in places]
        if cached is not None and cached.exists():
            doc = json.loads(cached.read_text())
            return subprocess.CompletedProcess([str(ANSIBLE_INVENTORY), *args], doc["rc"], _swap(doc["out"], back),
                                               _swap(doc["err"], back))
        proc = subprocess.run([str(ANSIBLE_INVENTORY), *args], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=120)
        if cached is not None:
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"rc": proc.returncode, "out": _swap(proc.stdout, places),
                                       "err": _swap(proc.stderr, places)}))
            tmp.replace(cached)
        return proc

    with ThreadPoolExecutor(max_workers=max(2, min(6, (os.cpu_count() or 2) * 2))) as pool:
        return list(pool.map(one, arg_lists))
