"""A resolved inventory in the shapes `ansible-inventory` prints: --list, --host and --graph.

So users can diff `llmops inventory -i X --list` against `ansible-inventory -i X --list`:
`dumps(to_ansible_list(inv))` gives the same JSON text (keys sorted, 4-space indent, `_meta.hostvars`
holding only hosts that have variables, groups without hosts or children left out of the top level but
still named among their parent's children). Values are converted as Ansible's encoder does: dates as
ISO text, `!unsafe` strings as {"__ansible_unsafe": ...} (in --list only), vault values as their
ciphertext {"__ansible_vault": ...} (also once decrypted).

Works for any Inventory; one read from Ansible sources (AnsibleInventory) keeps each group's own hosts
in Ansible's order, for others they are derived from the group members.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from llmops.errors import LlmopsError
from llmops.load.ansible import AnsibleInventory, UnsafeText
from llmops.load.ansible_vault import DecryptedVault, VaultText
from llmops.load.inventory import Host, Inventory

# What ansible-core 2.19 names its JSON format in `_meta`; older releases print no `profile`.
LIST_PROFILE = "inventory_legacy"


def to_ansible_list(inv: Inventory) -> dict[str, Any]:
    """The structure `ansible-inventory --list` prints."""
    direct, children = _direct_hosts(inv), _children(inv)
    out: dict[str, Any] = {}
    emitted: set[str] = set()

    def emit(group: str) -> None:
        entry: dict[str, Any] = {}
        if group != "all" and direct.get(group):
            entry["hosts"] = list(direct[group])
        if children.get(group):
            entry["children"] = list(children[group])
        for child in children.get(group, []):
            if child not in emitted:
                emitted.add(child)
                emit(child)
        if entry:
            out[group] = entry

    emit("all")
    hostvars = {name: _host_vars(host.vars, mark_unsafe=True) for name, host in inv.hosts.items()}
    out["_meta"] = {"hostvars": {name: v for name, v in hostvars.items() if v}, "profile": LIST_PROFILE}
    return out


def to_ansible_host(inv: Inventory, name: str) -> dict[str, Any]:
    """The variables `ansible-inventory --host NAME` prints (Ansible's implicit localhost included).
    Unlike --list, it prints `!unsafe` strings plainly."""
    return _host_vars(_find_host(inv, name).vars, mark_unsafe=False)


def to_graph(inv: Inventory, group: str = "all") -> str:
    """The tree `ansible-inventory --graph [GROUP]` prints: child groups first, then the group's hosts."""
    direct, children = _direct_hosts(inv), _children(inv)
    if group != "all" and group not in children and group not in direct:
        raise LlmopsError(f"no group named {group!r} in {inv.source} (--graph takes a group name)")
    lines: list[str] = []

    def name_line(text: str, depth: int) -> str:
        return "  |" * depth + "--" + text if depth else text

    def walk(g: str, depth: int) -> None:
        lines.append(name_line(f"@{g}:", depth))
        for child in children.get(g, []):
            walk(child, depth + 1)
        if g != "all":
            lines.extend(name_line(h, depth + 1) for h in direct.get(g, []))

    walk(group, 0)
    return "\n".join(lines)


def dumps(data: Any) -> str:
    """JSON text formatted as ansible-inventory formats it (non-ASCII written as raw UTF-8, as Ansible does)."""
    return json.dumps(data, sort_keys=True, indent=4, ensure_ascii=False)


def _find_host(inv: Inventory, name: str) -> Host:
    if name in inv.hosts:
        return inv.hosts[name]
    if isinstance(inv, AnsibleInventory) and name in inv.implicit_hosts:
        return inv.implicit_hosts[name]
    raise LlmopsError(f"no host named {name!r} in {inv.source} (--host takes one host name)")


def _direct_hosts(inv: Inventory) -> dict[str, list[str]]:
    """Each group's own hosts. Other inventories only know all members: a host reached through a
    child group is then taken to be the child's, not also the parent's."""
    if isinstance(inv, AnsibleInventory):
        return inv.direct_hosts
    children = _children(inv)
    direct: dict[str, list[str]] = {}
    for group, members in inv.group_hosts.items():
        via_children = {h for c in children.get(group, []) for h in inv.group_hosts.get(c, [])}
        direct[group] = [h for h in members if h not in via_children]
    return direct


def _children(inv: Inventory) -> dict[str, list[str]]:
    """Child groups per group, with `all` holding `ungrouped` then every group that has no parent."""
    if "all" in inv.children:
        return inv.children
    children = {g: list(cs) for g, cs in inv.children.items()}
    nested = {c for cs in children.values() for c in cs}
    groups = sorted(g for g in set(inv.group_hosts) | set(children) if g not in ("all", "ungrouped"))
    children["all"] = ["ungrouped"] + [g for g in groups if g not in nested]
    return children


def _json_key(key: Any) -> str:
    """Mapping keys as Python's json module writes them, done early so that sort_keys can compare them."""
    if isinstance(key, str):
        return str(key)
    if key is True or key is False or key is None or isinstance(key, (int, float)):
        return json.dumps(key)
    return str(key)


def _host_vars(values: dict[Any, Any], *, mark_unsafe: bool) -> dict[str, Any]:
    return {_json_key(k): _jsonable(v, mark_unsafe) for k, v in values.items()}


def _jsonable(value: Any, mark_unsafe: bool) -> Any:
    if isinstance(value, UnsafeText) and mark_unsafe:
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, VaultText):
        return {"__ansible_vault": str(value)}
    if isinstance(value, DecryptedVault):  # listed encrypted, as ansible-inventory lists it with a password too
        return {"__ansible_vault": value.ciphertext}
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v, mark_unsafe) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, mark_unsafe) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
