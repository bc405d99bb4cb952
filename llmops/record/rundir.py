"""The run directory: everything a run measured, written as it goes, never half-written.

    runs/<run-id>/
      meta.json            llmops version, command line, times, status (running|complete|interrupted)
      playbook.yml         the playbook as loaded (a copy of the file)
      inventory.yml        the inventory as loaded (a copy, or the default when none was given)
      plan.json            every cell with its rendered command (secrets masked)
      results.json         the contract other tools read: {"cells": [...]}
      report.md            the tables shown in the terminal
      facts/<host>.json    what the host is
      cells/<host>/<name>/ command.txt, server.log, memory.jsonl, requests.jsonl, cell.json

JSON files are written to a temporary name and renamed, so a crash leaves the previous
complete version, never a torn one.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from llmops import __version__
from llmops.plan.model import Cell, Plan

RESULTS_VERSION = 1


def new_run_id() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{os.getpid() % 10000:04d}"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text) or "_"


# Every secret the plan knows (API keys, tokens from env or -e). Whatever this module writes is
# scrubbed of them: a second line of defence behind masking at the source.
_SECRETS: set[str] = set()


def register_secrets(values: Any) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def scrub(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def write_json(path: Path, data: Any) -> None:
    """Atomic write: temp file in the same folder, fsync, rename."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(scrub(text))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: Path, run_id: str | None = None):
        self.path = Path(path)
        self.run_id = run_id or self.path.name
        # Names this attempt's folders on the hosts: two runs with the same --run-dir name (or a
        # resumed run) never share logs, samples or leases there.
        self.remote_id = f"{safe_name(self.run_id)}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self._results: dict[str, Any] = {"version": RESULTS_VERSION, "run_id": self.run_id, "cells": []}
        self._files: dict[str, Any] = {}

    # --- setup -------------------------------------------------------------------------------

    def create(self, plan: Plan, playbook_path: Path, inventory_path: str | None, argv: list[str],
               selection: dict[str, Any] | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        register_secrets(s for cell in plan.cells for s in cell.secrets)
        write_text(self.path / "playbook.yml", Path(playbook_path).read_text(encoding="utf-8", errors="replace"))
        if inventory_path and Path(inventory_path).is_file():
            write_text(self.path / "inventory.yml", Path(inventory_path).read_text(encoding="utf-8", errors="replace"))
        elif inventory_path and Path(inventory_path).is_dir():
            shutil.copytree(inventory_path, self.path / "inventory", dirs_exist_ok=True)
        else:
            write_text(self.path / "inventory.yml", "# built-in default inventory\nhosts:\n  localhost:\n"
                                                      "    connection: local\n")
        write_json(self.path / "plan.json", plan.describe())
        self.meta = {
            "llmops_version": __version__,
            "run_id": self.run_id,
            "argv": argv,
            "remote_id": self.remote_id,
            "selection": selection or {},
            "playbook_path": str(Path(playbook_path).resolve()),
            "inventory_path": str(Path(inventory_path).resolve()) if inventory_path else None,
            "controller": socket.gethostname(),
            "python": sys.version.split()[0],
            "started": _now(),
            "finished": None,
            "status": "running",
        }
        write_json(self.path / "meta.json", self.meta)
        self._results.update({"playbook": str(playbook_path), "inventory": plan.inventory_source,
                              "started": self.meta["started"], "status": "running"})
        for cell in plan.cells:
            self._results["cells"].append(pending_cell(cell))
            d = self.cell_dir(cell)
            d.mkdir(parents=True, exist_ok=True)
            write_text(d / "command.txt", _command_text(cell))
        self._flush()

    def resume(self, plan: Plan, keep: set[str], argv: list[str]) -> None:
        """Continue an interrupted run here: keep finished cells, reset the others.

        The plan must be the one the run was made with (same cells, same commands): results of
        different commands in one run directory would compare things that were never run together.
        """
        from llmops.errors import LlmopsError

        register_secrets(s for cell in plan.cells for s in cell.secrets)
        old_plan = json.loads((self.path / "plan.json").read_text())
        old = {f"{c['host']}/{c['name']}": c["command"] for c in old_plan.get("cells", [])}
        new = {c.id: c.display_command for c in plan.cells}
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise LlmopsError(f"cannot resume {self.path}: the plan differs from the interrupted run's "
                              f"({', '.join(changed[:5])}); pass the same playbook, inventory and -e")
        self._results = json.loads((self.path / "results.json").read_text())
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.meta.setdefault("resumed", []).append({"at": _now(), "argv": argv})
        self.meta["status"] = "running"
        write_json(self.path / "meta.json", self.meta)
        self._results["status"] = "running"
        for cell in plan.cells:
            if cell.id in keep:
                continue
            d = self.cell_dir(cell)
            for name in ("requests.jsonl", "memory.jsonl", "server.log", "server.log.t", "cell.json"):
                (d / name).unlink(missing_ok=True)
            self._replace(cell, pending_cell(cell))
        self._flush()

    def _replace(self, cell: Cell, data: dict[str, Any]) -> None:
        for i, existing in enumerate(self._results["cells"]):
            if existing["host"] == cell.host.name and existing["name"] == cell.name:
                self._results["cells"][i] = data
                return
        self._results["cells"].append(data)

    # --- paths -------------------------------------------------------------------------------

    def cell_dir(self, cell: Cell) -> Path:
        return self.path / "cells" / safe_name(cell.host.name) / safe_name(cell.name)

    def host_dir(self, host_name: str) -> Path:
        return self.path / "hosts" / safe_name(host_name)

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.path))

    # --- incremental writes ------------------------------------------------------------------

    def update_cell(self, cell: Cell, data: dict[str, Any]) -> None:
        with self._lock:
            self._replace(cell, data)
            self._flush()
        write_json(self.cell_dir(cell) / "cell.json", data)

    def append_jsonl(self, path: Path, obj: dict[str, Any]) -> None:
        with self._lock:
            f = self._files.get(str(path))
            if f is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(path, "a", encoding="utf-8", buffering=1)
                self._files[str(path)] = f
            f.write(scrub(json.dumps(obj, default=str)) + "\n")

    def close_files(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def write_facts(self, host_name: str, facts: dict[str, Any]) -> None:
        write_json(self.path / "facts" / f"{safe_name(host_name)}.json", facts)

    def finish(self, status: str, extra: dict[str, Any] | None = None) -> None:
        self.close_files()
        with self._lock:
            self._results["status"] = status
            self._results["finished"] = _now()
            if extra:
                self._results.update(extra)
            self._flush()
        self.meta.update({"status": status, "finished": self._results["finished"]})
        write_json(self.path / "meta.json", self.meta)

    def results(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._results, default=str))

    def _flush(self) -> None:
        write_json(self.path / "results.json", self._results)


def pending_cell(cell: Cell) -> dict[str, Any]:
    return {
        "host": cell.host.name,
        "backend": cell.spec.kind,
        "name": cell.name,
        "variant": cell.spec.variant,
        "status": "pending",
        "error": None,
        "command": cell.display_command,
        "env": cell.display_env,
        "port": cell.spec.port,
        "model": cell.spec.model,
        "served_model": cell.spec.model_name,
        "startup": {"ready_s": None},
        "memory": {"source": None, "idle_bytes": None, "peak_bytes": None},
        "levels": [],
    }


def _command_text(cell: Cell) -> str:
    env = "".join(f"{k}={v} " for k, v in sorted(cell.display_env.items()))
    return f"# {cell.id} ({cell.spec.kind}) from {cell.origin}\n{env}{cell.display_command}\n"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
