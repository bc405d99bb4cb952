"""The server's own counters around one level: `/metrics` before and after, and what the
difference says (docs/metrics.md, "Cross-check with the server").

Pure functions: `snapshot` turns one scraped page into the counters we read, `level_block`
turns two snapshots and the client's view of the same requests into `levels[].server.metrics`.
The scrape itself (through the load's own connection pool, so through the same tunnel) lives
in engine.py; anything that goes wrong ends here as `available: false` with the reason, never
as a failed level.

Decode speed is compared on one definition on both sides: tokens after each request's first,
over the time from its first token to its last, pooled over the requests (sum of tokens over
sum of times). llama-server's counters and its per-response `timings` use that definition
(decode steps, not tokens: the first token comes free from the prompt's logits); vLLM's
`request_decode_time_seconds` is the same first-to-last span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llmops.bench import promtext

# The counters read per dialect. Histograms are read as their _sum and _count.
LLAMA = ("llamacpp:tokens_predicted_total", "llamacpp:tokens_predicted_seconds_total",
         "llamacpp:prompt_tokens_total", "llamacpp:prompt_seconds_total", "llamacpp:prompt_tokens_cached_total",
         "llamacpp:n_decode_total")
_VLLM_HIST = ("vllm:request_generation_tokens", "vllm:request_decode_time_seconds",
              "vllm:inter_token_latency_seconds", "vllm:request_time_per_output_token_seconds",
              # the name before vLLM renamed it (0.32.0 no longer has it); read where present
              "vllm:time_per_output_token_seconds", "vllm:e2e_request_latency_seconds")
VLLM = ("vllm:generation_tokens_total", "vllm:prompt_tokens_total", "vllm:prompt_tokens_cached_total",
        "vllm:request_success_total") + tuple(f"{h}_{part}" for h in _VLLM_HIST for part in ("sum", "count"))
DIALECTS = {"llama.cpp": LLAMA, "vllm": VLLM}

MAX_BYTES = 2 * 1024 * 1024  # vLLM's page is ~50 KB; a page past this is not what we expect
TIMEOUT_S = 5.0


@dataclass
class Snapshot:
    t: float  # controller clock when the page arrived
    dialect: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def snapshot(text: str, t: float) -> Snapshot:
    """The counters of one /metrics page; an error (and no values) when none of ours are on it."""
    page = promtext.parse(text)
    for dialect, names in DIALECTS.items():
        values = {n: v for n in names if (v := page.total(n)) is not None}
        if values:
            return Snapshot(t=t, dialect=dialect, values=values)
    why = f"no llama.cpp or vLLM counters on the page ({len(page.samples)} samples"
    why += f", {len(page.errors)} lines not understood, first: {page.errors[0]})" if page.errors else ")"
    return Snapshot(t=t, error=why)


def failed(t: float, reason: str) -> Snapshot:
    return Snapshot(t=t, error=reason)


@dataclass
class ClientWindow:
    """What the client saw of every request inside the two scrapes (warm-up ones included:
    the server counts them too)."""

    requests: int = 0  # requests that produced at least one token
    tokens: int = 0  # completion tokens of those requests
    decode_tokens: int = 0  # tokens after the first, of requests with a first and a last token
    decode_s: float = 0.0  # their first-to-last token time


def client_window(records: list[Any]) -> ClientWindow:
    """The client's side of the same requests, on the same definition (RequestRecords)."""
    out = ClientWindow()
    for r in records:
        n = r.completion_tokens if r.completion_tokens is not None else r.streamed_tokens
        if not n:
            continue
        out.requests += 1
        out.tokens += n
        if r.ok and n >= 2 and r.t_first_token is not None and r.t_last_token is not None \
                and r.t_last_token > r.t_first_token:
            out.decode_tokens += n - 1
            out.decode_s += r.t_last_token - r.t_first_token
    return out


def settled(before: Snapshot, after: Snapshot, client: ClientWindow) -> bool:
    """Has the server counted everything the client received? A server may count a request a
    moment after its last byte went out; a scrape before that is worth repeating."""
    if before.error or after.error or before.dialect != after.dialect:
        return True  # nothing a second look would change
    name = "llamacpp:tokens_predicted_total" if after.dialect == "llama.cpp" else "vllm:generation_tokens_total"
    if name not in before.values or name not in after.values:
        return True
    return after.values[name] - before.values[name] >= client.tokens


