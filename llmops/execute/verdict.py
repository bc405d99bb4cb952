"""When a benchmark did not measure anything: timeouts that always end, and the verdict on a
variant whose requests all failed or carried no tokens (never `ok` with exit code 0)."""

from __future__ import annotations

import math
from typing import Any

# A request with no `timeout:` of its own may take this long, plus REQUEST_SECONDS_PER_TOKEN
# for each token it may generate: 4 tokens/s is slower than any server we measure on CPU, so
# only a server that stopped answering runs into it.
REQUEST_TIMEOUT_FLOOR = 60.0
REQUEST_SECONDS_PER_TOKEN = 0.25


def default_request_timeout(max_tokens: int) -> float:
    """Seconds one request may take when the playbook sets no `benchmark.timeout`."""
    return REQUEST_TIMEOUT_FLOOR + REQUEST_SECONDS_PER_TOKEN * max(int(max_tokens), 0)


LEVEL_SLACK_S = 30.0  # connection set-up, the last records written, a slow event loop


def level_budget(concurrency: int, rate: float | None, requests: int | None, duration: float | None,
                 warmup: int, request_timeout: float) -> float:
    """The longest one level may take when every request runs into its timeout: past it the
    benchmark is stopped and the variant fails, so a level always ends, whatever the server does."""
    if duration:
        return duration + request_timeout + LEVEL_SLACK_S
    if rate:
        return (requests or 1) / rate + request_timeout + LEVEL_SLACK_S
    if requests:  # closed loop: at most ceil(N / c) requests one after another per slot
        rounds = math.ceil((requests + warmup) / max(concurrency, 1))
    else:  # burst: the warm-up wave, then the measured one
        rounds = 2 if warmup else 1
    return rounds * request_timeout + LEVEL_SLACK_S


def no_answer(levels: list[dict[str, Any]]) -> str | None:
    """Why these levels measured nothing (every request failed, or none returned a token), else None.

    The reason is the errors themselves, most frequent first, with one example each, so the
    recap says what the server did (HTTP 500, 401, timeouts, malformed events)."""
    if not levels:
        return None
    if any(lv.get("succeeded") and (lv.get("completion_tokens") or 0) > 0 for lv in levels):
        return None
    requests = sum(int(lv.get("requests") or 0) for lv in levels)
    groups: dict[str, dict[str, Any]] = {}
    for lv in levels:
        for g in lv.get("errors") or []:
            into = groups.setdefault(g.get("kind") or "unknown", {"count": 0, "example": g.get("example")})
            into["count"] += int(g.get("count") or 0)
    if not groups:
        return f"no request returned a token ({requests} request(s) in {len(levels)} level(s))"
    parts = [f"{g['count']} {kind}" + (f" ({str(g['example'])[:200]})" if g.get("example") else "")
             for kind, g in sorted(groups.items(), key=lambda kv: -kv[1]["count"])]
    what = "every request failed" if not any(lv.get("succeeded") for lv in levels) else "no request returned a token"
    return f"{what} ({requests} request(s) in {len(levels)} level(s)): " + "; ".join(parts)
