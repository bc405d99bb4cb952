"""Inventories: which hosts exist, how to reach them, and their variables.

One resolved shape (`Inventory` of `Host`s) whatever the source: llmops' own YAML (this
module), an Ansible INI/YAML inventory (llmops.load.ansible), or the built-in default
(localhost over a local connection). Variable precedence follows Ansible: `all` group vars,
then other groups from parents to children (same depth: by name), then host vars; extra
vars (-e) are applied by the planner on top of everything.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, Problem
from llmops.limits import MAX_PATTERN_SECONDS, cpu_deadline
from llmops.load import yamlsrc
from llmops.load.schema import HostEntry, InventoryFile
from llmops.load.validate import safe_name, validate


@dataclass(eq=False)
class Host:
    name: str
    connection: str = "local"
    address: str = "127.0.0.1"
    user: str | None = None
    port: int = 22
    key: str | None = None
    host_key_checking: bool = True
    known_hosts: str | None = None
    python: str = "python3"
    connect_timeout: float = 10.0
    vars: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.connection == "local"

    def describe(self) -> str:
        if self.is_local:
            return f"{self.name} (local)"
        user = f"{self.user}@" if self.user else ""
        return f"{self.name} (ssh {user}{self.address}:{self.port})"


@dataclass
class Inventory:
    hosts: dict[str, Host]
    group_hosts: dict[str, list[str]]
    children: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "<default>"

    def select(self, pattern: str) -> list[Host]:
        """Hosts matching an Ansible-style pattern (`all`, `group`, `a:b`, `a:!b`, `a:&b`, `web*`, `~regex`)."""
        names = select_names(pattern, list(self.hosts), self.group_hosts)
        return [self.hosts[n] for n in names]


def default_inventory() -> Inventory:
    host = Host(name="localhost", connection="local", address="127.0.0.1", groups=("all", "ungrouped"))
    return Inventory(hosts={"localhost": host}, group_hosts={"all": ["localhost"], "ungrouped": ["localhost"]},
                     source="<default: localhost, local connection>")


def load_llmops_inventory(path: Path) -> Inventory:
    located = yamlsrc.load_file(path)
    if located.data is None:
        raise ConfigError(Problem(str(path), 1, 1, "inventory is empty", "a mapping with a 'hosts' key"))
    if not isinstance(located.data, dict):
        raise ConfigError(located.problem((), "inventory must be a mapping", "top-level keys hosts, groups, vars"))
    spec = validate(InventoryFile, located)
    problems: list[Problem] = []

    children = {name: list(g.children) for name, g in spec.groups.items()}
    for hname in spec.hosts:
        try:
            safe_name(str(hname))
        except ValueError as exc:
            problems.append(located.problem(("hosts", hname), f"host name: {exc}", key=True))
    for gname, group in spec.groups.items():
        if gname in ("all", "ungrouped"):
            problems.append(located.problem(("groups", gname), f"group name {gname!r} is reserved",
                                            "another group name", key=True))
        for i, h in enumerate(group.hosts):
            if h not in spec.hosts:
                problems.append(located.problem(("groups", gname, "hosts", i), f"unknown host {h!r} in group {gname!r}",
                                                "a host defined under 'hosts'"))
        for i, c in enumerate(group.children):
            if c not in spec.groups:
                problems.append(located.problem(("groups", gname, "children", i),
                                                f"unknown group {c!r} in children of {gname!r}", "a group defined under 'groups'"))
    cycle = find_cycle(children)
    if cycle:
        gname = cycle[0]
        idx = spec.groups[gname].children.index(cycle[1])
        problems.append(located.problem(("groups", gname, "children", idx),
                                        "cyclic group children: " + " -> ".join(cycle), "groups that do not contain themselves"))
    if problems:
        raise ConfigError(problems)

    group_vars = {"all": dict(spec.vars)}
    group_vars.update({name: dict(g.vars) for name, g in spec.groups.items()})
    direct = {name: list(g.hosts) for name, g in spec.groups.items()}
    hosts: dict[str, Host] = {}
    for name, entry in spec.hosts.items():
        entry = entry or HostEntry()
        hosts[name] = Host(
            name=name, connection=entry.connection, address=entry.host or name, user=entry.user, port=entry.port,
            key=entry.key, host_key_checking=entry.host_key_checking, known_hosts=entry.known_hosts,
            python=entry.python, connect_timeout=entry.connect_timeout,
        )
    return assemble(hosts, direct, children, group_vars, {n: dict((e or HostEntry()).vars) for n, e in spec.hosts.items()},
                    source=str(path))


def assemble(hosts: dict[str, Host], direct: dict[str, list[str]], children: dict[str, list[str]],
             group_vars: dict[str, dict[str, Any]], host_vars: dict[str, dict[str, Any]], *, source: str,
             priorities: dict[str, int] | None = None) -> Inventory:
    """Resolve group membership and merge variables in Ansible's order."""
    priorities = priorities or {}
    groups = set(direct) | set(children) | {c for cs in children.values() for c in cs}
    groups.discard("all")
    members: dict[str, list[str]] = {}

    def all_members(g: str, stack: tuple[str, ...] = ()) -> list[str]:
        if g in members:
            return members[g]
        out = list(direct.get(g, []))
        for c in children.get(g, []):
            if c not in stack:
                out += [h for h in all_members(c, stack + (g,)) if h not in out]
        members[g] = list(dict.fromkeys(out))
        return members[g]

    for g in groups:
        all_members(g)
    grouped = {h for g in groups for h in members[g]}
    members["all"] = list(hosts)
    members["ungrouped"] = [h for h in hosts if h not in grouped]

    depth = group_depths(children, groups)
    for name, host in hosts.items():
        host_groups = sorted((g for g in groups if name in members[g]),
                             key=lambda g: (depth.get(g, 1), priorities.get(g, 1), g))
        merged: dict[str, Any] = {}
        merged.update(group_vars.get("all", {}))
        if name in members["ungrouped"]:
            merged.update(group_vars.get("ungrouped", {}))
        for g in host_groups:
            merged.update(group_vars.get(g, {}))
        merged.update(host_vars.get(name, {}))
        host.vars = merged
        host.groups = tuple(["all"] + (["ungrouped"] if name in members["ungrouped"] else []) + host_groups)
    return Inventory(hosts=hosts, group_hosts=members, children={g: list(children.get(g, [])) for g in groups},
                     group_vars=group_vars, source=source)


