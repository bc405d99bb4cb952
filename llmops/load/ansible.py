"""Ansible inventories read unchanged: INI, YAML/JSON, a folder of them, group_vars/ and host_vars/.

The goal is that `llmops inventory --list` and `ansible-inventory --list` print the same thing for
the same source (tests/inventory compares them on a corpus against the installed ansible-core), so
this module follows what ansible-core does, including its odd corners:

* A file is tried as YAML first when its extension is empty, .yml, .yaml or .json (JSON is tried
  before YAML, as Ansible's loader does), then as INI; .toml is TOML. Empty files are empty
  inventories, `a,b,` is a host list, several sources merge in order (load_sources).
* Inventory plugin configs and scripts are read by running ansible-inventory (llmops.load.ansible_tools)
  and taking its JSON; whole-file Ansible Vault through ansible-vault.
* Connection values are rendered with the magic variables llmops can supply; a host whose values
  cannot be used stays listed as given, and is an error only when selected (AnsibleInventory.select).
* YAML is read as YAML 1.1 by PyYAML, the loader Ansible uses (`yes`/`on` are booleans, `0755` is
  octal, `1e3` is a string), with `!unsafe` and `!vault` kept as marked strings.
* INI values on host lines *and* in `[g:vars]` go through `ast.literal_eval` (ansible-core 2.19; the
  old documentation still says `[g:vars]` values are strings), after shlex splitting on host lines.
* Variables are layered as Ansible's VariableManager does for a host, lowest first: the inventory's
  `all` vars, the inventory vars of the host's other groups sorted by (depth, ansible_group_priority,
  name), group_vars/all, group_vars/<group> in the same order, the inventory's host vars, host_vars/<host>.
  Only inventory sources set a group's priority; `ansible_group_priority` in group_vars/ is a plain var.

Everything wrong in the input is a ConfigError pointing at FILE:LINE:COL. Inside a folder source, a
file that no parser accepts is skipped with a warning, as Ansible does (see AnsibleInventory.warnings).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shlex
import string
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops.errors import ConfigError, Problem
from llmops.limits import MAX_HOSTS, MAX_RANGE_HOSTS
from llmops.load import ansible_tools
from llmops.load.ansible_tools import VaultSecret
from llmops.load.ansible_vault import InlineVault, VaultText, vault_text
from llmops.load.inventory import Host, Inventory
from llmops.load.validate import safe_name
from llmops.load.yamlsrc import MAX_NODES, Located, read_bounded

Where = tuple[str, int, int]  # file, line, column (1-based) of a definition

YAML_EXTENSIONS = ("", ".yml", ".yaml", ".json")  # what Ansible's yaml plugin and vars files accept
LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")  # names Ansible may create an implicit localhost for

# Files Ansible skips inside a folder source: hidden ones, the vars folders, and these endings.
_SKIPPED_IN_FOLDER = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
    + "|".join(re.escape(e) + "$" for e in (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst",
                                             ".orig", ".cfg", ".retry"))
)


class UnsafeText(str):
    """A string marked `!unsafe` in YAML: Ansible never templates it, and prints it as {"__ansible_unsafe": ...}."""


@dataclass
class AnsibleInventory(Inventory):
    """An Inventory read from Ansible sources, keeping what `ansible-inventory` prints.

    `direct_hosts` holds each group's own hosts in the order Ansible added them (group_hosts has all
    members, children included); `children` also has an entry for `all`.
    """

    direct_hosts: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    implicit_hosts: dict[str, Host] = field(default_factory=dict)
    # Hosts whose connection values could not be rendered: an error only once a play uses them.
    unusable: dict[str, ConfigError] = field(default_factory=dict)

    def select(self, pattern: str) -> list[Host]:
        """As Inventory.select, plus Ansible's implicit localhost when a pattern names it and no host does."""
        selected = self._select(pattern)
        problems = [p for h in selected if h.name in self.unusable for p in self.unusable[h.name].problems]
        if problems:
            raise ConfigError(problems)
        return selected

    def _select(self, pattern: str) -> list[Host]:
        selected = super().select(pattern)
        terms = [t.strip() for t in re.split(r"[,:](?![^\[]*\])", pattern or "all") if t.strip()]
        if pattern and pattern.strip() == "::1":
            terms = ["::1"]
        excluded = {t[1:] for t in terms if t.startswith("!")}
        for term in terms:
            if term in self.implicit_hosts and term not in excluded and term not in self.group_hosts:
                host = self.implicit_hosts[term]
                if host not in selected:
                    selected.append(host)
        return selected


def load(path: str | Path, vault: VaultSecret | None = None) -> AnsibleInventory:
    """Read an Ansible inventory file or folder (with its group_vars/ and host_vars/) into an Inventory."""
    return load_sources([path], vault)


def load_sources(paths: list[str | Path], vault: VaultSecret | None = None) -> AnsibleInventory:
    """Several `-i` sources merged in order into one inventory, as Ansible does: each may be a file,
    a folder, a host list (`web1,web2,`), a TOML file, or (through ansible-inventory) a plugin config
    or an inventory script. group_vars/ and host_vars/ are read beside every file source."""
    builder = _Builder()
    builder.vault = vault
    vars_bases: list[Path] = []
    try:
        for path in paths:
            base = _read_source(str(path), builder)
            if base is not None and base not in vars_bases:
                vars_bases.append(base)
    except _NeedsAnsible as need:
        # A plugin (constructed...) may build on the hosts of the sources before it: ansible-inventory
        # gets them all, in order, and its JSON has every group_vars/ and host_vars/ already merged.
        builder = _Builder()
        builder.vault = vault
        _read_list_json(ansible_tools.inventory_list([str(p) for p in paths], need.why, vault, need.source),
                        need.source, builder)
        vars_bases = []
    builder.reconcile()
    return _resolve(builder, vars_bases, ",".join(str(p) for p in paths))


def is_host_list(path: str) -> bool:
    """`-i web1,web2,` (Ansible's host_list plugin): a comma and no such file."""
    return "," in path and not os.path.exists(path)


def _read_source(path: str, builder: _Builder) -> Path | None:
    """Read one source into builder; return the folder whose group_vars/ and host_vars/ apply."""
    if is_host_list(path):
        where: Where = (path, 1, 1)
        for item in path.split(","):
            if item.strip():
                name, port = _split_port(item.strip())
                builder.add_host(name, "ungrouped", port, where)
        return None
    source = Path(path)
    if not source.exists():
        raise ConfigError(Problem(path, 1, 1, "inventory not found", "an inventory file or folder, or a host list 'a,b,'"))
    if source.is_dir():
        _read_folder(source, builder)
        return source
    try:
        _read_file(source, builder, in_folder=False)
    except _NeedsAnsible as need:
        need.source = path
        raise
    return source.parent


