"""Inventory + playbook + plugins -> Plan. Pure: no I/O beyond reading templates; printable.

For each play, each selected host and each backend variant this module merges the variant
over its backend entry, renders Jinja in the values with the host's variables, validates
the shared keys and the kind's own options (reporting at the YAML line each value came
from), resolves the model, asks the backend plugin for its binary and install steps, and
renders the command template twice: once with secrets (to run) and once masked (to show).
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmops import secrets
from llmops.errors import ConfigError, Problem
from llmops.limits import MAX_CELLS, MAX_VARIANTS
from llmops.load.inventory import Host, Inventory, PatternError
from llmops.load.playbook import Playbook
from llmops.load.schema import (
    FIXED_IN_VARIANTS,
    BackendEntry,
    BenchmarkSpec,
    ModelEntry,
    Play,
    QualitySpec,
    TelemetrySpec,
)
from llmops.load.validate import validate
from llmops.load.yamlsrc import Located, YamlPath
from llmops.plan import render
from llmops.plan.model import DEFAULT_CACHE, BackendSpec, Cell, Plan, PlanContext
from llmops.plugins.api import Backend, ProvisionStep
from llmops.provision import steps as provision_steps
from llmops.shell import MASK, HostPath, Secret, shell_word

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SECRET_ENV = secrets.SECRET_NAME  # the one rule (llmops.secrets); kept under this name for older imports
VARIANT_NAME = re.compile(r"^[A-Za-z0-9._=,+-]+$")


def builtin_template_dir() -> Path:
    try:
        import importlib.resources as resources

        return Path(str(resources.files("llmops.templates")))
    except (ModuleNotFoundError, TypeError):
        return BUILTIN_TEMPLATES


def _register_secrets(playbook: Playbook, inventory: Inventory, extra: Mapping[str, Any], cells: list[Cell]) -> None:
    """Every value secret by the rule, wherever it was given, so that every writer scrubs it."""
    found: list[str] = []
    for play in playbook.plays:
        found += secrets.collect(play.vars, tagged=Secret) + secrets.collect(play.backends, tagged=Secret)
    for host in inventory.hosts.values():
        found += secrets.collect(host.vars, tagged=Secret)
    found += secrets.collect(dict(extra), tagged=Secret)
    for cell in cells:
        found += [str(s) for s in cell.secrets] + secrets.collect(cell.env, tagged=Secret)
    secrets.register(found)


def make_plan(playbook: Playbook, inventory: Inventory, backends: Mapping[str, Backend], *,
              extra_vars: Mapping[str, Any] | None = None, limit: str | None = None,
              tags: Iterable[str] = (), skip_tags: Iterable[str] = ()) -> Plan:
    extra = dict(extra_vars or {})
    problems: list[Problem] = []
    cells: list[Cell] = []
    hosts: list[Host] = []
    try:
        limited = {h.name for h in inventory.select(limit)} if limit else None
    except PatternError as exc:
        raise ConfigError(exc.problem("--limit", 1, 0, limit or "")) from None
    for play, ppath in zip(playbook.plays, playbook.play_paths, strict=False):
        try:
            selected = inventory.select(play.hosts)
        except PatternError as exc:
            line, col = playbook.located.where(ppath + ("hosts",))
            problems.append(exc.problem(playbook.located.file, line, col, play.hosts))
            continue
        chosen = [h for h in selected if limited is None or h.name in limited]
        per_entry = variant_counts(play.backends)
        size = len(chosen) * sum(per_entry)
        # (an entry past its own bound is refused at its matrix, more precisely, below)
        if size + len(cells) > MAX_CELLS and max(per_entry, default=0) <= MAX_VARIANTS:
            line, col = playbook.located.where(ppath + ("backends",), key=True)
            problems.append(Problem(playbook.located.file, line, col,
                                    f"the plan would have {size + len(cells):,} cells (hosts x variants), more than {MAX_CELLS}",
                                    "fewer hosts or variants, or --limit (LLMOPS_MAX_CELLS raises the bound)"))
            continue
        for host in selected:
            if limited is not None and host.name not in limited:
                continue
            try:
                host_cells = _plan_host(playbook, play, ppath, host, backends, extra)
            except ConfigError as exc:
                problems += exc.problems
                continue
            if host not in hosts:
                hosts.append(host)
            cells += host_cells
    if problems:
        raise ConfigError(_dedupe(problems))
    _register_secrets(playbook, inventory, extra, cells)
    tags, skip_tags = set(tags), set(skip_tags)
    if tags:
        cells = [c for c in cells if tags & set(c.spec.tags)]
    if skip_tags:
        cells = [c for c in cells if not skip_tags & set(c.spec.tags)]
    hosts = [h for h in hosts if any(c.host is h for c in cells)]
    return Plan(cells=cells, hosts=hosts, inventory_source=inventory.source, playbook_path=str(playbook.path),
                extra_vars=extra)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: dict[tuple[str, int, int, str], Problem] = {}
    for p in problems:
        seen.setdefault((p.file, p.line, p.col, p.message), p)
    return sorted(seen.values(), key=lambda p: (p.file, p.line, p.col))


def host_vars(playbook: Playbook, play: Play, ppath: YamlPath, host: Host, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Variables a host sees in this play: inventory < play vars < -e, plus magic variables."""
    located = playbook.located
    merged: dict[str, Any] = dict(host.vars)
    merged.update(_play_vars(play, ppath, located, {**merged, **extra}))
    merged.update(extra)
    magic = {
        "inventory_hostname": host.name,
        "group_names": [g for g in host.groups if g not in ("all", "ungrouped")],
        "playbook_dir": str(playbook.directory.resolve()),
        "llmops_cache": DEFAULT_CACHE,
    }
    return {**magic, **merged}


