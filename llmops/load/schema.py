"""The shapes of llmops' own inventory and playbook files (pydantic, unknown keys forbidden).

Backend entries are validated in two steps: the keys every backend shares are checked here,
the kind-specific keys (ctx_size, gpu_memory_utilization, ...) by the backend plugin's own
options model once the kind is known (see llmops.plan.planner).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from llmops.load.validate import Strict

Port = Annotated[int, Field(ge=1, le=65535)]
Scalar = str | int | float | bool

DEFAULT_PROMPT = "Write a long story, no less than 10,000 words, starting from a long, long time ago."
DEFAULT_CONCURRENCY = [1, 2, 4, 8, 16, 32, 64, 128]


# --- inventory ------------------------------------------------------------------------------

class HostEntry(Strict):
    connection: Literal["local", "ssh"] = "ssh"
    host: str | None = Field(None, description="address to connect to; default: the host's name")
    user: str | None = None
    port: Port = 22
    key: str | None = Field(None, description="private key file for SSH")
    host_key_checking: bool = True
    known_hosts: str | None = None
    python: str = "python3"
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    vars: dict[str, Any] = {}


class GroupEntry(Strict):
    hosts: list[str] = []
    children: list[str] = []
    vars: dict[str, Any] = {}


class InventoryFile(Strict):
    hosts: dict[str, HostEntry | None]
    groups: dict[str, GroupEntry] = {}
    vars: dict[str, Any] = {}


# --- playbook -------------------------------------------------------------------------------

class ModelEntry(Strict):
    """A model as files on the host: a GGUF for llama.cpp, a Hugging Face dir or id for vLLM."""

    generate: Literal["tiny"] | None = Field(None, description="make it on the host (never downloaded)")
    gguf: str | None = None
    hf: str | None = None
    served_name: str | None = None


class SloSpec(Strict):
    ttft_ms: Annotated[float, Field(gt=0)] | None = None
    tpot_ms: Annotated[float, Field(gt=0)] | None = None
    itl_ms: Annotated[float, Field(gt=0)] | None = None
    e2e_ms: Annotated[float, Field(gt=0)] | None = None


class BenchmarkSpec(Strict):
    concurrency: Annotated[list[Annotated[int, Field(ge=1, le=100_000)]], Field(min_length=1)] = DEFAULT_CONCURRENCY
    max_tokens: Annotated[int, Field(ge=1)] = 512
    prompt: str = DEFAULT_PROMPT
    input_tokens: Annotated[int, Field(ge=1)] | None = None
    prompt_file: str | None = None
    shared_prefix_tokens: Annotated[int, Field(ge=0)] = 0
    unique_prompts: bool | None = None
    ignore_eos: bool | None = None
    requests: Annotated[int, Field(ge=1)] | None = None
    duration: Annotated[float, Field(gt=0)] | None = None
    warmup: Annotated[int, Field(ge=0)] = 0
    rate: Annotated[float, Field(gt=0)] | None = None
    burstiness: Annotated[float, Field(gt=0)] = 1.0
    timeout: Annotated[float, Field(gt=0)] | None = None
    temperature: float | None = None
    seed: int | None = None
    slo: SloSpec | None = None
    sample_interval: Annotated[float, Field(gt=0, le=60)] = 0.5

    @field_validator("concurrency")
    @classmethod
    def _sorted_unique(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class TelemetrySpec(Strict):
    """GPU collectors: chosen from each host's facts unless listed (host var llmops_collectors wins)."""

    collectors: list[str] | None = None
    interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    tool_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0


class BackendEntry(Strict):
    """Keys shared by every backend kind; other keys are the kind's own options."""

    model_config = Strict.model_config | {"extra": "allow"}

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    kind: str
    model: str
    port: Port
    bind: str = "127.0.0.1"
    env: dict[str, Scalar] = {}
    extra_args: list[Scalar] = []
    binary: str | None = None
    install: dict[str, Any] | None = None
    template: str | None = None
    ready_timeout: Annotated[float, Field(gt=0)] | None = None
    stop_timeout: Annotated[float, Field(gt=0)] | None = None
    tags: list[str] = []
    variants: list[dict[str, Any]] = []
    matrix: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}


class Play(Strict):
    name: str | None = None
    hosts: str = "all"
    vars: dict[str, Any] = {}
    models: dict[str, ModelEntry] = {}
    backends: Annotated[list[dict[str, Any]], Field(min_length=1)]
    # Validated per host by the planner, after Jinja in them has been rendered with the host's vars.
    benchmark: dict[str, Any] = {}
    telemetry: dict[str, Any] = {}
    gather_facts: bool = True


# Keys a backend entry may not set in a variant (they identify the backend).
FIXED_IN_VARIANTS = ("name", "kind", "variants", "matrix")