class _NeedsAnsible(Exception):
    """A source that only ansible-core can read (a plugin config or a script)."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why
        self.source = ""


# --------------------------------------------------------------------------------------------------
# The inventory as it grows: groups and hosts with the relationships Ansible keeps while reading.


@dataclass
class _Group:
    name: str
    where: Where
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, Where] = field(default_factory=dict)
    priority: int = 1


@dataclass
class _HostEntry:
    name: str
    where: Where
    vars: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, Where] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # groups it was put in directly


def _problem(where: Where, message: str, expected: str | None = None) -> Problem:
    return Problem(where[0], where[1], where[2], message, expected)


class _Builder:
    """Groups and hosts with Ansible's rules for adding them (no duplicates, no cycles, `all` on top)."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, _HostEntry] = {}
        self.warnings: list[Problem] = []
        self.vault: VaultSecret | None = None
        nowhere: Where = ("<implicit>", 1, 1)
        self.add_group("all", nowhere)
        self.add_group("ungrouped", nowhere)
        self.add_child("all", "ungrouped", nowhere)

    def add_group(self, name: str, where: Where) -> str:
        if not name:
            raise ConfigError(_problem(where, "empty group name", "a group name"))
        if name not in self.groups:
            self.groups[name] = _Group(name, where)
        return name

    def add_host(self, name: str, group: str | None, port: int | None, where: Where) -> None:
        if not name:
            raise ConfigError(_problem(where, "empty host name", "a host name"))
        _check_host_name(name, where)
        if name not in self.hosts and len(self.hosts) >= MAX_HOSTS:
            raise ConfigError(_problem(where, f"inventory has more than {MAX_HOSTS} hosts",
                                       "fewer hosts (LLMOPS_MAX_HOSTS raises the bound)"))
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = _HostEntry(name, where)
            if port:  # as Ansible: the port of `host:port` counts only where the host first appears
                host.vars["ansible_port"] = int(port)
                host.origins["ansible_port"] = where
        if group is not None:
            # host.groups mirrors group membership and stays short; testing it instead of the
            # group's member list keeps a 10,000-host range linear (the list test was quadratic).
            if group not in host.groups:
                self.groups[group].hosts.append(name)
                host.groups.append(group)

    def ancestors(self, group: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[group].parents)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(self.groups[g].parents)
        return seen

    def add_child(self, parent: str, child: str, where: Where) -> None:
        """Make `child` (a group, or as in Ansible also a host) a member of `parent`."""
        if child in self.groups:
            if child == parent or child in self.ancestors(parent):
                chain = self._path_between(child, parent) + [child]
                raise ConfigError(_problem(where, "cyclic group children: " + " -> ".join(chain),
                                           "groups that do not contain themselves"))
            if child not in self.groups[parent].children:
                self.groups[parent].children.append(child)
                if parent not in self.groups[child].parents:
                    self.groups[child].parents.append(parent)
        elif child in self.hosts:
            self.add_host(child, parent, None, where)
        else:
            raise ConfigError(_problem(where, f"{child!r} is neither a group nor a host", "a defined group"))

    def _path_between(self, top: str, bottom: str) -> list[str]:
        """Group names from `top` down to `bottom` through children (for cycle messages)."""
        todo: list[list[str]] = [[top]]
        while todo:
            path = todo.pop(0)
            if path[-1] == bottom:
                return path
            todo.extend(path + [c] for c in self.groups[path[-1]].children if c not in path)
        return [top, bottom]

    def set_variable(self, entity: str, key: Any, value: Any, where: Where) -> None:
        """Set a variable on a group or host; like Ansible, a group wins when both have the name."""
        if entity in self.groups:
            group = self.groups[entity]
            if key == "ansible_group_priority":
                group.priority = _priority(value, where)
                return
            group.vars[key] = value
            group.origins[key] = where
        elif entity in self.hosts:
            self.hosts[entity].vars[key] = value
            self.hosts[entity].origins[key] = where
        else:  # pragma: no cover - readers only set variables on what they just added
            raise ConfigError(_problem(where, f"no group or host named {entity!r}"))

    def reconcile(self) -> None:
        """What Ansible does once all sources are read: parentless groups go under `all`, and
        `ungrouped` ends up holding exactly the hosts that are in no other group."""
        for name, group in list(self.groups.items()):
            if name != "all" and not group.parents:
                self.add_child("all", name, group.where)
        ungrouped = self.groups["ungrouped"]
        leaving: set[str] = set()  # removed in one pass below: list.remove per host is quadratic
        for name, host in self.hosts.items():
            elsewhere = [g for g in host.groups if g not in ("all", "ungrouped")]
            if elsewhere and "ungrouped" in host.groups:
                leaving.add(name)
                host.groups.remove("ungrouped")
            elif not elsewhere and "ungrouped" not in host.groups:
                ungrouped.hosts.append(name)
                host.groups.append("ungrouped")
        if leaving:
            ungrouped.hosts = [name for name in ungrouped.hosts if name not in leaving]

    def snapshot(self) -> _Builder:
        return copy.deepcopy(self)

    def restore(self, other: _Builder) -> None:
        self.groups, self.hosts, self.warnings = other.groups, other.hosts, other.warnings


def _check_host_name(name: str, where: Where) -> None:
    """Host names become folders in the run directory: one safe path component (NAME_RULE)."""
    try:
        safe_name(name)
    except ValueError as exc:
        raise ConfigError(_problem(where, f"host name: {exc}")) from None


def _priority(value: Any, where: Where) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(_problem(where, f"ansible_group_priority {value!r} is not an integer",
                                   "an integer; higher wins among groups of the same depth")) from None


# --------------------------------------------------------------------------------------------------
# Sources: a folder, then each file through the parsers Ansible would try.


def _read_folder(folder: Path, builder: _Builder) -> None:
    """Every inventory file in the folder and its subfolders, sorted by name, as Ansible reads a folder."""
    try:
        names = sorted(os.listdir(folder), key=os.fsencode)
    except OSError as exc:
        raise ConfigError(Problem(str(folder), 1, 1, f"cannot read folder: {exc.strerror}")) from None
    for name in names:
        if _SKIPPED_IN_FOLDER.search(name):
            continue
        entry = folder / name
        if entry.is_dir():
            _read_folder(entry, builder)
        elif entry.is_file():
            _read_file(entry, builder, in_folder=True)