def _play_vars(play: Play, ppath: YamlPath, located: Located, context: dict[str, Any]) -> dict[str, Any]:
    """Play vars may use each other in any order (as in Ansible); a cycle is a located error."""
    pending = dict(play.vars)
    done: dict[str, Any] = {}
    while pending:
        progress = False
        for key in list(pending):
            try:
                done[key] = render.render_value(pending[key], {**context, **done}, located, ppath + ("vars", key))
            except ConfigError as exc:
                waiting_on = [k for k in pending if k != key and f"'{k}'" in exc.problems[0].message]
                if waiting_on:
                    continue
                raise
            del pending[key]
            progress = True
        if not progress:
            names = " -> ".join(list(pending) + [next(iter(pending))])
            raise ConfigError(located.problem(ppath + ("vars", next(iter(pending))),
                                              f"play vars refer to each other in a loop: {names}",
                                              "vars that resolve to values"))
    return done


def _plan_host(playbook: Playbook, play: Play, ppath: YamlPath, host: Host, backends: Mapping[str, Backend],
               extra: Mapping[str, Any]) -> list[Cell]:
    located = playbook.located
    variables = host_vars(playbook, play, ppath, host, extra)
    ctx = PlanContext(host=host, vars=variables, cache_dir=str(variables["llmops_cache"]))
    models = {name: render.render_value(entry.model_dump(), variables, located, ppath + ("models", name))
              for name, entry in play.models.items()}
    benchmark = validate(BenchmarkSpec, located, ppath + ("benchmark",), label=_play_label(ppath) + ".benchmark",
                         data=render.render_value(play.benchmark, variables, located, ppath + ("benchmark",)))
    telemetry = validate(TelemetrySpec, located, ppath + ("telemetry",), label=_play_label(ppath) + ".telemetry",
                         data=render.render_value(play.telemetry, variables, located, ppath + ("telemetry",)))
    quality = _quality(playbook, play, ppath, variables)
    cells: list[Cell] = []
    problems: list[Problem] = []
    names: dict[str, YamlPath] = {}
    for bi, entry in enumerate(play.backends):
        bpath = ppath + ("backends", bi)
        if not isinstance(entry, dict):
            problems.append(located.problem(bpath, "a backend must be a mapping", "keys name, kind, model, port, ..."))
            continue
        try:
            for variant, merged, view in expand_variants(entry, located, bpath):
                cell = _plan_cell(playbook, play, host, ctx, backends, models, variant, merged, view, bpath,
                                  benchmark, telemetry)
                if cell.name in names:
                    problems.append(view.problem(("name",), f"two backends on host {host.name!r} are both named "
                                                 f"{cell.name!r}", "a unique name per backend variant"))
                    continue
                names[cell.name] = bpath
                cell.quality = quality
                cells.append(cell)
        except ConfigError as exc:
            problems += exc.problems
    if quality is not None and quality.reference is not None and not problems and quality.reference not in names:
        problems.append(located.problem(ppath + ("quality", "reference"), f"quality.reference {quality.reference!r} "
                                        "names no backend variant", "one of " + ", ".join(names)))
    if problems:
        raise ConfigError(problems)
    return cells


