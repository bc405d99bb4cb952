"""Run the real `ansible-inventory` (from ansible-core in this venv) in a clean, isolated setting."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

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


def run_many(arg_lists: list[list[str]], workdir: Path) -> list[subprocess.CompletedProcess]:
    """Run `ansible-inventory ARGS` for each list, a few at a time (each call costs about a second).

    The working folder is an empty one: ansible-inventory also reads group_vars/ from its current
    folder (as a playbook folder), which would blur the comparison.
    """
    env = isolated_env(workdir)

    def one(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([str(ANSIBLE_INVENTORY), *args], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=max(2, min(6, (os.cpu_count() or 2) * 2))) as pool:
        return list(pool.map(one, arg_lists))
