"""The load generator: levels of burst, closed-loop or open-loop load against one server.

Shapes (docs/metrics.md has the exact definitions):
  burst   c requests at once per level, as llmapibenchmark does (the default)
  closed  keep c requests in flight until N have completed (`requests`) or for S seconds
          (`duration`); the first `warmup` requests are sent but left out of the figures
  open    requests arrive at `rate` per second (Poisson, or gamma with `burstiness`) on a
          precomputed absolute schedule, with an optional cap on requests in flight; time
          spent waiting for the cap is reported as client queue time

Before the first level one small preflight request checks that the server takes our request
body (and warms it up, as llmapibenchmark's probe does); with `input_tokens` a calibration
probe measures the chat template's overhead. Neither is part of any figure.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from llmops.bench import http, metrics, prompts, scrape, servermetrics, stats
from llmops.bench.client import Clock, Prompt, RequestOptions, RequestRecord, Session, send, split_url
from llmops.errors import LlmopsError


@dataclass
class LoadSpec:
    concurrency: list[int] = field(default_factory=lambda: [1])
    requests: int | None = None
    duration: float | None = None
    warmup: int = 0
    rate: list[float] | None = None
    burstiness: float = 1.0
    seed: int = 0

    @property
    def shape(self) -> str:
        if self.rate:
            return "open"
        if self.requests or self.duration:
            return "closed"
        return "burst"


@dataclass
class LevelPlan:
    index: int
    concurrency: int  # open loop: the cap on requests in flight, 0 for none
    rate: float | None = None

    @property
    def label(self) -> str:
        return f"rate {self.rate:g}/s" if self.rate is not None else f"c={self.concurrency}"


OnRecord = Callable[[RequestRecord], None]
OnLevel = Callable[[LevelPlan, str, float], None]  # (level, "start"|"end", controller time)


def level_plans(load: LoadSpec) -> list[LevelPlan]:
    if load.rate:
        cap = max(load.concurrency) if load.concurrency else 0
        return [LevelPlan(i, cap, rate) for i, rate in enumerate(load.rate)]
    return [LevelPlan(i, c) for i, c in enumerate(load.concurrency)]


@dataclass
class Bench:
    base_url: str
    opts: RequestOptions
    load: LoadSpec
    prompt_spec: prompts.PromptSpec
    slo: metrics.Slo | None = None
    on_record: OnRecord | None = None
    on_level: OnLevel | None = None
    clock: Clock = field(default_factory=Clock)
    calibration: dict[str, Any] = field(default_factory=dict)
    preflight: bool = True
    prewarm: bool = True  # open each level's connections before it starts (see http.Pool.prewarm)
    prewarm_limit: int = 4096
    # Repetitions of each level (docs/metrics.md, "Repetitions"): a fixed count, or with
    # `adaptive` more of them (up to `max_repeat`, within `repeat_budget_s` per level) until the
    # Gen TPS interval is within `precision` of its median.
    repeat: int = 1
    adaptive: bool = False
    max_repeat: int = 10
    precision: float = stats.DEFAULT_PRECISION
    repeat_budget_s: float | None = None
    warmup_request: bool = False  # one short real request before the first level, not counted
    # Called before and after each repetition; what it returns at "end" is the host's noise for
    # that repetition (host_noise), merged into the level.
    on_repeat: Callable[[LevelPlan, int, str], dict[str, Any] | None] | None = None
    # Path of the server's Prometheus page (llama-server --metrics, vLLM): scraped before and
    # after each repetition, the deltas go to `server.metrics` (servermetrics.py). None: not read.
    metrics_path: str | None = None

    async def run(self, on_level_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """All levels, one after another; `on_level_result` sees each level as soon as it is done."""
        if self.load.shape == "open" and not (self.load.requests or self.load.duration):
            raise LlmopsError("open-loop load (rate) needs a number of requests or a duration per level")
        # Objects that exist now live for the whole run: keep the collector from walking them
        # again and again (shorter pauses; timestamps come from the kernel anyway). A caller that
        # froze its own heap already (a long-lived process embedding the bench) keeps it frozen:
        # unfreezing would hand the whole of it back to the collector. What this run froze then
        # stays frozen too: the objects that were alive when it started, a bounded amount.
        frozen_by_caller = gc.get_freeze_count() > 0
        gc.collect()
        gc.freeze()
        try:
            return await self._run(on_level_result)
        finally:
            if not frozen_by_caller:
                gc.unfreeze()

    async def _run(self, on_level_result: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
        async with Session(self.clock, ssl_context=self.opts.ssl_context) as session:
            if self.preflight:
                await self._preflight(session)
            source = await self._prompt_source(session)
            if self.warmup_request:
                await self._warmup_request(session, source)
            levels = []
            for plan in level_plans(self.load):
                level = await self.run_repeated(session, source, plan)
                levels.append(level)
                if on_level_result is not None:
                    on_level_result(level)
            # reads the kernel did not stamp were timed by this process's clock (docs/metrics.md)
            self.calibration["kernel_timestamps"] = session.pool.stamped
            self.calibration["unstamped_reads"] = session.pool.unstamped_reads
            return levels

    async def run_repeated(self, session: Session, source: prompts.PromptSource, plan: LevelPlan) -> dict[str, Any]:
        """One level, repeated; the result carries every repetition and the medians."""
        repeats: list[dict[str, Any]] = []
        t0 = time.monotonic()
        limit = self.max_repeat if self.adaptive else self.repeat
        while True:
            if self.on_repeat is not None:
                self.on_repeat(plan, len(repeats), "start")
            rep = await self.run_level(session, source, plan)
            rep["repeat"] = len(repeats)
            if self.on_repeat is not None:
                noise = self.on_repeat(plan, len(repeats), "end")
                if noise:
                    rep["host_noise"] = noise
            rep["flags"] = stats.repetition_flags(rep)
            repeats.append(rep)
            if rep["succeeded"] == 0:  # nothing to average; the next repetition would fail alike
                break
            if len(repeats) >= limit:
                break
            if self.adaptive and len(repeats) >= max(self.repeat, 2):
                if stats.precise_enough(stats.interval([r["gen_tps"] for r in repeats]), self.precision):
                    break
                if self.repeat_budget_s is not None:
                    spent = time.monotonic() - t0
                    if spent + spent / len(repeats) > self.repeat_budget_s:
                        break
        level = stats.combine(repeats)
        if self.adaptive:
            gen = level["stats"].get("gen_tps") if "stats" in level else None
            reached = gen is not None and stats.precise_enough(gen, self.precision)
            level["precision"] = {"target": self.precision, "reached": reached,
                                  "relative_half_width": stats.relative_half_width(gen) if gen else None}
            if not reached:
                level.setdefault("flags", []).append(
                    f"imprecise: Gen TPS interval not within {100 * self.precision:g} % after "
                    f"{len(repeats)} repetitions")
        return level

    async def _warmup_request(self, session: Session, source: prompts.PromptSource) -> None:
        """A short request shaped like the benchmark's, so the first level does not pay a cold
        cache (first kernels, allocator growth); not recorded, not counted."""
        prompt = source.next()
        prompt = replace(prompt, max_tokens=min(prompt.max_tokens or 16, 16))
        rec = RequestRecord(level=-1, concurrency=1, index=0, phase="calibration")
        t = time.monotonic()
        await send(session, self.opts, prompt, rec)
        self.calibration["warmup_request"] = {"ok": rec.ok, "seconds": round(time.monotonic() - t, 3),
                                              "error": rec.error}

    async def _preflight(self, session: Session) -> None:
        """One 2-token request: does the server take our body as it is, or only without extras?"""
        probe = Prompt(messages=[{"role": "user", "content": f"Say hi. ({random.getrandbits(32):08x})"}],
                       max_tokens=2)
        rec = RequestRecord(level=-1, concurrency=1, index=0, phase="calibration")
        await send(session, self.opts, probe, rec)
        if rec.status in (400, 422) and self.opts.count_extras:
            lean = replace(self.opts, count_extras=False)
            retry = RequestRecord(level=-1, concurrency=1, index=0, phase="calibration")
            await send(session, lean, probe, retry)
            if retry.ok:
                self.opts = lean
                self.calibration["count_extras"] = f"dropped: the server answered {rec.error}"
                rec = retry
        self.calibration["preflight"] = {"ok": rec.ok, "status": rec.status, "error": rec.error,
                                         "tokens_source": rec.tokens_source}

    async def _prompt_source(self, session: Session) -> prompts.PromptSource:
        spec = self.prompt_spec
        if not spec.input_tokens:
            return prompts.PromptSource(spec)
        tok = Tokenizer(session, self.base_url, self.opts)
        words = await tok.single_token_words()
        self.calibration["tokenize"] = tok.style or "unavailable"
        if words is None:
            self.calibration["exact_prompt_tokens"] = False
            return prompts.PromptSource(spec)
        # How many tokens the chat template adds around the content: one tiny probe request.
        probe_words = 8
        probe = Prompt(messages=[{"role": "user", "content": " ".join(words[:probe_words])}], max_tokens=1)
        rec = RequestRecord(level=-1, concurrency=1, index=0, phase="calibration")
        await send(session, self.opts, probe, rec)
        if not (rec.ok and rec.prompt_tokens):
            self.calibration.update({"exact_prompt_tokens": False,
                                     "calibration_error": rec.error or "the server reported no prompt_tokens"})
            return prompts.PromptSource(spec, words)
        overhead = rec.prompt_tokens - probe_words
        self.calibration.update({"exact_prompt_tokens": True, "template_overhead_tokens": overhead,
                                 "single_token_words": len(words)})
        adjusted = replace(spec, input_tokens=max(spec.input_tokens - overhead, 1))
        return prompts.PromptSource(adjusted, words, reported_tokens=spec.input_tokens)

    async def run_level(self, session: Session, source: prompts.PromptSource, plan: LevelPlan) -> dict[str, Any]:
        records: list[RequestRecord] = []
        target, path = split_url(self.opts.url)

        async def one(index: int, phase: str, scheduled: float | None = None) -> None:
            record = RequestRecord(level=plan.index, concurrency=plan.concurrency, index=index, phase=phase,
                                   t_scheduled=scheduled)
            await send(session, self.opts, source.next(), record, target, path)
            records.append(record)
            if self.on_record is not None:
                self.on_record(record)

        shape = self.load.shape
        metrics_url = self.base_url.rstrip("/") + self.metrics_path if self.metrics_path else None
        # before the connections are opened: the scrape's own connection joins the pool
        before = await scrape.scrape(session, metrics_url, self.opts.api_key) if metrics_url else None
        if self.prewarm:
            want = max(plan.concurrency, self.load.warmup if shape == "burst" else 0) or 1
            await session.pool.prewarm(target, min(want, self.prewarm_limit))
        t_start = time.time()
        if self.on_level:
            self.on_level(plan, "start", t_start)
        if shape == "burst":
            if self.load.warmup:
                await asyncio.gather(*(one(i, "warmup") for i in range(self.load.warmup)))
            await asyncio.gather(*(one(self.load.warmup + i, "measure") for i in range(plan.concurrency)))
        elif shape == "closed":
            await self._closed(one, plan)
        else:
            await self._open(one, plan, session)
        t_end = time.time()
        if self.on_level:
            self.on_level(plan, "end", t_end)
        result = metrics.level_metrics(records, concurrency=plan.concurrency, level_index=plan.index, slo=self.slo,
                                       rate=plan.rate)
        result["shape"] = shape
        result["t_start"], result["t_end"] = t_start, t_end
        result["warmup_requests"] = sum(1 for r in records if r.phase == "warmup")
        if metrics_url and before is not None:
            client = servermetrics.client_window(records)
            after, tries = await scrape.scrape_after(session, metrics_url, before, client, self.opts.api_key)
            result.setdefault("server", {})["metrics"] = servermetrics.level_block(before, after, client, tries + 1)
        for r in records:  # token arrival arrays are only needed for the level's figures
            r.chunk_times = r.chunk_times[:0]
            r.chunk_tokens = r.chunk_tokens[:0]
        return result

    async def _closed(self, one: Callable[..., Awaitable[None]], plan: LevelPlan) -> None:
        warmup = self.load.warmup
        total = (self.load.requests or 0) + warmup
        issued = 0
        deadline: float | None = None

        async def worker() -> None:
            nonlocal issued, deadline
            while True:
                i = issued
                if self.load.requests is not None and i >= total:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                issued += 1
                phase = "warmup" if i < warmup else "measure"
                if phase == "measure" and deadline is None and self.load.duration:
                    deadline = time.perf_counter() + self.load.duration
                await one(i, phase)

        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))

    async def _open(self, one: Callable[..., Awaitable[None]], plan: LevelPlan, session: Session) -> None:
        rate = plan.rate or 1.0
        n = self.load.requests or int(round(rate * (self.load.duration or 0.0)))
        if n <= 0:
            raise LlmopsError("open-loop load (--rate) needs --requests N or --duration S")
        warmup = self.load.warmup
        offsets = arrival_times(n + warmup, rate, self.load.burstiness, self.load.seed + plan.index)
        cap = asyncio.Semaphore(plan.concurrency) if plan.concurrency else None
        loop = session.loop
        # one anchor on both clocks: sleeps use the loop's, the records ours
        start_loop, start_clock = loop.time() + 0.01, self.clock.now() + 0.01

        async def scheduled(i: int, offset: float) -> None:
            delay = start_loop + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            phase = "warmup" if i < warmup else "measure"
            due = start_clock + offset
            if cap is None:
                await one(i, phase, due)
            else:
                async with cap:
                    await one(i, phase, due)

        await asyncio.gather(*(scheduled(i, t) for i, t in enumerate(offsets)))


def arrival_times(n: int, rate: float, burstiness: float, seed: int) -> list[float]:
    """Offsets (s) of n arrivals: gamma(shape=k, scale=1/(rate*k)) gaps; k=1 is Poisson."""
    rng = random.Random(seed)
    t = 0.0
    out = []
    for _ in range(n):
        out.append(t)
        t += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
    return out


class Tokenizer:
    """The server's /tokenize, in llama.cpp's or vLLM's dialect, whichever answers."""

    def __init__(self, session: Session, base_url: str, opts: RequestOptions):
        self.session = session
        self.url = base_url.rstrip("/") + "/tokenize"
        self.opts = opts
        self.style: str | None = None
        self._slots = asyncio.Semaphore(16)  # ~300 look-ups: not all at once

    async def tokenize(self, text: str) -> list[int] | None:
        styles = [self.style] if self.style else ["llama.cpp", "vllm"]
        for style in styles:
            body = {"content": text} if style == "llama.cpp" else {"model": self.opts.model, "prompt": text,
                                                                    "add_special_tokens": False}
            try:
                async with self._slots:
                    status, doc = await self.session.fetch_json(self.url, body, self.opts.api_key)
            except (OSError, http.ConnectionLost, http.HttpError, asyncio.TimeoutError):
                return None
            if status != 200:
                continue
            tokens = doc.get("tokens") if isinstance(doc, dict) else None
            if isinstance(tokens, list):
                self.style = style
                return [t if isinstance(t, int) else t.get("id", 0) for t in tokens]
        return None

    async def single_token_words(self) -> list[str] | None:
        base = await self.tokenize("a")
        if base is None:
            return None
        lengths = await asyncio.gather(*(self.tokenize("a " + w) for w in prompts.WORDS))
        chosen = [w for w, ids in zip(prompts.WORDS, lengths, strict=False) if ids is not None and len(ids) - len(base) == 1]
        if len(chosen) < 50:
            return None
        sample = chosen[:200]
        ids = await self.tokenize("a " + " ".join(sample))
        if ids is None or len(ids) - len(base) != len(sample):
            return None
        return chosen