def _quality(playbook: Playbook, play: Play, ppath: YamlPath, variables: Mapping[str, Any]) -> QualitySpec | None:
    """The play's `quality:` block, validated; its prompt file must exist (relative to the playbook)."""
    if play.quality is None:
        return None
    located = playbook.located
    spec = validate(QualitySpec, located, ppath + ("quality",), label=_play_label(ppath) + ".quality",
                    data=render.render_value(play.quality, variables, located, ppath + ("quality",)))
    if spec.prompts_file is not None:
        path = Path(spec.prompts_file).expanduser()
        if not path.is_absolute():
            path = playbook.directory / path
        if not path.is_file():
            raise ConfigError(located.problem(ppath + ("quality", "prompts_file"),
                                              f"prompt file {spec.prompts_file!r} does not exist",
                                              "a file of prompts, one per line (or .jsonl)"))
        spec = spec.model_copy(update={"prompts_file": str(path)})
    return spec


def variant_counts(entries: Any) -> list[int]:
    """How many cells one host gets from each backend entry, counted without expanding them
    (malformed entries count as one: their own checks refuse them)."""
    counts = []
    for entry in entries if isinstance(entries, list) else []:
        variants = entry.get("variants") if isinstance(entry, dict) else None
        matrix = entry.get("matrix") if isinstance(entry, dict) else None
        count = len(variants) if isinstance(variants, list) and variants else 1
        if isinstance(matrix, dict):
            count *= math.prod(len(v) if isinstance(v, list) and v else 1 for v in matrix.values())
        counts.append(count)
    return counts


def expand_variants(entry: dict[str, Any], located: Located, bpath: YamlPath
                    ) -> list[tuple[str | None, dict[str, Any], Located]]:
    """A backend entry -> (variant name, merged fields, positions) for each variant or matrix point."""
    base = {k: v for k, v in entry.items() if k not in ("variants", "matrix")}
    base_sources: dict[tuple[Any, ...], YamlPath] = {(k,): bpath + (k,) for k in base}
    variants = entry.get("variants") or []
    matrix = entry.get("matrix") or {}
    problems: list[Problem] = []
    if not isinstance(variants, list):
        raise ConfigError(located.problem(bpath + ("variants",), "variants must be a list", "a list of mappings"))
    if not isinstance(matrix, dict):
        raise ConfigError(located.problem(bpath + ("matrix",), "matrix must be a mapping",
                                          "option names mapped to lists of values"))
    points: list[tuple[str | None, dict[str, Any], dict[tuple[Any, ...], YamlPath], list[str]]] = []
    listed = variants or [None]
    for vi, variant in enumerate(listed):
        if variant is None:
            points.append((None, {}, {}, []))
            continue
        vpath = bpath + ("variants", vi)
        if not isinstance(variant, dict):
            problems.append(located.problem(vpath, "a variant must be a mapping", "overrides such as {name: np4, parallel: 4}"))
            continue
        for fixed in FIXED_IN_VARIANTS:
            if fixed in variant and fixed != "name":
                problems.append(located.problem(vpath + (fixed,), f"a variant cannot change {fixed!r}",
                                                "other backend keys", key=True))
        overrides = {k: v for k, v in variant.items() if k not in FIXED_IN_VARIANTS and k != "tags"}
        name = variant.get("name") or ",".join(f"{k}={_short(v)}" for k, v in overrides.items()) or f"v{vi + 1}"
        if not isinstance(name, str) or not VARIANT_NAME.match(name):
            problems.append(located.problem(vpath + ("name",), f"variant name {name!r} has characters not allowed",
                                            "letters, digits and . _ = , + -"))
            continue
        sources = {(k,): vpath + (k,) for k in overrides}
        tags = [str(t) for t in variant.get("tags", [])] if isinstance(variant.get("tags", []), list) else []
        points.append((name, overrides, sources, tags))
    if matrix:
        keys = list(matrix)
        for key in keys:
            if key in FIXED_IN_VARIANTS:
                problems.append(located.problem(bpath + ("matrix", key), f"the matrix cannot vary {key!r}",
                                                "other backend keys", key=True))
            if not isinstance(matrix[key], list) or not matrix[key]:
                problems.append(located.problem(bpath + ("matrix", key), f"matrix.{key} must be a non-empty list",
                                                "a list of values"))
        if problems:
            raise ConfigError(problems)
        count = len(points) * math.prod(len(matrix[k]) for k in keys)
        if count > MAX_VARIANTS:
            raise ConfigError(located.problem(bpath + ("matrix",), f"the matrix makes {count:,} variants of this backend, "
                                              f"more than {MAX_VARIANTS}",
                                              "fewer values (LLMOPS_MAX_VARIANTS raises the bound)", key=True))
        combos = list(itertools.product(*[list(enumerate(matrix[k])) for k in keys]))
        expanded = []
        for name, overrides, sources, tags in points:
            for combo in combos:
                o = dict(overrides)
                s = dict(sources)
                label = []
                for key, (idx, value) in zip(keys, combo, strict=False):
                    o[key] = value
                    s[(key,)] = bpath + ("matrix", key, idx)
                    label.append(f"{key}={_short(value)}")
                full = ",".join(([name] if name else []) + label)
                expanded.append((full, o, s, tags))
        points = expanded
    if problems:
        raise ConfigError(problems)
    out = []
    for name, overrides, sources, tags in points:
        merged = dict(base)
        merged_sources = dict(base_sources)
        for key, value in overrides.items():
            if key == "env" and isinstance(value, dict) and isinstance(base.get("env"), dict):
                merged["env"] = {**base["env"], **value}
                for ek in value:
                    merged_sources[("env", ek)] = sources[(key,)] + (ek,)
            else:
                merged[key] = value
                merged_sources[(key,)] = sources[(key,)]
        if tags:
            merged["tags"] = list(merged.get("tags") or []) + tags
        out.append((name, merged, overlay(located, merged_sources, bpath)))
    return out


