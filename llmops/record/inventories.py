"""The run directory's copies of the `-i` sources, scrubbed of secrets, so that the run directory
alone can be replayed (`apply --replay`) or resumed (`apply --resume`) with the same plan.

    inventories/01/hosts.ini          a file source, with the group_vars/ and host_vars/ beside it
    inventories/01/group_vars/...     (Ansible reads those beside every file source)
    inventories/02/...                a folder source: its files, group_vars/ and host_vars/ included
    inventories/03/host_list          a host list (`-i web1,web2,`): the text as given

meta.json's `inventory_sources` records them in `-i` order: kind (file, folder, host list), the
original path (or text) and the copy. Runs from before this layout kept one `inventory.yml` or
`inventory/` copy; `sources_from_meta` still reads those.

A masked secret must leave a copy that still parses, with the value in the same place: in YAML a
bare `***` is an alias token (`password: ***` fails to load), so there the mask is written quoted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from llmops import secrets as secret_rule

FOLDER = "inventories"
HOST_LIST_FILE = "host_list"
MAX_FILE_BYTES = 8 * 1024 * 1024  # an inventory file larger than this is not an inventory
YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")  # the files Ansible may read as YAML
_VARS_FOLDERS = ("group_vars", "host_vars")


def source_kind(source: str) -> str:
    """file, folder or host list, as Ansible tells them apart (a comma and no such path: a host list)."""
    if os.path.isdir(source):
        return "folder"
    if "," in source and not os.path.exists(source):
        return "host list"
    return "file"


def copy_sources(sources: list[str], run_dir: Path, write_text: Any) -> list[dict[str, Any]]:
    """Copy every source under run_dir/inventories/NN/ in order; return meta.json's records.
    `write_text` is the run directory's atomic writer (it scrubs registered secrets too)."""
    records = []
    for index, source in enumerate(sources, start=1):
        target = run_dir / FOLDER / f"{index:02d}"
        kind = source_kind(source)
        if kind == "host list":
            write_text(target / HOST_LIST_FILE, source)
            copy = target / HOST_LIST_FILE
            records.append({"kind": kind, "source": source, "copy": str(copy.relative_to(run_dir))})
            continue
        path = Path(source)
        if kind == "folder":
            copy_folder(path, target, write_text)
            copy = target
        else:
            copy = target / path.name
            copy_file(path, copy, write_text)
            for name in _VARS_FOLDERS:  # a file source's own group_vars/ and host_vars/
                if (path.parent / name).is_dir() and not (path.parent / name).is_symlink():
                    copy_folder(path.parent / name, target / name, write_text)
        records.append({"kind": kind, "source": str(path.resolve()), "copy": str(copy.relative_to(run_dir))})
    return records


def copy_folder(source: Path, target: Path, write_text: Any) -> None:
    """File by file, so that every file is scrubbed; only regular files, never symlinks out of
    the folder, devices or FIFOs."""
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if any(part.is_symlink() for part in path.relative_to(source).parents if str(part) != "."):
            continue
        copy_file(path, target / path.relative_to(source), write_text)


def copy_file(source: Path, target: Path, write_text: Any) -> None:
    try:
        with source.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES)
    except OSError:
        return
    text = secret_rule.scrub(raw.decode("utf-8", errors="replace"))
    if source.suffix.lower() in YAML_SUFFIXES:
        text = quote_yaml_masks(text)
    write_text(target, text)
    if os.access(source, os.X_OK):  # an inventory script must stay one
        target.chmod(0o700)


# A mask where a YAML plain scalar would start: at a line's start (after indentation and `- `),
# after a mapping's `: ` or `? `, or after a flow collection's `[`, `{` or `,`; a tag may come
# first (llmops' `password: !secret ***`).
_MASK_AT_SCALAR_START = re.compile(
    r"(?P<lead>(?:^[ \t]*(?:-[ \t]+)*|[:?][ \t]+|[\[{,][ \t]*)(?:![^\s,\[\]{}]*[ \t]+)?)"
    + re.escape(secret_rule.MASK), re.M)


def quote_yaml_masks(text: str) -> str:
    """`password: ***` -> `password: "***"` (with the rest of the plain scalar kept inside the quotes).
    A mask inside a quoted scalar or in the middle of a plain one is valid YAML already."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        out.append(_quote_line(line))
    return "".join(out)


def _quote_line(line: str) -> str:
    if secret_rule.MASK not in line:
        return line
    body = line.rstrip("\r\n")
    ending = line[len(body):]
    pos = 0
    while True:
        match = _MASK_AT_SCALAR_START.search(body, pos)
        if match is None:
            return body + ending
        start = match.end("lead")
        if _inside_quotes(body[:start]):
            pos = match.end()
            continue
        end = _plain_scalar_end(body, start, in_flow=_in_flow(body[:start]))
        scalar = body[start:end].rstrip()
        quoted = json.dumps(scalar, ensure_ascii=False)
        body = body[:start] + quoted + body[start + len(scalar):]
        pos = start + len(quoted)


def _inside_quotes(before: str) -> bool:
    """Whether a position is inside a quoted scalar (YAML's '' and \\" escapes counted)."""
    quote = None
    i = 0
    while i < len(before):
        ch = before[i]
        if quote is None:
            if ch == "#" and (i == 0 or before[i - 1] in " \t"):
                return True  # in a comment: leave it alone
            if ch in "'\"" and (i == 0 or before[i - 1] in " \t:[{,-?"):
                quote = ch
        elif quote == '"' and ch == "\\":
            i += 1
        elif ch == quote:
            if quote == "'" and before[i + 1:i + 2] == "'":
                i += 1
            else:
                quote = None
        i += 1
    return quote is not None


def _in_flow(before: str) -> bool:
    depth = 0
    for ch in before:
        depth += ch in "[{"
        depth -= ch in "]}"
    return depth > 0


def _plain_scalar_end(body: str, start: int, *, in_flow: bool) -> int:
    """Where a plain scalar starting at `start` ends on this line: a ` #` comment, and in a flow
    collection also `,`, `]` or `}`."""
    i = start
    while i < len(body):
        ch = body[i]
        if ch == "#" and body[i - 1] in " \t":
            return i
        if in_flow and ch in ",]}":
            return i
        i += 1
    return len(body)


def sources_from_meta(run_dir: Path, meta: dict[str, Any], *, originals: bool) -> list[str] | None:
    """The `-i` sources a run was made from, in order; None for the built-in default inventory.
    With `originals`, a source still unchanged where it was is used (its relative paths and
    templates still work, as --resume wants), else the copy."""
    records = meta.get("inventory_sources")
    if records is None:
        return _old_layout(run_dir, meta, originals=originals)
    out = []
    for record in records:
        copy = run_dir / record["copy"]
        if record["kind"] == "host list":
            out.append(record["source"])
        elif originals and record["kind"] == "folder" and Path(record["source"]).is_dir():
            out.append(record["source"])
        elif originals and record["kind"] == "file" and _same_file(Path(record["source"]), copy):
            out.append(record["source"])
        else:
            out.append(str(copy))
    return out or None


def _old_layout(run_dir: Path, meta: dict[str, Any], *, originals: bool) -> list[str] | None:
    """Run directories from before `inventories/`: one `inventory.yml` or `inventory/` copy."""
    original = meta.get("inventory_path")
    if not original:
        return None  # the built-in default inventory (its inventory.yml only says so)
    copy = run_dir / ("inventory" if (run_dir / "inventory").is_dir() else "inventory.yml")
    if originals and (Path(original).is_dir() or _same_file(Path(original), copy)):
        return [original]
    return [str(copy)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False