def _read_file(path: Path, builder: _Builder, *, in_folder: bool) -> None:
    """Parse one file into `builder`: YAML/JSON, then INI, keeping nothing from a parser that failed.

    A file alone is an error when no parser takes it; inside a folder it is skipped with a warning,
    as Ansible does (it also warns and goes on).
    """
    name = str(path)
    ext = os.path.splitext(path.name)[1]  # case matters, as in Ansible: .YML is not YAML to it
    try:
        raw = _plaintext(path, _read_bytes(path), builder.vault)
        if raw.startswith(b"#!") and os.access(path, os.X_OK):
            if in_folder:
                raise ConfigError(Problem(name, 1, 1, "an inventory script inside a folder source is not run",
                                          "give the script as its own -i source"))
            raise _NeedsAnsible("an inventory script")
        if not raw.strip():
            return  # an empty source is an empty inventory, as for Ansible
        if ext == ".toml":
            _read_toml(raw, name, builder)
            return
        yaml_error: ConfigError | None = None
        yaml_was_mapping = False
        if ext in YAML_EXTENSIONS:
            yaml_error, yaml_was_mapping = _try_yaml(raw, name, builder)
            if yaml_error is None:
                return
        before = builder.snapshot()
        try:
            _IniReader(name, raw, builder).read()
        except ConfigError as ini_error:
            builder.restore(before)
            # Report what the author most likely meant: YAML for a YAML extension or a YAML mapping, else INI.
            if yaml_error is not None and (ext != "" or yaml_was_mapping):
                raise yaml_error from None
            raise ini_error from None
    except ConfigError as exc:
        if not in_folder:
            raise
        builder.warnings.extend(Problem(p.file, p.line, p.col, "skipped: " + p.message, p.expected)
                                for p in exc.problems)


def _try_yaml(raw: bytes, name: str, builder: _Builder) -> tuple[ConfigError | None, bool]:
    """Read the file as a YAML inventory. On failure, return the error (nothing is left in `builder`)
    and whether the file was at least a YAML mapping."""
    try:
        located = _load_yaml_or_json(raw, name)
    except ConfigError as exc:
        return exc, False
    data = located.data
    if isinstance(data, dict) and data.get("plugin"):  # Ansible's `auto` plugin would take it
        raise _NeedsAnsible(f"an inventory plugin configuration (plugin: {data['plugin']})")
    before = builder.snapshot()
    try:
        _YamlInventoryReader(located, builder).read()
    except ConfigError as exc:
        builder.restore(before)
        return exc, isinstance(data, dict)
    return None, True


VAULT_HEADER = b"$ANSIBLE_VAULT;"


def _plaintext(path: Path, raw: bytes, vault: VaultSecret | None) -> bytes:
    """A whole-file Ansible Vault is decrypted through ansible-vault (named, never read as INI)."""
    if raw.lstrip().startswith(VAULT_HEADER):
        return ansible_tools.vault_decrypt(str(path), vault)
    return raw


