"""Scrape a server's `/metrics` around a level, through the load's own connection pool.

The pool is the one the requests use, so on a remote host the scrape goes through the same
forwarded port (the same SSH tunnel) as the load. Bounded: one page of at most
servermetrics.MAX_BYTES within servermetrics.TIMEOUT_S; whatever goes wrong (refused, 501
from a llama-server started without --metrics, a timeout, a garbled page) comes back as a
Snapshot with the reason, so a level never fails for its metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from llmops.bench import http, servermetrics
from llmops.bench.client import Session, split_url
from llmops.bench.servermetrics import ClientWindow, Snapshot


async def scrape(session: Session, url: str, api_key: str | None = None,
                 timeout: float = servermetrics.TIMEOUT_S, limit: int = servermetrics.MAX_BYTES) -> Snapshot:
    target, path = split_url(url)
    headers = {"Accept": "text/plain"}
    if api_key:  # llama-server with --api-key guards /metrics too
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        reply = await http.fetch(session.pool, target, "GET", path, None, headers, timeout=timeout, limit=limit + 1)
    except asyncio.CancelledError:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        return servermetrics.failed(session.clock.now(), f"GET {path}: no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the scrape is recorded, never raised
        return servermetrics.failed(session.clock.now(), _hide(f"GET {path}: {type(exc).__name__}: {exc}", api_key))
    t = session.clock.now()
    if reply.status != 200:
        body = reply.body[:200].decode("utf-8", "replace").strip()
        return servermetrics.failed(t, _hide(f"GET {path}: HTTP {reply.status} {body}", api_key))
    if len(reply.body) > limit:
        return servermetrics.failed(t, f"GET {path}: the page is larger than {limit} bytes; not read")
    return servermetrics.snapshot(reply.body.decode("utf-8", "replace"), t)


async def scrape_after(session: Session, url: str, before: Snapshot, client: ClientWindow,
                       api_key: str | None = None, pauses: tuple[float, ...] = (0.05, 0.2, 0.5),
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> tuple[Snapshot, int]:
    """The scrape after a level; again (a few times, briefly) while the server has not yet
    counted every token the client received. Returns the snapshot and how many scrapes it took."""
    after = await scrape(session, url, api_key)
    tries = 1
    for pause in pauses:
        if servermetrics.settled(before, after, client):
            break
        await sleep(pause)
        after = await scrape(session, url, api_key)
        tries += 1
    return after, tries


def _hide(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
