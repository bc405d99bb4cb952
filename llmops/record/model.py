"""The results.json contract as typed models: what the executor writes and every reporter reads.

One definition for both sides: RunDir validates each results document against `Results` before
writing it, and `llmops.record.reader.read_run` validates what it reads, so a reporter gets
attributes with known types and defaults instead of re-deriving them with `.get(...) or {}`.

Compatibility rules (RESULTS_VERSION stays 1 while they hold):
- every field a version-1 writer may have left out has a default, so old run directories load;
- `extra="allow"` everywhere: fields this llmops does not know (a newer minor addition, a
  plugin's figures) survive a read and a re-write;
- an object or list that was written as null reads as empty, as the old `or {}` chains did.
Numbers are checked without being converted (an int stays an int, so outputs that print values
are unchanged); bools are not numbers and NaN/Infinity are refused.

This module costs pydantic class construction at import: import it only from record/report
paths (rundir writes, the reader), never from load/check.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from llmops.record.contract import RESULTS_VERSION

__all__ = ["RESULTS_VERSION", "CellResult", "Level", "Results"]


def _number(value: Any) -> Any:
    # bool is an int to Python, never a figure to us; NaN/inf make every comparison lie.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("number", "expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "expected a finite number")
    return value


Num = Annotated[float, PlainValidator(_number)]


def _null_is_empty_object(value: Any) -> Any:
    return {} if value is None else value


def _null_is_empty_list(value: Any) -> Any:
    return [] if value is None else value


Obj = Annotated[dict[str, Any], BeforeValidator(_null_is_empty_object)]


class Part(BaseModel):
    """Base of every part: unknown fields kept, values checked strictly (no "5" -> 5)."""

    model_config = ConfigDict(extra="allow", strict=True, validate_default=False)

    def raw(self) -> dict[str, Any]:
        """The fields as they were given (unset defaults left out), for writers and flatteners."""
        return self.model_dump(exclude_unset=True)


class Stat(Part):
    """A metric's spread over a level's repetitions (bench/stats.py interval)."""

    median: Num | None = None
    lo: Num | None = None
    hi: Num | None = None
    n: StrictInt = 0


class LevelError(Part):
    kind: StrictStr | None = None
    count: StrictInt = 0


class HostNoise(Part):
    other_cores: Num | None = None
    throttled: Any = None


class ServerView(Part):
    """What the server itself reported for a level (its /metrics), next to the client's view."""

    decode_disagree_pct: Num | None = None
    client_decode_tps_p50: Num | None = None
    server_decode_tps_p50: Num | None = None