def level_block(before: Snapshot, after: Snapshot, client: ClientWindow, scrapes: int = 2) -> dict[str, Any]:
    """`levels[].server.metrics`: every counter's before/after/delta and what they give."""
    reason = before.error or after.error
    if reason is None and before.dialect != after.dialect:
        reason = f"the server changed between scrapes ({before.dialect} before, {after.dialect} after)"
    if reason is not None:
        return {"available": False, "reason": reason}
    names: dict[str, dict[str, float]] = {}
    for name, b in before.values.items():
        a = after.values.get(name)
        if a is None:
            continue
        if not (math.isfinite(a) and math.isfinite(b)):
            return {"available": False, "reason": f"{name} is not a finite number ({b} before, {a} after)"}
        if a < b:
            return {"available": False, "reason": f"{name} went down from {b:g} to {a:g}: the server restarted "
                                                  "during the level?"}
        names[name] = {"before": b, "after": a, "delta": a - b}
    out: dict[str, Any] = {"available": True, "dialect": after.dialect, "window_s": after.t - before.t,
                           "scrapes": scrapes, "names": names}
    delta = {k: v["delta"] for k, v in names.items()}
    derived = _llama(delta, client) if after.dialect == "llama.cpp" else _vllm(delta)
    out.update(derived)
    gen = out.get("generated_tokens")
    out["gen_tps_window"] = gen / out["window_s"] if gen is not None and out["window_s"] > 0 else None
    out["client_tokens"] = client.tokens
    out["client_requests"] = client.requests
    out["tokens_match"] = gen == client.tokens if gen is not None else None
    cli = client.decode_tokens / client.decode_s if client.decode_s > 0 else None
    srv = out.get("server_decode_tps")
    out["client_decode_tps"] = cli
    out["decode_disagree_pct"] = (cli - srv) / srv * 100.0 if cli is not None and srv else None
    return out


def _ratio(num: float | None, den: float | None, scale: float = 1.0) -> float | None:
    return num / den * scale if num is not None and den else None


def _llama(d: dict[str, float], client: ClientWindow) -> dict[str, Any]:
    gen = d.get("llamacpp:tokens_predicted_total")
    seconds = d.get("llamacpp:tokens_predicted_seconds_total")
    # The counters count tokens but time only the decode steps (one fewer per request); the
    # number of requests is not among them, so it is the client's.
    steps = gen - client.requests if gen is not None else None
    prompt = d.get("llamacpp:prompt_tokens_total")
    cached = d.get("llamacpp:prompt_tokens_cached_total")
    return {"generated_tokens": _int(gen),
            "prompt_tokens": _int(prompt + (cached or 0.0)) if prompt is not None else None,
            "decode_steps": _int(steps), "decode_s": seconds, "steps_from": "client request count",
            "server_decode_tps": _ratio(steps, seconds) if steps and steps > 0 else None,
            "server_prompt_tps": _ratio(prompt, d.get("llamacpp:prompt_seconds_total"))}


def _vllm(d: dict[str, float]) -> dict[str, Any]:
    gen = d.get("vllm:generation_tokens_total")
    out: dict[str, Any] = {"generated_tokens": _int(gen), "prompt_tokens": _int(d.get("vllm:prompt_tokens_total"))}
    finished = d.get("vllm:request_decode_time_seconds_count")
    req_tokens = d.get("vllm:request_generation_tokens_sum")
    if finished and req_tokens is not None:
        steps: float | None = req_tokens - finished
        seconds = d.get("vllm:request_decode_time_seconds_sum")
        out["steps_from"] = "request_generation_tokens - requests"
    else:  # no per-request histograms: the per-step one has the same sum and count
        steps = d.get("vllm:inter_token_latency_seconds_count")
        seconds = d.get("vllm:inter_token_latency_seconds_sum")
        out["steps_from"] = "inter_token_latency_seconds"
    out["decode_steps"], out["decode_s"] = _int(steps), seconds
    out["server_decode_tps"] = _ratio(steps, seconds) if steps and steps > 0 else None
    out["requests"] = _int(finished if finished is not None else d.get("vllm:e2e_request_latency_seconds_count"))
    tpot = "vllm:request_time_per_output_token_seconds"
    if d.get(tpot + "_count") is None:
        tpot = "vllm:time_per_output_token_seconds"
    out["tpot_mean_ms"] = _ratio(d.get(tpot + "_sum"), d.get(tpot + "_count"), 1000.0)
    out["e2e_mean_s"] = _ratio(d.get("vllm:e2e_request_latency_seconds_sum"),
                               d.get("vllm:e2e_request_latency_seconds_count"))
    return out


def _int(x: float | None) -> int | None:
    return None if x is None else int(round(x))
