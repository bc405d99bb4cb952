"""The shapes of llmops' own inventory and playbook files (pydantic, unknown keys forbidden).

Backend entries are validated in two steps: the keys every backend shares are checked here,
the kind-specific keys (ctx_size, gpu_memory_utilization, ...) by the backend plugin's own
options model once the kind is known (see llmops.plan.planner).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from llmops.load.validate import Positional, SafeName, Strict

Port = Annotated[int, Field(ge=1, le=65535)]
# Every duration: YAML's .nan and .inf are floats too, and either would silently disable a
# timeout (nan compares false with everything, inf never runs out), so both are refused.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Scalar = str | int | float | bool

DEFAULT_PROMPT = "Write a long story, no less than 10,000 words, starting from a long, long time ago."
DEFAULT_CONCURRENCY = [1, 2, 4, 8, 16, 32, 64, 128]


# --- inventory ------------------------------------------------------------------------------

class HostEntry(Strict):
    connection: Literal["local", "ssh"] = "ssh"
    host: Positional | None = Field(None, description="address to connect to; default: the host's name")
    user: str | None = None
    port: Port = 22
    key: str | None = Field(None, description="private key file for SSH")
    host_key_checking: bool = True
    known_hosts: str | None = None
    python: str = "python3"
    connect_timeout: Seconds = 10.0
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
    ttft_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    tpot_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    itl_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    e2e_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


class SamplingSpec(Strict):
    """Sampling sent with every request. Set here, it is the same for every backend (llama.cpp's
    defaults and vLLM's generation_config differ otherwise); a backend or variant may override."""

    temperature: Annotated[float, Field(ge=0)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_p: Annotated[float, Field(ge=0, le=1)] | None = None
    repeat_penalty: Annotated[float, Field(gt=0)] | None = None


SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")


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
    duration: Seconds | None = None
    warmup: Annotated[int, Field(ge=0)] = 0
    rate: Annotated[float, Field(gt=0)] | None = None
    burstiness: Annotated[float, Field(gt=0)] = 1.0
    timeout: Seconds | None = None
    temperature: Annotated[float, Field(ge=0)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_p: Annotated[float, Field(ge=0, le=1)] | None = None
    repeat_penalty: Annotated[float, Field(gt=0)] | None = None
    seed: int | None = None
    slo: SloSpec | None = None
    sample_interval: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 0.5
    # Repetitions per level (docs/metrics.md, "Repetitions"): N, or "auto" (until the Gen TPS
    # interval is within `precision` of its median, at most `max_repeat` times and, per level,
    # about `repeat_budget` seconds).
    repeat: Annotated[int, Field(ge=1, le=1000)] | Literal["auto"] = 3
    max_repeat: Annotated[int, Field(ge=2, le=1000)] = 10
    precision: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.05
    repeat_budget: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = 300.0
    warmup_request: bool = True  # one short request per variant before the first level, not counted

    def sampling(self) -> dict[str, Any]:
        """The sampling keys that are set, by their playbook names (what results record)."""
        return {k: getattr(self, k) for k in SAMPLING_FIELDS if getattr(self, k) is not None}

    @field_validator("concurrency")
    @classmethod
    def _sorted_unique(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class TelemetrySpec(Strict):
    """GPU collectors: chosen from each host's facts unless listed (host var llmops_collectors wins)."""

    collectors: list[str] | None = None
    interval: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0
    tool_timeout: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 10.0
    # Energy (docs/metrics.md "Energy"): power sampled with memory, idle power measured for
    # idle_power_s seconds before the first level (0: none), sysfs read under sysfs_root
    # (host var llmops_sysfs_root wins; a fake tree for tests and odd container mounts).
    power: bool = True
    power_source: Literal["amd-smi", "rocm-smi", "nvidia-smi", "rapl", "hwmon"] | None = None
    idle_power_s: Annotated[float, Field(ge=0, le=600, allow_inf_nan=False)] = 5.0
    sysfs_root: Positional = "/sys"


# --- quality (issue 17): its own block, so it merges apart from the benchmark's keys ----------
class QualitySpec(Strict):
    """`quality:` in a play: after the speed levels, each variant's server answers the quality
    prompts and tasks (llmops.quality; docs/metrics.md "Quality")."""

    tokens: Annotated[int, Field(ge=1, le=4096)] = 32
    prompts_file: str | None = None
    shipped: bool = True
    tasks: Annotated[int, Field(ge=0, le=1000)] = 16
    task_tokens: Annotated[int, Field(ge=1, le=256)] = 16
    repeat: Annotated[int, Field(ge=1, le=10)] = 2
    reference: str | None = None


class BackendEntry(Strict):
    """Keys shared by every backend kind; other keys are the kind's own options."""

    model_config = Strict.model_config | {"extra": "allow"}

    name: Annotated[SafeName, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    kind: str
    model: Positional
    port: Port
    bind: str = "127.0.0.1"
    env: dict[str, Scalar] = {}
    extra_args: list[Scalar] = []
    binary: str | None = None
    install: dict[str, Any] | None = None
    template: str | None = None
    ready_timeout: Seconds | None = None
    stop_timeout: Seconds | None = None
    tags: list[str] = []
    sampling: SamplingSpec | None = Field(None, description="overrides the benchmark's sampling for this backend")
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
    quality: dict[str, Any] | None = None  # absent: no quality pass
    gather_facts: bool = True


# Keys a backend entry may not set in a variant (they identify the backend).
FIXED_IN_VARIANTS = ("name", "kind", "variants", "matrix")