def _short(value: Any) -> str:
    text = str(value)
    text = re.sub(r"[^A-Za-z0-9._+-]", "_", text)
    return text[:24]


def overlay(located: Located, sources: Mapping[tuple[Any, ...], YamlPath], default: YamlPath) -> Located:
    """Positions for a merged mapping whose fields came from different places in one file."""
    view = Located(located.file, None)
    view.values[()] = located.where(default)
    view.keys[()] = located.where(default, key=True)
    for field, src in sorted(sources.items(), key=lambda item: len(item[0])):
        n = len(src)
        for p, pos in located.values.items():
            if p[:n] == src:
                view.values[field + p[n:]] = pos
        for p, pos in located.keys.items():
            if p[:n] == src:
                view.keys[field + p[n:]] = pos
    return view


def _play_label(ppath: YamlPath) -> str:
    return f"plays[{ppath[0]}]" if ppath else "play"


def _plan_cell(playbook: Playbook, play: Play, host: Host, ctx: PlanContext, backends: Mapping[str, Backend],
               models: dict[str, dict[str, Any]], variant: str | None, merged: dict[str, Any], view: Located,
               bpath: YamlPath, benchmark: BenchmarkSpec, telemetry: TelemetrySpec) -> Cell:
    rendered = render.render_value(merged, ctx.vars, view, ())
    label = "backend"
    common = {k: v for k, v in rendered.items() if k in BackendEntry.model_fields}
    entry = validate(BackendEntry, view, data=common, label=label)
    options_data = {k: v for k, v in rendered.items() if k not in BackendEntry.model_fields}
    plugin = backends.get(entry.kind)
    if plugin is None:
        known = sorted(backends)
        hint = difflib.get_close_matches(entry.kind, known, n=1, cutoff=0.5)
        raise ConfigError(view.problem(("kind",), f"unknown backend kind {entry.kind!r}",
                                       (f"did you mean {hint[0]!r}? " if hint else "") + "installed kinds: "
                                       + (", ".join(known) or "none (is llmops installed?)")))
    options = validate(plugin.options, view, data=options_data, label=f"{entry.kind} backend",
                       also_allowed=set(BackendEntry.model_fields))
    install = None
    if entry.install is not None:
        if plugin.install_options is None:
            raise ConfigError(view.problem(("install",), f"backend kind {entry.kind!r} has no install support",
                                           "no 'install' key, or a backend that can be provisioned", key=True))
        install = validate(plugin.install_options, view, prefix=("install",), data=entry.install, label="install")

    if entry.sampling is not None:
        # The backend's (or variant's) own sampling wins key by key over the play's.
        benchmark = benchmark.model_copy(update=entry.sampling.model_dump(exclude_none=True))
    model_path, model_name, model_steps = _resolve_model(entry, plugin, models, ctx, view, playbook, play)
    name = entry.name if variant is None else f"{entry.name}-{variant}"
    tags = list(dict.fromkeys([*entry.tags, entry.kind, entry.name, name]))
    spec = BackendSpec(
        name=name, backend_name=entry.name, variant=variant, kind=entry.kind, model_ref=entry.model,
        model=model_path, model_name=model_name, port=entry.port, bind=entry.bind,
        env={k: str(v) if not isinstance(v, bool) else ("1" if v else "0") for k, v in entry.env.items()},
        extra_args=[_arg(a) for a in entry.extra_args], binary=entry.binary, install=install, options=options,
        template=entry.template or plugin.template,
        ready_timeout=entry.ready_timeout or plugin.ready_timeout,
        stop_timeout=entry.stop_timeout or plugin.stop_timeout, tags=tags,
        variant_values={k: merged[k] for k in merged if k not in ("name", "kind")} if variant else {},
    )
    problems = [view.problem(path, message, expected, key=len(path) > 1)
                for path, message, expected in plugin.check(spec)]
    if problems:
        raise ConfigError(problems)
    binary = plugin.binary(spec, ctx)
    spec.model_name = plugin.served_model(spec)
    provision: list[ProvisionStep] = model_steps + plugin.provision(spec, ctx)

    env: dict[str, str] = {}
    for key, value in {**plugin.environment(spec), **spec.env}.items():
        env[key] = value if isinstance(value, Secret) or not SECRET_ENV.search(key) else Secret(value)
    display_env = {k: (MASK if isinstance(v, Secret) else v) for k, v in env.items()}
    secrets = [str(v) for v in env.values() if isinstance(v, Secret) and v]
    api_key = plugin.api_key(spec)
    if api_key:
        secrets.append(str(api_key))

    template_ctx: dict[str, Any] = {**ctx.vars}
    template_ctx.update(options.model_dump())
    template_ctx.update(plugin.context(spec, ctx))
    template_ctx.update({
        "name": spec.name, "backend_name": spec.backend_name, "variant": spec.variant, "kind": spec.kind,
        "model": spec.model, "served_model": spec.model_name, "port": spec.port, "bind": spec.bind,
        "extra_args": spec.extra_args, "binary": binary, "env": dict(env), "vars": dict(ctx.vars),
        "host": {"name": host.name, "address": host.address, "connection": host.connection},
    })
    line, col = view.where(())
    where = Problem(view.file, line, col, "")
    search = [playbook.directory / "templates", *plugin.template_dirs, builtin_template_dir()]
    command = render.render_command(spec.template, template_ctx, search, reveal=True, where=where)
    display = render.render_command(spec.template, template_ctx, search, reveal=False, where=where)
    for secret in secrets:
        display = display.replace(secret, MASK)
    return Cell(host=host, play=play.name or f"play {bpath[0] if bpath and isinstance(bpath[0], int) else 0}",
                spec=spec, command=command, display_command=display, env=env, display_env=display_env,
                health_path=plugin.health_path, provision=provision, benchmark=benchmark,
                origin=f"{view.file}:{line}", telemetry=_telemetry(telemetry, ctx, view), cache_dir=ctx.cache_dir,
                version_command=plugin.version_command(spec, binary), secrets=secrets,
                sources=_sources(view, options_data, spec.extra_args, plugin.flag_options), help_command=plugin.help_command(spec, binary),
                devices_probe=plugin.devices_probe(spec, binary),
                provenance=_with_model_checksum(plugin.provenance(spec, ctx, binary), spec.model),
                remote_root=str(ctx.vars.get("llmops_remote_dir") or ctx.cache_path("runs")),
                lease_timeout=_positive(ctx.vars.get("llmops_lease_timeout", 120.0), "llmops_lease_timeout", view))


