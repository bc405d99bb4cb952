"""The plugin seams: small typed interfaces that built-ins and third-party plugins implement.

Plugins register through entry points (see llmops.plugins.registry):

    [options.entry_points]
    llmops.backends = mything = mypackage.backend:MyBackend
    llmops.collectors = mytool = mypackage.collect:MyCollector
    llmops.reporters = myformat = mypackage.report:MyReporter

A backend is a command template plus rules for readiness, stopping and installing.
A collector is a command plus a pure parse function. A reporter turns a run directory into
a file. Built-ins are registered exactly the same way in llmops' own setup.cfg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from llmops.load.inventory import Host
from llmops.load.validate import Strict


@dataclass(frozen=True)
class ProvisionStep:
    """Make something exist on a host, idempotently: `check` exits 0 when it is already there."""

    id: str
    name: str
    check: str
    apply: str
    timeout: float = 3600.0
    log: str | None = None


@dataclass
class PlanContext:
    """What a backend plugin may consult while planning one host."""

    host: Host
    vars: dict[str, Any]
    cache_dir: str  # on the host; may start with ~/

    def cache_path(self, *parts: str) -> str:
        return "/".join([self.cache_dir.rstrip("/"), *parts])


@dataclass
class BackendSpec:
    """One backend variant, resolved for one host: every value final, ready to render."""

    name: str  # cell name, e.g. "llama.cpp-np4"
    backend_name: str
    variant: str | None
    kind: str
    model_ref: str
    model: str  # what the server is given: a GGUF path, an HF dir or hub id
    model_name: str  # name clients send in requests
    port: int
    bind: str
    env: dict[str, str]
    extra_args: list[str]
    binary: str | None
    install: BaseModel | None
    options: BaseModel
    template: str
    ready_timeout: float
    stop_timeout: float
    tags: list[str]
    variant_values: dict[str, Any] = field(default_factory=dict)


class NoOptions(Strict):
    """For backends without options of their own."""


class Backend:
    """Base class for backend plugins; subclasses set the class attributes and may override methods."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    template: ClassVar[str] = ""
    options: ClassVar[type[BaseModel]] = NoOptions
    install_options: ClassVar[type[BaseModel] | None] = None
    model_format: ClassVar[str] = "gguf"  # which file of a `models:` entry it serves: gguf | hf
    health_path: ClassVar[str] = "/health"
    ready_timeout: ClassVar[float] = 300.0
    stop_timeout: ClassVar[float] = 15.0
    default_binary: ClassVar[str] = ""
    template_dirs: ClassVar[tuple[Path, ...]] = ()

    def binary(self, spec: BackendSpec, ctx: PlanContext) -> str:
        """Path of the server program on the host (an installed build, or a name on PATH)."""
        return spec.binary or self.default_binary

    def provision(self, spec: BackendSpec, ctx: PlanContext) -> list[ProvisionStep]:
        """Steps that make the server program exist on the host (empty: nothing to install)."""
        return []

    def served_model(self, spec: BackendSpec) -> str:
        """Model name clients must send in requests."""
        return spec.model_name

    def context(self, spec: BackendSpec, ctx: PlanContext) -> dict[str, Any]:
        """Extra variables for the command template."""
        return {}

    def environment(self, spec: BackendSpec) -> dict[str, str]:
        """Environment variables the server needs beyond the playbook's `env` (secrets go here)."""
        return {}

    def check(self, spec: BackendSpec) -> list[tuple[tuple[Any, ...], str, str]]:
        """Problems only the whole entry shows (options beside install, env and launcher), as
        (path of the key in the backend entry, what is wrong, what was expected); the planner
        reports each at the line of that key. Per-key shapes belong in the options model."""
        return []

    def version_command(self, spec: BackendSpec, binary: str) -> str | None:
        """A shell command printing the backend's version on the host (for facts), if there is one."""
        return None

    def provenance(self, spec: BackendSpec, ctx: PlanContext, binary: str) -> dict[str, Any]:
        """What built this cell's server, for results.json: {"static": known at plan time,
        "commands": {key: shell command run on the host after provisioning}}. The executor runs
        the commands and keeps their output; llmops.telemetry.provenance reads them."""
        return {"static": {}, "commands": {}}

    # Request-body name of a sampling key where the server's differs from the playbook's
    # (llama-server reads repeat_penalty, vLLM repetition_penalty).
    sampling_fields: ClassVar[dict[str, str]] = {}

    def sampling_body(self, sampling: dict[str, Any]) -> dict[str, Any]:
        return {self.sampling_fields.get(k, k): v for k, v in sampling.items()}

    # Flags whose name is not their option's (`--load-mode` from no_mmap): flag -> option keys, so
    # `check --probe` can point at the playbook line a refused flag came from.
    flag_options: ClassVar[dict[str, tuple[str, ...]]] = {}

    def help_command(self, spec: BackendSpec, binary: str) -> str | None:
        """A shell command printing every flag the server accepts (`llmops check --probe`), if any."""
        return None

    def devices_probe(self, spec: BackendSpec, binary: str) -> tuple[str, list[str]] | None:
        """(a host command listing the GPUs the server can see, the device names the cell asks
        for), so `check --probe` can refuse a name the host does not have; None: nothing to ask."""
        return None

    def pre_start(self, spec: BackendSpec) -> str | None:
        """A shell command to run on the host before starting (e.g. remove a stale container)."""
        return None

    def stop_command(self, spec: BackendSpec) -> str | None:
        """A shell command that stops the server gracefully, run before the signals (containers)."""
        return None

    def warm_caches(self, spec: BackendSpec) -> list[str]:
        """Host folders whose content makes a start faster (compile caches): whether they held
        anything before the start is recorded, so that a report can say a start was cold or warm."""
        return []

    def container(self, spec: BackendSpec) -> str | None:
        """"ENGINE:NAME" when the server runs in a container (docker or podman): its processes are
        then found by that name and measured from the container's cgroup, not the CLI's tree."""
        return None

    def api_key(self, spec: BackendSpec) -> str | None:
        """The key clients must send, if the backend was told to require one."""
        return None

    def metrics_path(self, spec: BackendSpec) -> str | None:
        """Path of the server's Prometheus page, when this variant serves one: scraped around
        each benchmark level (docs/metrics.md, "Cross-check with the server")."""
        return None

    # Startup milestones: name -> pattern of the log line that marks it (see startup_phases).
    phases: ClassVar[dict[str, re.Pattern[str]]] = {}

    def startup_phases(self, log: list[tuple[float, str]]) -> dict[str, float]:
        """Milestones in the server log as seconds since spawn: `log` is (seconds, line) pairs."""
        return first_times(log, self.phases)


