"""Which reader takes an `-i` source: llmops' own YAML, or Ansible's formats (llmops.load.ansible).

This is the one place that knows both readers, so that neither imports the other: llmops.load.ansible
builds on llmops.load.inventory's Host and Inventory, and nothing in llmops.load.inventory reaches back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from llmops.errors import ConfigError, Problem
from llmops.load import ansible, yamlsrc
from llmops.load.ansible_tools import VaultSecret
from llmops.load.inventory import Inventory, default_inventory, load_llmops_inventory


def load_inventory(sources: str | Path | Sequence[str | Path] | None, vault: VaultSecret | None = None) -> Inventory:
    """One inventory from zero, one or several `-i` sources (several are merged in order, as Ansible does)."""
    if sources is None:
        return default_inventory()
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not paths:
        return default_inventory()
    if len(paths) == 1 and not looks_like_ansible(str(paths[0])):
        return load_llmops_inventory(Path(paths[0]))
    for path in paths:
        if not looks_like_ansible(str(path)):
            raise ConfigError(Problem(str(path), 1, 1, "an llmops inventory cannot be merged with other -i sources",
                                      "one llmops inventory, or Ansible inventories only"))
    return ansible.load_sources([str(p) for p in paths], vault)


def looks_like_ansible(path: str) -> bool:
    """llmops' own format is a YAML mapping with only `hosts`/`groups`/`vars` at the top and
    `hosts` a mapping; anything else (INI, `all:` trees, JSON, TOML, folders, host lists, scripts,
    empty files) is Ansible's."""
    if ansible.is_host_list(path):
        return True
    p = Path(path)
    if not p.exists() or p.is_dir() or p.suffix == ".toml":
        return True
    try:  # bounded, regular files only: a device or FIFO is refused by llmops' own reader
        head = yamlsrc.read_bounded(p)[:4096]
    except ConfigError:
        return False
    except OSError:
        return True  # Ansible's reader names the problem
    if head.startswith(b"#!") and os.access(p, os.X_OK) or head.lstrip().startswith(ansible.VAULT_HEADER):
        return True
    try:
        located = yamlsrc.load_file(p)
    except ConfigError:
        text = head.decode("utf-8", errors="replace")
        # INI inventories are rarely valid YAML; a section header or a bare host line says so.
        return any(line.strip().startswith("[") or (line.strip() and ":" not in line and "=" in line)
                   for line in text.splitlines() if line.strip() and not line.strip().startswith(("#", ";")))
    data = located.data
    if isinstance(data, dict) and set(data) <= {"hosts", "groups", "vars"} and "hosts" in data:
        return False  # ours (an Ansible group literally named "hosts" at the top would be read as ours)
    return data is None or isinstance(data, (dict, str))