# Hashing a 70 GB model would add minutes to every run; above this size only the size is kept.
CHECKSUM_MAX_BYTES = 2 * 1024 ** 3


def _with_model_checksum(provenance: dict[str, Any], model: str) -> dict[str, Any]:
    """Add a command that records the model file's size and (for files up to 2 GiB) sha256."""
    if not model.startswith(("/", "~/", "./")):
        return provenance
    f = shell_word(HostPath(model), reveal=True)
    command = (f"if [ -f {f} ]; then s=$(stat -c %s {f}); echo \"size $s\"; "
               f"if [ \"$s\" -le {CHECKSUM_MAX_BYTES} ]; then sha256sum {f} | cut -d' ' -f1; fi; fi")
    return {**provenance, "commands": {**provenance.get("commands", {}), "model_file": command}}


def _sources(view: Located, options: Mapping[str, Any], extra_args: list[str],
             flag_options: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """FILE:LINE:COL of each option key and extra_args item, so a flag can be traced to its line."""
    out = {"": "%s:%d:%d" % (view.file, *view.where(()))}
    for flag, keys in flag_options.items():
        for key in keys:
            if key in options:
                out[f"flag:{flag}"] = "%s:%d:%d" % (view.file, *view.where((key,), key=True))
                break
    for key in options:
        out[f"option:{key}"] = "%s:%d:%d" % (view.file, *view.where((key,), key=True))
    for i, _ in enumerate(extra_args):
        out[f"extra_args:{i}"] = "%s:%d:%d" % (view.file, *view.where(("extra_args", i)))
    return out


def _telemetry(telemetry: TelemetrySpec, ctx: PlanContext, view: Located) -> TelemetrySpec:
    """The play's telemetry settings, with the host's `llmops_collectors` and `llmops_sysfs_root`
    variables winning."""
    root = ctx.vars.get("llmops_sysfs_root")
    if root is not None:
        if not isinstance(root, str) or not root.startswith("/"):
            raise ConfigError(view.problem((), f"host {ctx.host.name!r}: llmops_sysfs_root must be an absolute path",
                                           "e.g. /sys"))
        telemetry = telemetry.model_copy(update={"sysfs_root": root})
    override = ctx.vars.get("llmops_collectors")
    if override is None:
        return telemetry
    if not isinstance(override, list) or not all(isinstance(x, str) for x in override):
        raise ConfigError(view.problem((), f"host {ctx.host.name!r}: llmops_collectors must be a list of names",
                                       "e.g. [amd-smi, sysfs]"))
    return telemetry.model_copy(update={"collectors": override})


def _positive(value: Any, name: str, view: Located) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not math.isfinite(number) or number <= 0:  # nan or inf would switch the timeout off
        raise ConfigError(view.problem((), f"variable {name} must be a positive, finite number of seconds, not {value!r}",
                                       "e.g. 120"))
    return number


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _resolve_model(entry: BackendEntry, plugin: Backend, models: dict[str, dict[str, Any]], ctx: PlanContext,
                   view: Located, playbook: Playbook, play: Play) -> tuple[str, str, list[ProvisionStep]]:
    fmt = plugin.model_format
    if entry.model in models:
        model = ModelEntry.model_validate(models[entry.model])
        served = model.served_name or entry.model
        if model.generate == "tiny":
            step_list, gguf, hf = provision_steps.tiny_model(ctx.cache_dir, ctx.host.python)
            return HostPath(gguf if fmt == "gguf" else hf), served, step_list
        path = model.gguf if fmt == "gguf" else model.hf
        if not path:
            raise ConfigError(view.problem(("model",), f"model {entry.model!r} has no {fmt!r} entry, which "
                                           f"{entry.kind} needs", f"a '{fmt}:' key under models.{entry.model}"))
        return _host_path(path), served, []
    path = entry.model
    local = path.startswith(("/", "~/", "./", "../")) or fmt == "gguf"
    # A hub id (org/name) is its own name; a file or folder is named after itself.
    served = Path(path).name.removesuffix(".gguf") if local else path
    return _host_path(path), served, []


def _host_path(path: str) -> str:
    return HostPath(path) if path.startswith("~/") else path


def all_steps(cells: list[Cell]) -> list[ProvisionStep]:
    """Provisioning steps of some cells, each once, in first-use order."""
    out: dict[str, ProvisionStep] = {}
    for cell in cells:
        for step in cell.provision:
            out.setdefault(step.id, step)
    return list(out.values())