def _read_toml(raw: bytes, name: str, builder: _Builder) -> None:
    """A TOML inventory (Ansible's toml plugin): the YAML layout, with `children` a list of names."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(_decode(raw, name))
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"line (\d+), column (\d+)", str(exc))  # tomllib puts the position in the text
        line, col = (int(at[1]), int(at[2])) if at else (1, 1)
        raise ConfigError(Problem(name, line, col, f"not valid TOML: {str(exc).split(' (at')[0]}",
                                  "a TOML inventory")) from None
    if not data:
        return
    shaped: dict[str, Any] = {}
    for group, group_data in data.items():
        if isinstance(group_data, dict) and "children" in group_data:
            children = group_data["children"]
            if not isinstance(children, list):
                raise ConfigError(Problem(name, 1, 1, f"'children' of group {group!r} is a {_type_name(children)}",
                                          "a list of group names"))
            group_data = {**group_data, "children": {str(c): {} for c in children}}
        shaped[group] = group_data
    before = builder.snapshot()
    try:
        _YamlInventoryReader(Located(name, shaped), builder).read()
    except ConfigError:
        builder.restore(before)
        raise


def _read_list_json(data: dict[str, Any], name: str, builder: _Builder) -> None:
    """The JSON `ansible-inventory --list` prints (a script's format): groups with hosts, children and
    vars, and `_meta.hostvars` with each host's variables already merged by Ansible."""
    where: Where = (name, 1, 1)
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    groups = {g: v for g, v in data.items() if g != "_meta" and isinstance(v, dict)}
    for group in groups:
        builder.add_group(group, where)
    for group, entry in groups.items():
        for host in entry.get("hosts") or []:
            builder.add_host(str(host), group if group != "all" else None, None, where)
        for key, value in (entry.get("vars") or {}).items():
            builder.set_variable(group, key, value, where)
    for group, entry in groups.items():
        for child in entry.get("children") or []:
            builder.add_group(child, where)
            builder.add_child(group, child, where)
    for host, values in hostvars.items():
        builder.add_host(str(host), None, None, where)
        for key, value in (values or {}).items():
            builder.set_variable(str(host), key, _from_list_json(value, where), where)


def _from_list_json(value: Any, where: Where) -> Any:
    """Ansible's JSON markers back to the values they stand for."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return UnsafeText(value["__ansible_unsafe"])
        if set(value) == {"__ansible_vault"}:
            return vault_text(value["__ansible_vault"], where)
        return {k: _from_list_json(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_list_json(v, where) for v in value]
    return value


def _read_bytes(path: Path) -> bytes:
    # Regular files only, read at most MAX_BYTES + 1 (devices, FIFOs and huge files are refused).
    return read_bounded(path, str(path))


# --------------------------------------------------------------------------------------------------
# YAML and JSON as Ansible's loader reads them (JSON first, then PyYAML's YAML 1.1), with positions.


class _AnsibleYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1 typing, as Ansible) plus Ansible's `!unsafe` and `!vault` tags."""


def _construct_as_if_untagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """Build a tagged node's value as Ansible does: resolve its tag as for a plain node, then construct."""
    plain = copy.copy(node)
    plain.tag = loader.resolve(type(node), node.value, (True, False))
    return loader.construct_object(plain, deep=True)


def _mark_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return UnsafeText(value)
    if isinstance(value, list):
        return [_mark_unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: _mark_unsafe(v) for k, v in value.items()}
    return value


def _construct_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return _mark_unsafe(_construct_as_if_untagged(loader, node))


def _construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> VaultText:
    value = _construct_as_if_untagged(loader, node)
    if not isinstance(value, str):
        raise yaml.constructor.ConstructorError(None, None, f"the {node.tag} tag needs a string value", node.start_mark)
    return vault_text(value, (getattr(loader, "llmops_file", "<yaml>"), node.start_mark.line + 1,
                              node.start_mark.column + 1))


_AnsibleYamlLoader.add_constructor("!unsafe", _construct_unsafe)
_AnsibleYamlLoader.add_constructor("!vault", _construct_vault)
_AnsibleYamlLoader.add_constructor("!vault-encrypted", _construct_vault)


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise ConfigError(Problem(name, line, col, "not UTF-8 text", "a UTF-8 text file")) from None
    if "\x00" in text:
        before = text[: text.index("\x00")]
        raise ConfigError(Problem(name, before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1,
                                  "NUL byte in file (binary file?)", "a text file"))
    return text


def _json_object_hook(obj: dict[str, Any]) -> Any:
    """Ansible's JSON decoder turns these two one-key objects back into marked strings."""
    if len(obj) == 1 and isinstance(obj.get("__ansible_unsafe"), str):
        return UnsafeText(obj["__ansible_unsafe"])
    if len(obj) == 1 and isinstance(obj.get("__ansible_vault"), str):
        return VaultText(obj["__ansible_vault"])
    return obj


def _load_yaml_or_json(raw: bytes, name: str) -> Located:
    text = _decode(raw, name)
    try:
        data = json.loads(text, object_hook=_json_object_hook)
    except (ValueError, RecursionError):
        return _load_yaml(text, name)
    located = Located(name, data)
    try:  # positions only; JSON is (nearly always) YAML too
        shadow = _load_yaml(text, name)
        located.values, located.keys = shadow.values, shadow.keys
    except ConfigError:
        pass
    _locate_vault_values(data, (), located)
    return located


def _locate_vault_values(value: Any, path: tuple, located: Located) -> None:
    """JSON's {"__ansible_vault": ...} values get the place they were written at, as YAML's do."""
    if isinstance(value, VaultText):
        value.where = _where(located, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _locate_vault_values(item, path + (key,), located)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _locate_vault_values(item, path + (i,), located)


def _load_yaml(text: str, name: str) -> Located:
    loader = _AnsibleYamlLoader(text)
    loader.llmops_file = name  # where !vault values say they were written
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        located = Located(name, data)
        if node is not None:
            _record_positions(loader, node, data, (), located, [0])
        return located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = (exc.problem or "invalid YAML").strip()
        if exc.context and exc.context not in message:
            message += f" ({exc.context.strip()})"
        raise ConfigError(Problem(name, line, col, f"invalid YAML: {message}")) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        raise ConfigError(Problem(name, line, col, "unacceptable character in YAML", "printable text")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(Problem(name, 1, 1, f"invalid YAML: {exc}")) from None
    except RecursionError:
        raise ConfigError(Problem(name, 1, 1, "YAML nested too deeply", "a reasonably nested document")) from None
    finally:
        loader.dispose()


def _record_positions(loader: yaml.SafeLoader, node: yaml.Node, value: Any, path: tuple, located: Located,
                      count: list[int]) -> None:
    """Walk the node tree beside the built data and note where each value and key starts."""
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ConfigError(Problem(located.file, node.start_mark.line + 1, node.start_mark.column + 1,
                                  f"document expands to more than {MAX_NODES} nodes (an alias bomb?)",
                                  "a reasonably sized document"))
    located.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode) and isinstance(value, dict):
        for key_node, value_node in node.value:  # merge keys (<<) were already flattened into these
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node, deep=True)
            if key in value:
                located.keys[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                _record_positions(loader, value_node, value[key], path + (key,), located, count)
    elif isinstance(node, yaml.SequenceNode) and isinstance(value, list):
        for i, (item_node, item) in enumerate(zip(node.value, value, strict=False)):
            _record_positions(loader, item_node, item, path + (i,), located, count)


def _where(located: Located, path: tuple, *, key: bool = False) -> Where:
    line, col = located.where(path, key=key)
    return (located.file, line, col)


# --------------------------------------------------------------------------------------------------
# YAML inventories: top-level keys are groups, each with optional `hosts`, `children` and `vars`.


class _YamlInventoryReader:
    def __init__(self, located: Located, builder: _Builder):
        self.located = located
        self.builder = builder

    def read(self) -> None:
        data = self.located.data
        if not data:
            raise ConfigError(self.located.problem((), "YAML inventory is empty", "top-level groups such as 'all:'"))
        if not isinstance(data, dict):
            raise ConfigError(self.located.problem((), f"YAML inventory is a {_type_name(data)}, not a mapping",
                                                   "top-level groups such as 'all:'"))
        for group, group_data in data.items():
            self.group(group, group_data, (group,))

    def warn(self, path: tuple, message: str, *, key: bool = False) -> None:
        self.builder.warnings.append(self.located.problem(path, message, key=key))

    def group(self, name: Any, data: Any, path: tuple) -> Any:
        if not isinstance(data, (dict, type(None))):
            self.warn(path, f"skipping {name!r}: a group must be a mapping, this is a {_type_name(data)}", key=True)
            return name
        if not isinstance(name, str):
            raise ConfigError(self.located.problem(path, f"group name {name!r} is not a string",
                                                   "a group name (quote numbers)", key=True))
        self.builder.add_group(name, _where(self.located, path, key=True))
        if data is None:
            return name
        sections: dict[str, Any] = {}
        for section in ("vars", "children", "hosts"):
            if section in data:
                value = data[section]
                if isinstance(value, str):
                    value = {value: None}  # `hosts: web1` means one host
                if not isinstance(value, (dict, type(None))):
                    raise ConfigError(self.located.problem(path + (section,), f"'{section}' of group {name!r} is a "
                                                           f"{_type_name(value)}", "a mapping"))
                sections[section] = value
        for key in data:
            value = sections.get(key, data[key]) if isinstance(key, str) else data[key]
            if not isinstance(value, (dict, type(None))):
                self.warn(path + (key,), f"skipping key {key!r} in group {name!r}: not a mapping", key=True)
            elif value is None:
                continue
            elif key == "vars":
                for var, var_value in value.items():
                    self.builder.set_variable(name, var, var_value, _where(self.located, path + (key, var), key=True))
            elif key == "children":
                for child, child_data in value.items():
                    child_name = self.group(child, child_data, path + (key, child))
                    self.builder.add_child(name, child_name, _where(self.located, path + (key, child), key=True))
            elif key == "hosts":
                for pattern, host_vars in value.items():
                    self.hosts(name, pattern, host_vars, path + (key, pattern))
            else:
                self.warn(path + (key,), f"skipping unexpected key {key!r} in group {name!r} "
                                         "(only 'vars', 'children' and 'hosts' are valid)", key=True)
        return name

    def hosts(self, group: str, pattern: Any, host_vars: Any, path: tuple) -> None:
        where = _where(self.located, path, key=True)
        if not isinstance(pattern, str):
            raise ConfigError(_problem(where, f"host pattern {pattern!r} is not a string", "a host name (quote numbers)"))
        names, port = _expand_host_pattern(pattern, where)
        host_vars = host_vars or {}
        if not isinstance(host_vars, dict):
            raise ConfigError(self.located.problem(path, f"variables of host {pattern!r} are a "
                                                   f"{_type_name(host_vars)}", "a mapping of variables"))
        for name in names:
            self.builder.add_host(name, group, port, where)
            for var, value in host_vars.items():
                self.builder.set_variable(name, var, value, _where(self.located, path + (var,), key=True))


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------------
# INI inventories.

# [group] or [group:kind], optionally followed by a comment.
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
# A group name alone on a line in a [group:children] section.
_CHILD = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


@dataclass
class _Pending:
    """A group named before it is declared: [g:vars] before [g], or a child before its own section."""

    kind: str
    where: Where
    parents: list[str] = field(default_factory=list)


class _IniReader:
    def __init__(self, name: str, raw: bytes, builder: _Builder):
        self.name = name
        self.raw = raw
        self.builder = builder
        self.pending: dict[str, _Pending] = {}

    def read(self) -> None:
        text = self.raw.decode("utf-8", "surrogateescape")
        group, kind = "ungrouped", "hosts"
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue  # Ansible even accepts non-UTF-8 bytes in comment lines
            col = len(line) - len(line.lstrip()) + 1
            where: Where = (self.name, number, col)
            if any("\udc80" <= ch <= "\udcff" for ch in stripped):
                raise ConfigError(_problem(where, "not UTF-8 text", "a UTF-8 text file"))
            section = _SECTION.match(stripped)
            if section:
                group, kind = self.section(section, where)
            elif stripped.startswith("[") and stripped.endswith("]"):
                raise ConfigError(_problem(where, f"invalid section header {stripped!r}",
                                           "[group], [group:vars] or [group:children], without spaces"))
            elif kind == "hosts":
                self.host_line(stripped, line, group, where)
            elif kind == "vars":
                self.vars_line(stripped, line, group, where)
            else:
                child = _CHILD.match(stripped)
                if not child:
                    raise ConfigError(_problem(where, f"expected a group name, got {stripped!r}",
                                               "one group name per line in a :children section"))
                self.child_line(child.group(1), group, where)
        for name, pending in self.pending.items():  # Ansible reports only the first
            if pending.kind == "vars":
                raise ConfigError(_problem(pending.where, f"section [{name}:vars] is for a group that is never declared",
                                           f"a [{name}] or [{name}:children] section"))
            raise ConfigError(_problem(pending.where, f"section [{pending.parents[-1]}:children] names undefined group "
                                       f"{name!r}", f"a [{name}] or [{name}:children] section"))

    def section(self, match: re.Match, where: Where) -> tuple[str, str]:
        group = match.group(1)  # kept as written: ansible-core 2.19 only warns about characters like '-'
        kind = match.group(2) or "hosts"
        if kind not in ("hosts", "children", "vars"):
            raise ConfigError(_problem((where[0], where[1], where[2] + len(match.group(1)) + 2),
                                       f"section [{match.group(1)}:{kind}] has unknown type {kind!r}",
                                       "[group], [group:vars] or [group:children]"))
        if group not in self.builder.groups:
            # [g] or [g:children] declares a group; [g:vars] alone does not, and is checked at the end.
            if kind == "vars" and group not in self.pending:
                self.pending[group] = _Pending("vars", where)
            self.builder.add_group(group, where)
        if group in self.pending and kind != "vars":
            if self.pending[group].kind == "children":
                self.attach_pending(group)
            else:
                del self.pending[group]
        return group, kind

    def attach_pending(self, group: str) -> None:
        pending = self.pending[group]
        for parent in pending.parents:
            self.builder.add_child(parent, group, pending.where)
            if parent in self.pending and self.pending[parent].kind == "children":
                self.attach_pending(parent)
        self.pending.pop(group, None)

    def child_line(self, child: str, group: str, where: Where) -> None:
        if child in self.builder.groups:
            self.builder.add_child(group, child, where)
        elif child in self.pending:
            self.pending[child].parents.append(group)
        else:
            self.pending[child] = _Pending("children", where, [group])

    def host_line(self, stripped: str, line: str, group: str, where: Where) -> None:
        try:
            tokens = shlex.split(stripped, comments=True)
        except ValueError as exc:
            raise ConfigError(_problem(where, f"cannot split host line: {exc}", "balanced quotes")) from None
        if not tokens:
            raise ConfigError(_problem(where, "expected a host name", "a host name, then key=value pairs"))
        pattern = tokens[0]
        names, port = _expand_host_pattern(pattern, where)
        if pattern.strip().endswith(":") and port is None:
            raise ConfigError(_problem(where, f"host pattern {pattern!r} ends with ':'", "host or host:port"))
        if any(n.strip() == "---" for n in names):
            raise ConfigError(_problem(where, "'---' is not a host name (is this a YAML file?)", "an INI inventory"))
        variables: list[tuple[str, Any, Where]] = []
        for token in tokens[1:]:
            if "=" not in token:
                raise ConfigError(_problem(self.column_of(line, token, where), f"expected key=value, got {token!r}",
                                           "host variables as key=value"))
            key, value = token.split("=", 1)
            at = self.column_of(line, key + "=", where)
            variables.append((key, _ini_value(value, at), at))
        for name in names:
            self.builder.add_host(name, group, port, where)
            for key, value, at in variables:
                self.builder.set_variable(name, key, value, at)

    def vars_line(self, stripped: str, line: str, group: str, where: Where) -> None:
        if "=" not in stripped:
            raise ConfigError(_problem(where, f"expected key=value, got {stripped!r}", "one key=value per line"))
        key, value = (part.strip() for part in stripped.split("=", 1))
        self.builder.set_variable(group, key, _ini_value(value, where), where)

    @staticmethod
    def column_of(line: str, text: str, where: Where) -> Where:
        found = line.find(text, where[2])  # after the host name
        return (where[0], where[1], found + 1) if found >= 0 else where


def _ini_value(text: str, where: Where) -> Any:
    """An INI value as Ansible types it: a Python literal when ast.literal_eval takes it, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, MemoryError, RecursionError) as exc:  # e.g. {[1]: 2}; Ansible fails the file too
        raise ConfigError(_problem(where, f"cannot read value {text!r}: {exc}", "a Python literal or plain text")) from None
    return _ini_plain(value)


def _ini_plain(value: Any) -> Any:
    """Keep only variable types: tuples and sets become lists, bytes unsafe text, complex and `...` strings."""
    if isinstance(value, bytes):  # ansible-core 2.19 marks text that came from bytes as never templated
        return UnsafeText(value.decode("utf-8", "surrogateescape"))
    if isinstance(value, (list, tuple, set)):
        return [_ini_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _ini_plain(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------------
# Host patterns: `name`, `name:port`, `[v6]:port`, ranges `web[01:10]`, `db-[a:f]`, `n[1:9:2]`.

# A range as a host name label may hold it: letters or numbers, optional numeric step.
_LABEL_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_LABEL_RANGE})(?:[\w-]|{_LABEL_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.I)
_HEX_RANGE = re.compile(r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]", re.I)
_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
_TRAILING_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)")


def _split_port(pattern: str) -> tuple[str, int | None]:
    """`host:port` and `[host]:port` split as Ansible's parse_address does; anything that is not then a
    valid host name or IP address is kept whole, without a port (Ansible does the same)."""
    address, port = pattern, None
    for form in (_BRACKETED_PORT, _TRAILING_PORT):
        m = form.fullmatch(address)
        if m:
            address, port = m.group(1), int(m.group(2))
    if _HOSTNAME.fullmatch(address) or _is_ipv6(address):
        return address, port
    return pattern, None


def _is_ipv6(address: str) -> bool:
    import ipaddress

    if "%" in address or ":" not in address:
        return False
    try:
        ipaddress.IPv6Address(_HEX_RANGE.sub("0", address))
        return True
    except ValueError:
        return False


def _expand_host_pattern(pattern: str, where: Where) -> tuple[list[str], int | None]:
    address, port = _split_port(pattern)
    if "[" not in address:
        return [address], port
    names: list[str] = []
    try:
        _expand_ranges(address, names)
    except _RangeError as exc:
        raise ConfigError(_problem(where, f"bad host range in {pattern!r}: {exc}",
                                   "[begin:end] or [begin:end:step], e.g. web[01:10] or db-[a:f]")) from None
    return names, port


class _RangeError(Exception):
    pass


def _expand_ranges(pattern: str, out: list[str]) -> None:
    """Expand the first [begin:end(:step)] of `pattern`, then the rest, into `out` (Ansible's rules:
    equal-width zero-padded numbers, single letters, an empty begin meaning 0)."""
    parts = pattern.replace("[", "|", 1).replace("]", "|", 1).split("|")
    if len(parts) != 3:
        raise _RangeError("unbalanced brackets")
    head, inner, tail = parts
    bounds = inner.split(":")
    if len(bounds) not in (2, 3):
        raise _RangeError("a range is begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise _RangeError("the range has no end")
    width = len(begin) if begin[0] == "0" and len(begin) > 1 else 0
    if width and len(end) != width:
        raise _RangeError("zero-padded begin and end must have the same width")
    try:
        step = int(step_text)
        _check_range_size(begin, end, step, len(out))
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            if first > last:
                raise _RangeError("begin must not come after end")
            items = list(string.ascii_letters[first:last + 1:step])
        else:
            items = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
    except ValueError as exc:
        raise _RangeError(str(exc)) from None
    for item in items:
        name = head + item + tail
        if "[" in name:
            _expand_ranges(name, out)
        else:
            out.append(name)
        if len(out) > MAX_RANGE_HOSTS:
            raise _RangeError(f"expands to more than {MAX_RANGE_HOSTS} hosts")


def _check_range_size(begin: str, end: str, step: int, already: int) -> None:
    """Size a range from its bounds before building it: `h[1:99999999]` is 20 bytes but would be
    100 million names (Ansible expands it; we refuse past MAX_RANGE_HOSTS, LLMOPS_MAX_RANGE_HOSTS)."""
    if step <= 0:
        raise _RangeError("the step must be a positive integer")
    if not (begin.isdigit() and end.isdigit()):
        return  # letters: at most 52 items; anything else fails in int() with its own message
    if len(begin) > 18 or len(end) > 18:
        raise _RangeError(f"expands to more than {MAX_RANGE_HOSTS} hosts (LLMOPS_MAX_RANGE_HOSTS raises the bound)")
    count = max(0, (int(end) - int(begin)) // step + 1)
    if already + count > MAX_RANGE_HOSTS:
        raise _RangeError(f"expands to more than {MAX_RANGE_HOSTS} hosts (LLMOPS_MAX_RANGE_HOSTS raises the bound)")


# --------------------------------------------------------------------------------------------------
# group_vars/ and host_vars/ beside the inventory.


def _vars_files(folder: Path, name: str) -> list[Path]:
    """The files Ansible reads for one group or host: the first of NAME, NAME.yml, NAME.yaml, NAME.json;
    a folder NAME/ gives all its files (sorted, recursively, hidden and backup files skipped)."""
    if name.startswith(os.sep) or not folder.is_dir():
        return []
    for ext in YAML_EXTENSIONS:
        candidate = folder / (name + ext)
        if candidate.is_dir():
            return _files_in(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _files_in(folder: Path) -> list[Path]:
    found: list[Path] = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or name.endswith("~"):
            continue
        ext = os.path.splitext(name)[1]
        path = folder / name
        if path.is_dir() and not ext:
            found += _files_in(path)
        elif path.is_file() and ext in YAML_EXTENSIONS:
            found.append(path)
    return found


class _VarsFiles:
    """Variables from group_vars/ or host_vars/, loaded once per file."""

    def __init__(self, folder: Path, vault: VaultSecret | None = None):
        self.folder = folder
        self.vault = vault
        self.cache: dict[Path, tuple[dict[str, Any], dict[str, Where]]] = {}

    def get(self, name: str) -> tuple[dict[str, Any], dict[str, Where]]:
        values: dict[str, Any] = {}
        origins: dict[str, Where] = {}
        for path in _vars_files(self.folder, name):
            if path not in self.cache:
                self.cache[path] = self.load(path)
            file_values, file_origins = self.cache[path]
            values.update(file_values)
            origins.update(file_origins)
        return values, origins

    def load(self, path: Path) -> tuple[dict[str, Any], dict[str, Where]]:
        located = _load_yaml_or_json(_plaintext(path, _read_bytes(path), self.vault), str(path))
        if not located.data:
            return {}, {}  # empty files are fine
        if not isinstance(located.data, dict):
            raise ConfigError(located.problem((), f"variables file holds a {_type_name(located.data)}",
                                              "a mapping of variable names to values"))
        return dict(located.data), {k: _where(located, (k,), key=True) for k in located.data}


# --------------------------------------------------------------------------------------------------
# Resolution: each host's variables in Ansible's order, then llmops' Host fields.


def _resolve(builder: _Builder, vars_bases: list[Path], source: str) -> AnsibleInventory:
    groups = builder.groups
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:  # longest path from `all`, as Ansible's group depth
        if name not in depth:
            depth[name] = 0 if name == "all" else max((depth_of(p) + 1 for p in groups[name].parents), default=1)
        return depth[name]

    group_files = [_VarsFiles(base / "group_vars", builder.vault) for base in vars_bases]
    host_files = [_VarsFiles(base / "host_vars", builder.vault) for base in vars_bases]
    # Ansible's vars plugin walks the sources, and within each the entities: source order comes first.
    file_group_vars = {name: _merge([files.get(name) for files in group_files]) for name in groups}

    resolved: dict[str, tuple[dict[str, Any], dict[str, Where], list[str]]] = {}
    for name, entry in builder.hosts.items():
        host_groups: set[str] = set()
        for g in entry.groups:
            host_groups |= {g} | builder.ancestors(g)
        ordered = sorted(host_groups - {"all"}, key=lambda g: (depth_of(g), groups[g].priority, g))
        layers = [(groups["all"].vars, groups["all"].origins)]
        layers += [(groups[g].vars, groups[g].origins) for g in ordered]
        layers += [files.get("all") for files in group_files]
        layers += [files.get(g) for files in group_files for g in ordered]
        layers += [(entry.vars, entry.origins)] + [files.get(name) for files in host_files]
        values, origins = _merge(layers)
        resolved[name] = (values, origins, ordered)

    # Inline !vault values: all decrypted in one ansible-vault run when a password was given.
    vault = InlineVault(builder.vault)
    for files in host_files:
        for name in LOCALHOST_NAMES:  # what an implicit localhost may read, loaded now
            files.get(name)
    vault.decrypt([g.vars for g in groups.values()] + [h.vars for h in builder.hosts.values()]
                  + [values for files in group_files + host_files for values, _ in files.cache.values()])
    if vault.plain:
        resolved = {n: (vault.apply(v), o, g) for n, (v, o, g) in resolved.items()}

    members = {name: _members(builder, name) for name in groups}
    members["all"] = list(builder.hosts)
    magic = _magic_vars(builder, members, {n: v for n, (v, _, _) in resolved.items()})
    hosts: dict[str, Host] = {}
    unusable: dict[str, ConfigError] = {}
    for name, (values, origins, ordered) in resolved.items():
        entry = builder.hosts[name]
        context = {**magic, "group_names": sorted(g for g in ordered if g != "ungrouped"),
                   "inventory_file": entry.where[0], "inventory_dir": os.path.dirname(entry.where[0])}
        host, error = _make_host_when_possible(name, values, origins, entry.where[0], context)
        error = error or vault.locked_error(name, values, entry.where)
        if error is not None:
            unusable[name] = error
        host.groups = tuple(["all"] + (["ungrouped"] if "ungrouped" in ordered else [])
                            + [g for g in ordered if g != "ungrouped"])
        hosts[name] = host

    group_vars = {name: vault.apply({**g.vars, **file_group_vars[name][0]}) for name, g in groups.items()}
    inventory = AnsibleInventory(
        hosts=hosts, group_hosts=members, children={n: list(g.children) for n, g in groups.items()},
        group_vars=group_vars, source=source, direct_hosts={n: list(g.hosts) for n, g in groups.items()},
        warnings=list(builder.warnings), unusable=unusable,
    )
    inventory.implicit_hosts = _implicit_localhosts(builder, file_group_vars["all"], host_files, magic, vault)
    return inventory


def _magic_vars(builder: _Builder, members: dict[str, list[str]],
                host_values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The variables every Ansible play has that llmops can honestly supply while rendering
    connection values. Facts (ansible_facts, ansible_default_ipv4...) are not among them."""
    return {
        "ansible_playbook_python": sys.executable,  # the controller's Python, as in Ansible
        "groups": {g: list(hs) for g, hs in members.items()},
        "hostvars": {n: dict(v) for n, v in host_values.items()},
        "omit": "__omit_place_holder__",
    }


def _make_host_when_possible(name: str, values: dict[str, Any], origins: dict[str, Where], fallback_file: str,
                             context: dict[str, Any]) -> tuple[Host, ConfigError | None]:
    """Values stay as given in the inventory; the connection fields are rendered now when they can be,
    and a host whose fields cannot be (a fact not known yet, `ansible_port=@PORT`) is still listed:
    the error is raised only when llmops is asked to use that host (AnsibleInventory.select)."""
    try:
        return _make_host(name, values, origins, fallback_file, context), None
    except ConfigError as exc:
        return Host(name=name, connection="ssh", address=name, vars=values), exc


def _members(builder: _Builder, group: str) -> list[str]:
    out: list[str] = []
    todo = [group]
    seen: set[str] = set()
    while todo:
        g = todo.pop(0)
        if g in seen:
            continue
        seen.add(g)
        out += [h for h in builder.groups[g].hosts if h not in out]
        todo += builder.groups[g].children
    return out


def _merge(layers: list[tuple[dict[str, Any], dict[str, Where]]]) -> tuple[dict[str, Any], dict[str, Where]]:
    values: dict[str, Any] = {}
    origins: dict[str, Where] = {}
    for layer_values, layer_origins in layers:
        values.update(layer_values)  # Ansible's default hash_behaviour=replace: no deep merge
        origins.update(layer_origins)
    return values, origins


def _implicit_localhosts(builder: _Builder, all_files: tuple[dict[str, Any], dict[str, Where]],
                         host_files: list[_VarsFiles], magic: dict[str, Any], vault: InlineVault) -> dict[str, Host]:
    """Ansible makes a `localhost` (local connection, this Python) when a pattern names one that the
    inventory lacks; it gets the `all` variables, never appears in `all`, and is not listed."""
    implicit: dict[str, Host] = {}
    for name in LOCALHOST_NAMES:
        if name in builder.hosts:
            continue
        own = {"ansible_python_interpreter": sys.executable, "ansible_connection": "local"}
        where: Where = ("<implicit localhost>", 1, 1)
        values, origins = _merge([(builder.groups["all"].vars, builder.groups["all"].origins), all_files,
                                  (own, {k: where for k in own})] + [files.get(name) for files in host_files])
        host, _ = _make_host_when_possible(name, vault.apply(values), origins, where[0], {**magic, "group_names": []})
        host.groups = ("all",)
        implicit[name] = host
    return implicit


# Connection variables. Ansible's ssh plugin reads the last of its listed names that is set, so the
# legacy ansible_ssh_* names win over the short ones; each tuple lists the winner first.
_ADDRESS = ("ansible_ssh_host", "ansible_host")
_PORT = ("ansible_ssh_port", "ansible_port")
_USER = ("ansible_ssh_user", "ansible_user")
_KEY = ("ansible_ssh_private_key_file", "ansible_private_key_file")
_KEY_CHECKING = ("ansible_ssh_host_key_checking", "ansible_host_key_checking")
_TIMEOUT = ("ansible_ssh_timeout",)
_SSH_ARGS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")  # command-line order
_LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")
_SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh")
_TRUE = ("y", "yes", "on", "1", "true", "t", "1.0")
_FALSE = ("n", "no", "off", "0", "false", "f", "0.0")


def _make_host(name: str, values: dict[str, Any], origins: dict[str, Where], fallback_file: str,
               magic: dict[str, Any] | None = None) -> Host:
    """llmops' Host from a host's resolved Ansible variables (connection values rendered as Ansible would)."""

    def problem(key: str, message: str, expected: str) -> ConfigError:
        where = origins.get(key, (fallback_file, 1, 1))
        return ConfigError(_problem(where, f"host {name!r}: {key}: {message}", expected))

    def pick(keys: tuple[str, ...]) -> tuple[str, Any] | None:
        for key in keys:
            if values.get(key) is not None:
                return key, _render(name, key, values[key], values, problem, magic)
        return None

    host = Host(name=name, connection="ssh", address=name, vars=values)
    if found := pick(("ansible_connection",)):
        connection = str(found[1])
        # Other plugins (winrm, docker...) are kept by name so that the executor can refuse them.
        host.connection = ("local" if connection in _LOCAL_CONNECTIONS
                           else "ssh" if connection in _SSH_CONNECTIONS else connection)
    if found := pick(_ADDRESS):
        host.address = str(found[1])
        if not host.address.strip() or host.address.startswith("-"):  # `ansible_host=` or an option in disguise
            raise problem(found[0], f"{host.address!r} is not an address", "a host name or IP address, not empty, "
                          "not starting with '-'")
    elif host.connection == "local":
        host.address = "127.0.0.1"  # nothing is dialled; where servers on this host are reached
    if found := pick(_USER):
        host.user = str(found[1])
    if found := pick(_KEY):
        host.key = str(found[1])
    if found := pick(_PORT):
        key, port = found
        try:
            host.port = int(str(port).strip())
        except ValueError:
            raise problem(key, f"{port!r} is not a port number", "an integer from 1 to 65535") from None
        if not 1 <= host.port <= 65535:
            raise problem(key, f"{host.port} is out of range", "an integer from 1 to 65535")
    if found := pick(("ansible_python_interpreter",)):
        python = str(found[1])
        if not python.startswith("auto"):  # auto, auto_silent, auto_legacy: Ansible discovers; we use python3
            host.python = python
    if found := pick(_TIMEOUT):
        try:
            host.connect_timeout = float(found[1])
        except (TypeError, ValueError):
            raise problem(found[0], f"{found[1]!r} is not a number of seconds", "a number") from None
    options: dict[str, str] = {}
    for key in _SSH_ARGS:
        if values.get(key):
            for option, value in _ssh_options(str(_render(name, key, values[key], values, problem, magic))):
                options.setdefault(option, value)  # ssh keeps the first value given for an option
    if "connecttimeout" in options:
        try:
            host.connect_timeout = float(options["connecttimeout"])
        except ValueError:
            pass
    if options.get("userknownhostsfile"):
        host.known_hosts = options["userknownhostsfile"].split()[0]
    # no, off and accept-new all take unknown keys; llmops then stops checking altogether
    host.host_key_checking = options.get("stricthostkeychecking", "yes").lower() not in ("no", "off", "accept-new")
    if found := pick(_KEY_CHECKING):
        text = str(found[1]).strip().lower()
        if text not in _TRUE + _FALSE:
            raise problem(found[0], f"{found[1]!r} is not a boolean", "true or false")
        if text in _FALSE:  # Ansible then puts -o StrictHostKeyChecking=no first on the ssh command line
            host.host_key_checking = False
    return host


def _ssh_options(args: str) -> list[tuple[str, str]]:
    """The `-o Name=value` options in an ssh argument string, names lower-cased."""
    try:
        words = shlex.split(args)
    except ValueError:
        return []
    found: list[tuple[str, str]] = []
    for i, word in enumerate(words):
        option = words[i + 1] if word == "-o" and i + 1 < len(words) else word[2:] if word.startswith("-o") else ""
        if option:
            key, _, value = option.replace("=", " ", 1).partition(" ")
            found.append((key.strip().lower(), value.strip()))
    return found


def _render(name: str, key: str, value: Any, values: dict[str, Any],
            problem: Callable[[str, str, str], ConfigError], magic: dict[str, Any] | None = None) -> Any:
    """Connection variables may be Jinja templates (`ansible_host: "{{ inventory_hostname }}.lan"`);
    Ansible renders them when it connects, so we do it here. `!unsafe` values are never rendered."""
    if not isinstance(value, str) or isinstance(value, UnsafeText) or ("{{" not in value and "{%" not in value):
        return value
    from jinja2 import StrictUndefined, TemplateError

    from llmops.jinja_limits import BoundedSandbox, TemplateTooBig, check_output, time_limit

    # the same bounds as command templates: `{{ 7 ** 123456789 }}` in an inventory is refused too
    env = BoundedSandbox(undefined=StrictUndefined)
    context = {**(magic or {}), **values, "inventory_hostname": name,
               "inventory_hostname_short": name.split(".")[0]}
    text = value
    try:
        with time_limit():
            for _ in range(10):  # variables that refer to other templated variables
                text = check_output(env.from_string(text).render(context))
                if "{{" not in text and "{%" not in text:
                    break
    except (TemplateError, TemplateTooBig, OverflowError) as exc:  # OverflowError: the sandbox's range() bound
        raise problem(key, f"cannot render {value!r}: {exc}", "a template over this host's variables") from None
    return text


__all__ = ["AnsibleInventory", "UnsafeText", "VaultText", "load"]