class Repeat(Part):
    """One repetition of a level: the figures of one run of it."""

    concurrency: Num | None = None
    rate: Num | None = None
    succeeded: StrictInt = 0
    gen_tps: Num | None = None
    t_start: Num | None = None
    t_end: Num | None = None
    flags: Annotated[list[StrictStr], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    host_noise: HostNoise | None = None
    server: ServerView | None = None


class Level(Repeat):
    """One benchmark level (a concurrency or a request rate): medians over its repetitions at the
    top (what old readers saw), every repetition under `repeats`, the spread under `stats`."""

    # Every writer since the first has recorded it (a rate level too: its in-flight limit), and
    # every reporter orders and matches levels by it.
    concurrency: Num
    level: StrictInt | None = None
    shape: StrictStr | None = None
    requests: StrictInt | None = None
    failed: StrictInt | None = None
    success_rate: Num | None = None
    prompt_tps: Num | None = None
    ttft_min_s: Num | None = None
    ttft_max_s: Num | None = None
    ttft_p50_s: Num | None = None
    ttft_p99_s: Num | None = None
    tpot_p50_ms: Num | None = None
    itl_p50_ms: Num | None = None
    itl_p99_ms: Num | None = None
    e2e_p50_s: Num | None = None
    total_s: Num | None = None
    request_throughput: Num | None = None
    steady_gen_tps: Num | None = None
    full_length: StrictInt = 0
    errors: Annotated[list[LevelError], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    repeats: Annotated[list[Repeat], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    stats: Annotated[dict[str, Stat], BeforeValidator(_null_is_empty_object)] = Field(default_factory=dict)

    def stat(self, key: str) -> dict[str, Any] | None:
        """The interval for `key` as bench/stats.py's functions take it; a level measured once
        (no stats) reads as n = 1 around its value."""
        stat = self.stats.get(key)
        if stat is not None:
            return stat.model_dump()
        value = getattr(self, key, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return {"median": float(value), "lo": float(value), "hi": float(value), "n": 1}


class Startup(Part):
    ready_s: Num | None = None
    reused: StrictBool | None = None
    phases: Annotated[dict[str, Num], BeforeValidator(_null_is_empty_object)] = Field(default_factory=dict)


class LevelPeak(Part):
    concurrency: Num | None = None
    peak_bytes: Num | None = None


class GpuBytes(Part):
    vram_bytes: Num | None = None
    gtt_bytes: Num | None = None


class GpuLevelPeak(Part):
    concurrency: Num | None = None
    peak: Annotated[GpuBytes, BeforeValidator(_null_is_empty_object)] = Field(default_factory=GpuBytes)


class GpuHolder(Part):
    """One process of the server's tree holding GPU memory at peak."""

    pid: StrictInt | None = None
    name: StrictStr | None = None
    vram_bytes: Num | None = None
    gtt_bytes: Num | None = None


class GpuProcess(Part):
    """What the server's own processes held on the GPUs."""

    idle: Annotated[GpuBytes, BeforeValidator(_null_is_empty_object)] = Field(default_factory=GpuBytes)
    peak: Annotated[GpuBytes, BeforeValidator(_null_is_empty_object)] = Field(default_factory=GpuBytes)
    per_level: Annotated[list[GpuLevelPeak], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    holders: Annotated[list[GpuHolder], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)


class DeviceUse(Part):
    vram_used_bytes: Num | None = None
    vram_total_bytes: Num | None = None
    gtt_used_bytes: Num | None = None
    gtt_total_bytes: Num | None = None


class GpuDevice(Part):
    """Whole GPUs (every process on them, not only the server's)."""

    idle: DeviceUse | None = None
    peak: DeviceUse | None = None
    note: StrictStr | None = None


class GpuMemory(Part):
    sources: Annotated[list[StrictStr], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    process: GpuProcess | None = None
    device: GpuDevice | None = None


class ProcessBytes(Part):
    """One process of the server's tree and the RAM it held."""

    pid: StrictInt | None = None
    comm: StrictStr | None = None
    bytes: Num | None = None


class Memory(Part):
    source: StrictStr | None = None
    idle_bytes: Num | None = None
    peak_bytes: Num | None = None
    per_level: Annotated[list[LevelPeak], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    idle_processes: Annotated[list[ProcessBytes], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    peak_processes: Annotated[list[ProcessBytes], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    gpu: GpuMemory | None = None

    def level_peak(self, concurrency: Any) -> LevelPeak | None:
        return next((p for p in self.per_level if p.concurrency == concurrency), None)


class Quality(Part):
    """The cell's quality pass (llmops.execute.quality_pass): where its completions are kept."""

    status: StrictStr | None = None
    dir: StrictStr | None = None
    tokens: StrictInt | None = None
    prompts: StrictInt | None = None
    tasks: Any = None
    reference: StrictStr | None = None


class CellResult(Part):
    """One variant on one host: how it started, what it held, and its levels."""

    host: StrictStr
    name: StrictStr
    backend: StrictStr | None = None
    variant: StrictStr | None = None
    status: StrictStr | None = None
    error: StrictStr | None = None
    command: StrictStr | None = None
    env: Obj = Field(default_factory=dict)
    port: StrictInt | None = None
    model: StrictStr | None = None
    served_model: StrictStr | None = None
    startup: Annotated[Startup, BeforeValidator(_null_is_empty_object)] = Field(default_factory=Startup)
    memory: Annotated[Memory, BeforeValidator(_null_is_empty_object)] = Field(default_factory=Memory)
    levels: Annotated[list[Level], BeforeValidator(_null_is_empty_list)] = Field(default_factory=list)
    started_at: Num | None = None
    finished_at: Num | None = None
    provenance: Obj | None = None
    quality: Quality | None = None
    log: StrictStr | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.name)

    @property
    def gpu_process(self) -> GpuProcess:
        """The GPU figures of the server's processes; empty where none were measured."""
        gpu = self.memory.gpu
        return gpu.process if gpu is not None and gpu.process is not None else GpuProcess()


class Results(Part):
    """results.json: the run and its cells."""

    version: StrictInt | None = None
    run_id: StrictStr | None = None
    playbook: StrictStr | None = None
    inventory: StrictStr | None = None
    started: StrictStr | None = None
    finished: StrictStr | None = None
    status: StrictStr | None = None
    cells: list[CellResult]


# --- the boundary: reporters take models; in-process callers (apply's tables, `llmops bench`,
# tests) may still hold the dicts the executor builds. These check them against the same model,
# through JSON as the file would be, so a dict and a file are held to one rule.

def _through_json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def results_of(data: Results | dict[str, Any]) -> Results:
    return data if isinstance(data, Results) else Results.model_validate_json(_through_json(data))


def cells_of(cells: Any) -> list[CellResult]:
    return [c if isinstance(c, CellResult) else CellResult.model_validate_json(_through_json(c)) for c in cells]


def levels_of(levels: Any) -> list[Level]:
    return [lv if isinstance(lv, Level) else Level.model_validate_json(_through_json(lv)) for lv in levels]


def level_of(level: Level | dict[str, Any] | None) -> Level | None:
    return None if level is None else levels_of([level])[0]