def group_depths(children: dict[str, list[str]], groups: set[str]) -> dict[str, int]:
    """Depth of each group below `all` (longest path), as Ansible uses for variable precedence."""
    depth = {g: 1 for g in groups}
    changed = True
    rounds = 0
    while changed and rounds <= len(groups) + 1:
        changed = False
        rounds += 1
        for parent, cs in children.items():
            for c in cs:
                if c in depth and depth[c] < depth.get(parent, 1) + 1:
                    depth[c] = depth.get(parent, 1) + 1
                    changed = True
    return depth


def find_cycle(children: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(g: str) -> list[str] | None:
        state[g] = 1
        path.append(g)
        for c in children.get(g, []):
            if state.get(c) == 1:
                return path[path.index(c):] + [c]
            if state.get(c) is None:
                found = visit(c)
                if found:
                    return found
        path.pop()
        state[g] = 2
        return None

    for g in list(children):
        if state.get(g) is None:
            found = visit(g)
            if found:
                return found
    return None


def select_names(pattern: str, host_names: list[str], group_hosts: dict[str, list[str]]) -> list[str]:
    """Ansible host patterns: union (`a:b`, `a,b`), intersection (`&a`), exclusion (`!a`)."""
    terms = [t.strip() for t in re.split(r"[,:](?![^\[]*\])", pattern) if t.strip()] if pattern else ["all"]
    selected: list[str] = []
    intersect: list[set[str]] = []
    exclude: set[str] = set()
    for term in terms:
        if term.startswith("!"):
            exclude |= set(_match(term[1:], host_names, group_hosts))
        elif term.startswith("&"):
            intersect.append(set(_match(term[1:], host_names, group_hosts)))
        else:
            selected += [h for h in _match(term, host_names, group_hosts) if h not in selected]
    if not any(not t.startswith(("!", "&")) for t in terms):
        selected = list(host_names)
    for s in intersect:
        selected = [h for h in selected if h in s]
    return [h for h in selected if h not in exclude]


class PatternError(ValueError):
    """A host pattern that cannot be used (a `~regex` that does not compile); callers locate it."""

    def __init__(self, message: str, term: str, offset: int,
                 expected: str = "a valid Python regular expression after ~"):
        super().__init__(message)
        self.term, self.offset, self.expected = term, offset, expected

    def problem(self, file: str, line: int, col: int, pattern: str) -> Problem:
        start = max(pattern.find(self.term), 0)
        return Problem(file, line, col + start + 1 + self.offset, str(self), self.expected)


def _regex_cpu_bound(term: str) -> Any:
    """`~(a|aa)+$` against a 41-letter host name backtracks for minutes: the matching of one
    pattern gets MAX_PATTERN_SECONDS of CPU (Python's re checks signals while it matches)."""
    return cpu_deadline(MAX_PATTERN_SECONDS, lambda: PatternError(
        f"regular expression {term[1:]!r} took more than {MAX_PATTERN_SECONDS:g} s of CPU to match the host names",
        term, 0, "a regular expression without nested repetition (LLMOPS_MAX_PATTERN_SECONDS raises the bound)"))


def _match(term: str, host_names: list[str], group_hosts: dict[str, list[str]]) -> list[str]:
    if term in ("all", "*"):
        return list(host_names)
    if term in group_hosts:
        return list(group_hosts[term])
    if term in host_names:
        return [term]
    if term.startswith("~"):
        try:
            rx = re.compile(term[1:])
        except re.error as exc:
            raise PatternError(f"invalid regular expression {term[1:]!r}: {exc.msg} at position {exc.pos}",
                               term, exc.pos or 0) from None
        with _regex_cpu_bound(term):
            names = [h for h in host_names if rx.search(h)]
            seen = set(names)
            for group in [g for g in group_hosts if rx.search(g)]:
                for h in group_hosts[group]:
                    if h not in seen:
                        seen.add(h)
                        names.append(h)
        return names
    if any(ch in term for ch in "*?["):
        names = [h for h in host_names if fnmatch.fnmatchcase(h, term)]
        names += [h for g, hs in group_hosts.items() if fnmatch.fnmatchcase(g, term) for h in hs if h not in names]
        return names
    return []
