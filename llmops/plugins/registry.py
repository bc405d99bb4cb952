"""Find plugins through entry points: llmops.backends, llmops.collectors, llmops.reporters.

Built-ins are entry points of the llmops distribution itself, so they take the same path as a
third-party package. A plugin that fails to import is reported by `llmops plugins` and left
out; it never takes the others down.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any

GROUPS = {
    "backends": "llmops.backends",
    "collectors": "llmops.collectors",
    "reporters": "llmops.reporters",
}

# Used when llmops runs from a source tree that was never installed (no entry points), or from
# an install made before a built-in was added to setup.cfg (its metadata lacks the new names).
_FALLBACK = {
    "llmops.backends": {
        "llama.cpp": "llmops.backends.llamacpp:LlamaCpp",
        "vllm": "llmops.backends.vllm:Vllm",
        "sglang": "llmops.backends.sglang:SGLang",
    },
    "llmops.reporters": {
        "md": "llmops.report.reporters:MarkdownReporter",
        "html": "llmops.report.reporters:HtmlReporter",
        "json": "llmops.report.reporters:JsonReporter",
        "csv": "llmops.report.reporters:LevelsCsvReporter",
        "requests-csv": "llmops.report.reporters:RequestsCsvReporter",
    },
}


@dataclass
class Loaded:
    name: str
    group: str
    target: str
    distribution: str
    obj: Any = None
    error: str | None = None


@dataclass
class Registry:
    entries: dict[str, dict[str, Loaded]] = field(default_factory=dict)

    def get(self, kind: str) -> dict[str, Any]:
        return {n: e.obj for n, e in self.entries.get(GROUPS[kind], {}).items() if e.obj is not None}

    def backends(self) -> dict[str, Any]:
        return self.get("backends")

    def collectors(self) -> dict[str, Any]:
        return self.get("collectors")

    def reporters(self) -> dict[str, Any]:
        return self.get("reporters")

    def all(self) -> list[Loaded]:
        return [e for group in self.entries.values() for e in group.values()]


_cache: Registry | None = None


def registry(refresh: bool = False) -> Registry:
    global _cache
    if _cache is None or refresh:
        _cache = _discover()
    return _cache


def _discover() -> Registry:
    reg = Registry()
    installed = True
    try:
        md.distribution("llmops")
    except md.PackageNotFoundError:
        installed = False
    # One scan of the installed distributions for all groups, and each one's METADATA parsed
    # once: `ep.dist.name` parses it anew on every call, which every command paid per entry point.
    everything = md.entry_points()
    names: dict[int, str] = {}

    def dist_name(ep: md.EntryPoint) -> str:
        if ep.dist is None:
            return "?"
        if id(ep.dist) not in names:
            names[id(ep.dist)] = ep.dist.name
        return names[id(ep.dist)]

    for group in GROUPS.values():
        found: dict[str, Loaded] = {}
        for ep in everything.select(group=group):
            dist = dist_name(ep)
            if ep.name in found and found[ep.name].distribution == "llmops" and dist != "llmops":
                # A third-party plugin may not silently replace a built-in: keep ours, say so.
                found[ep.name + f" ({dist})"] = Loaded(ep.name, group, ep.value, dist,
                                                       error=f"name {ep.name!r} is taken by a built-in")
                continue
            found[ep.name] = _load(ep.name, group, ep.value, dist)
        for name, target in _FALLBACK.get(group, {}).items():
            if name not in found and (not installed or group == "llmops.reporters"):
                found[name] = _load(name, group, target, "llmops (source tree)" if not installed else "llmops")
        reg.entries[group] = found
    return reg


def _load(name: str, group: str, target: str, dist: str) -> Loaded:
    entry = Loaded(name, group, target, dist)
    try:
        module_name, _, attr = target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        entry.obj = obj() if isinstance(obj, type) else obj
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
        entry.error = f"{type(exc).__name__}: {exc}"
    return entry
