"""What a plan is made of: plain data, printable, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmops.load.inventory import Host
from llmops.load.schema import BenchmarkSpec, QualitySpec, TelemetrySpec
from llmops.plugins.api import BackendSpec, PlanContext, ProvisionStep

DEFAULT_CACHE = "~/.cache/llmops"

__all__ = ["DEFAULT_CACHE", "BackendSpec", "Cell", "Plan", "PlanContext"]


@dataclass
class Cell:
    """One host x one backend variant: the unit that is started, measured and stopped."""

    host: Host
    play: str
    spec: BackendSpec
    command: str  # with secrets, for execution only
    display_command: str  # secrets masked: what people and files see
    env: dict[str, str]
    display_env: dict[str, str]
    health_path: str
    provision: list[ProvisionStep]
    benchmark: BenchmarkSpec
    origin: str  # FILE:LINE of the backend entry
    telemetry: TelemetrySpec = field(default_factory=TelemetrySpec)
    version_command: str | None = None
    remote_root: str = ""  # where logs, samples and leases go on the host (default: <cache>/runs)
    lease_timeout: float = 120.0  # the host stops the server after this long without the controller
    cache_dir: str = DEFAULT_CACHE  # llmops' folder on the host (builds, models, logs)
    secrets: list[str] = field(default_factory=list)
    # Where each option key and extra_args item came from (FILE:LINE:COL), for `check --probe`.
    sources: dict[str, str] = field(default_factory=dict)
    help_command: str | None = None
    devices_probe: tuple[str, list[str]] | None = None  # Backend.devices_probe
    quality: QualitySpec | None = None  # the play's `quality:` (None: no quality pass)
    # What built the server: {"static": {...}, "commands": {key: host command}} (Backend.provenance).
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.host.name}/{self.spec.name}"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    def describe(self) -> dict[str, Any]:
        """The masked, JSON-ready view of this cell (plan.json, `llmops check --json`)."""
        return {
            "host": self.host.name,
            "play": self.play,
            "name": self.spec.name,
            "backend": self.spec.kind,
            "variant": self.spec.variant,
            "model": self.spec.model,
            "served_model": self.spec.model_name,
            "port": self.spec.port,
            "command": self.display_command,
            "env": self.display_env,
            "health_path": self.health_path,
            "ready_timeout": self.spec.ready_timeout,
            "stop_timeout": self.spec.stop_timeout,
            "tags": self.spec.tags,
            "provision": [{"id": s.id, "name": s.name} for s in self.provision],
            "benchmark": self.benchmark.model_dump(mode="json"),
            "origin": self.origin,
            **({"quality": self.quality.model_dump(mode="json")} if self.quality else {}),
        }


@dataclass
class Plan:
    cells: list[Cell]
    hosts: list[Host]
    inventory_source: str
    playbook_path: str
    extra_vars: dict[str, Any] = field(default_factory=dict)

    def by_host(self) -> dict[str, list[Cell]]:
        out: dict[str, list[Cell]] = {h.name: [] for h in self.hosts}
        for cell in self.cells:
            out.setdefault(cell.host.name, []).append(cell)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook_path,
            "inventory": self.inventory_source,
            "hosts": [h.describe() for h in self.hosts],
            "cells": [c.describe() for c in self.cells],
        }