@dataclass
class Telemetry:
    """Normalised output of a collector (see docs/telemetry.md for the JSON contract)."""

    tool: str
    devices: list[dict[str, Any]] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tool": self.tool, "devices": self.devices, "processes": self.processes}
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class Collector:
    """Base class for collector plugins: a command run on the host, and a pure parse of its output."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[str | None] = None  # program that must exist on the host
    # "memory" (devices/processes with byte counts) or "power" (devices with power_watts or
    # energy_uj: llmops.telemetry.energy turns them into each level's joules).
    measures: ClassVar[str] = "memory"

    def configure(self, telemetry: Any) -> Collector:
        """This collector set up for a play's `telemetry:` block (e.g. a sysfs root); default: as is."""
        return self

    def command(self) -> str:
        raise NotImplementedError

    def parse(self, text: str) -> Telemetry:
        raise NotImplementedError


class Reporter:
    """Base class for reporter plugins: turn a run directory into one output file.

    Read the run with `llmops.record.reader.read_run(run_dir)`, as the built-in formats do: it
    gives typed results (`run.results.cells[0].levels[0].gen_tps`, defaults for what older runs
    lack) and refuses a broken results.json with a located message before the plugin sees it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    suffix: ClassVar[str] = ".txt"
    # Keyword options of `render` this reporter understands (e.g. "ttft_threshold_s"); the
    # report command passes only these, so a plugin that takes none keeps `render(run_dir)`.
    options: ClassVar[tuple[str, ...]] = ()

    def render(self, run_dir: Path) -> str:
        raise NotImplementedError


def first_times(log: list[tuple[float, str]], patterns: dict[str, re.Pattern[str]]) -> dict[str, float]:
    """For each named pattern, seconds since spawn of the first log line it matches."""
    out: dict[str, float] = {}
    for t, line in log:
        if t != t:  # NaN: no time for this line
            continue
        for name, rx in patterns.items():
            if name not in out and rx.search(line):
                out[name] = round(t, 3)
    return out
