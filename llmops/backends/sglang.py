"""SGLang's server as a backend plugin. Rendered and golden-tested, not yet run on real hardware.

Readiness (servers.md 6): the HTTP server starts before warmup; `/health` answers 503 while
starting and 200 after warmup (`/v1/models` answers early, so it is not used).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from llmops.load.validate import Strict
from llmops.plugins.api import Backend, BackendSpec, PlanContext
from llmops.shell import HostPath


class SGLangOptions(Strict):
    python: str = "python3"
    tp: Annotated[int, Field(ge=1)] | None = None
    mem_fraction_static: Annotated[float, Field(gt=0, le=1)] | None = None
    context_length: Annotated[int, Field(ge=1)] | None = None
    served_model_name: str | None = None


class SGLang(Backend):
    kind = "sglang"
    description = "SGLang (python -m sglang.launch_server); untested on real hardware"
    template = "sglang.j2"
    options = SGLangOptions
    model_format = "hf"
    health_path = "/health"
    ready_timeout = 1800.0
    stop_timeout = 60.0

    def binary(self, spec: BackendSpec, ctx: PlanContext) -> str:
        assert isinstance(spec.options, SGLangOptions)
        return HostPath(spec.binary or spec.options.python)

    def served_model(self, spec: BackendSpec) -> str:
        assert isinstance(spec.options, SGLangOptions)
        return spec.options.served_model_name or spec.model_name

    def context(self, spec: BackendSpec, ctx: PlanContext) -> dict[str, Any]:
        return {}
