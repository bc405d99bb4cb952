"""The run directory: everything a run measured, written as it goes, never half-written.

    runs/<run-id>/
      meta.json            llmops version, command line, times, status (running|complete|interrupted)
      playbook.yml         the playbook as loaded (a copy of the file)
      templates/           the playbook's own templates/ folder, so --replay renders the same commands
      inventories/NN/      each -i source in order, scrubbed (llmops.record.inventories); with no -i,
      inventory.yml        the built-in default inventory
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
import fcntl
import json
import os
import secrets
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops import __version__
from llmops import secrets as secret_rule
from llmops.plan.model import Cell, Plan
from llmops.record.contract import RESULTS_VERSION, safe_name
from llmops.record.inventories import copy_sources

if TYPE_CHECKING:
    from llmops.record.model import Results
from llmops.record.jsonfile import read_object

__all__ = ["RESULTS_VERSION", "RunDir", "safe_name"]


def new_run_id() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{os.getpid() % 10000:04d}"


# Every secret the plan knows (llmops.secrets' one rule). Whatever this module writes is scrubbed
# of them: a second line of defence behind masking at the source.
register_secrets = secret_rule.register
scrub = secret_rule.scrub


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


MAX_TEMPLATES_BYTES = 16 * 1024 * 1024


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

    LOCK_NAME = ".llmops.lock"

    def lock(self) -> None:
        """Claim the folder for this run, or refuse naming who has it.

        An flock on a file in the folder: the kernel lets it go when this process ends, however
        it ends (SIGKILL included), so a lock is never stale; the file only says who holds it.
        """
        from llmops.errors import LlmopsError

        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / self.LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                owner = {}
            os.close(fd)
            raise LlmopsError(f"run directory {self.path} is in use by another llmops run (pid {owner.get('pid', '?')} "
                              f"on {owner.get('host', '?')}, since {owner.get('since', '?')}); "
                              "wait for it, or choose another --run-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode(), 0)
        self._lock_fd = fd  # held open (and so locked) for as long as this process runs

    def unlock(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)
            self._lock_fd = None

    def create(self, plan: Plan, playbook_path: Path, inventory: str | list[str] | tuple[str, ...] | None,
               argv: list[str], selection: dict[str, Any] | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        register_secrets(s for cell in plan.cells for s in cell.secrets)
        write_text(self.path / "playbook.yml", Path(playbook_path).read_text(encoding="utf-8", errors="replace"))
        templates = self._keep_templates(Path(playbook_path).parent / "templates")
        sources = [inventory] if isinstance(inventory, str) else list(inventory or ())
        inventory_sources = copy_sources(sources, self.path, write_text)
        if not sources:
            write_text(self.path / "inventory.yml", "# built-in default inventory\nhosts:\n  localhost:\n"
                                                      "    connection: local\n")
        write_json(self.path / "plan.json", plan.describe())
        self._keep_host_files(plan)
        self.meta = {
            "llmops_version": __version__,
            "run_id": self.run_id,
            "argv": argv,
            "remote_id": self.remote_id,
            "selection": selection or {},
            "playbook_path": str(Path(playbook_path).resolve()),
            "inventory_sources": inventory_sources,  # in -i order; [] for the built-in default
            "templates": templates,  # the playbook's own templates/, copied beside playbook.yml
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

    def _keep_templates(self, folder: Path) -> list[str]:
        """The playbook's own templates/ (the first place the planner looks), copied to
        templates/ here: the planner looks beside playbook.yml, so `--replay` of this run
        directory renders the same commands after the original folder is gone. Text files only,
        scrubbed like every other file here, within MAX_TEMPLATES_BYTES; the names copied."""
        if not folder.is_dir():
            return []
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        if sum(p.stat().st_size for p in files) > MAX_TEMPLATES_BYTES:
            return []  # not a templates folder as people write them; replay then names what is missing
        kept = []
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            rel = path.relative_to(folder)
            write_text(self.path / "templates" / rel, text)
            kept.append(rel.as_posix())
        return kept

    def _keep_host_files(self, plan: Plan) -> None:
        """Copies of our scripts that provisioning runs on hosts (the agent, the tiny-model
        generator), under the names the steps call them by, so the run directory alone is
        enough to redo its set-up by hand (`llmops docs`)."""
        from llmops.provision.steps import agent_file, tinymodel_file

        for cache_dir in sorted({c.cache_dir for c in plan.cells}):
            for host_file in (agent_file(cache_dir), tinymodel_file(cache_dir)):
                target = self.path / "host-files" / host_file.remote.rsplit("/", 1)[1]
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(host_file.source, target)

    def resume(self, plan: Plan, keep: set[str], argv: list[str]) -> None:
        """Continue an interrupted run here: keep finished cells, reset the others.

        The plan must be the one the run was made with (same cells, same commands): results of
        different commands in one run directory would compare things that were never run together.
        """
        from llmops.errors import LlmopsError

        register_secrets(s for cell in plan.cells for s in cell.secrets)
        old_plan = read_object(self.path / "plan.json")
        old = {f"{c['host']}/{c['name']}": c["command"] for c in old_plan.get("cells", [])}
        new = {c.id: c.display_command for c in plan.cells}
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise LlmopsError(f"cannot resume {self.path}: the plan differs from the interrupted run's "
                              f"({', '.join(changed[:5])}); pass the same playbook, inventory and -e")
        from llmops.record.reader import read_results_file

        self._results = read_results_file(self.path / "results.json").raw
        self.meta = read_object(self.path / "meta.json")
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
            self._flush(changed=data)
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

    def typed_results(self) -> Results:
        """The results so far as the reports read them (llmops.record.model)."""
        from llmops.record.model import Results

        with self._lock:
            return Results.model_validate_json(json.dumps(self._results, default=str))

    def _flush(self, changed: dict[str, Any] | None = None) -> None:
        """Write results.json, validated against the model the reports read with before it reaches
        the disk: a writer bug (a string where a figure belongs, NaN) shows here, not in a later
        report. With `changed` (the one cell an update touched) only that cell is checked, as the
        rest was checked when written: a sweep of hundreds of cells would otherwise re-validate
        megabytes per update (3.8 MB took 130 ms)."""
        from pydantic import ValidationError

        from llmops.record.model import CellResult, Results  # lazily: pydantic models cost import time
        from llmops.record.reader import located

        text = json.dumps(self._results, indent=2, sort_keys=False, default=str) + "\n"
        try:
            if changed is None:
                Results.model_validate_json(text)
            else:
                CellResult.model_validate_json(json.dumps(changed, default=str))
        except ValidationError:
            try:  # again over the whole document, for the refusal's path and position
                Results.model_validate_json(text)
            except ValidationError as exc:
                raise ResultsShapeError(located("results.json (about to be written)", text, exc)) from None
            raise
        write_text(self.path / "results.json", text)


class ResultsShapeError(Exception):
    """The executor built results that the results model refuses: a bug in llmops, not in input."""

    def __init__(self, problem: object) -> None:
        super().__init__(f"internal error: {problem}")


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
        # What every request of this cell was sent (unset keys: the server's own defaults).
        "sampling": cell.benchmark.sampling(),
        "startup": {"ready_s": None},
        "memory": {"source": None, "idle_bytes": None, "peak_bytes": None},
        "levels": [],
    }


def _command_text(cell: Cell) -> str:
    env = "".join(f"{k}={v} " for k, v in sorted(cell.display_env.items()))
    return f"# {cell.id} ({cell.spec.kind}) from {cell.origin}\n{env}{cell.display_command}\n"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
