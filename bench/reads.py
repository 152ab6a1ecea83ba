"""The reads ``bench.scale`` times against ``ringlog api``: ``Reads`` (one endpoint's
latencies in one round), ``probe_events`` (whether ``/events`` answers up to date) and
``timed_reads`` (GETs one at a time after a warm-up, within a time budget)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from bench.processes import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: requests per endpoint before timing (connections, pools, first queries)
WARM_UP = 10


@dataclass
class Reads:
    """One endpoint's latencies in one round (ms), or why it was not measured."""

    ms: list[float] = field(default_factory=list)
    na: str | None = None
    budget_hit: bool = False


async def probe_events(client: httpx.AsyncClient, ref: str) -> str | None:
    """None when ``/events`` answers the call's events up to date; else why not (n/a)."""
    answer = await client.get(f"/v1/calls/{ref}/events")
    if answer.status_code == 200 and answer.headers.get("X-Ringlog-Behind") != "true":
        return None
    behind = answer.headers.get("X-Ringlog-Behind") == "true"
    why = f"HTTP {answer.status_code}" + (", view behind" if behind else "")
    return f"{why}: needs a process this bench does not start (ringlog projector?)"


async def timed_reads(
    client: httpx.AsyncClient, paths: Sequence[str], budget_s: float
) -> tuple[list[float], bool]:
    """GET the first ``WARM_UP`` paths untimed, then each of the others in turn; return their
    latencies (ms) and whether the time budget cut them short."""
    for path in paths[:WARM_UP]:
        (await client.get(path)).raise_for_status()
    ms: list[float] = []
    deadline = time.monotonic() + budget_s
    for path in paths[WARM_UP:]:
        if time.monotonic() > deadline:
            return ms, True
        started = time.perf_counter()
        answer = await client.get(path)
        ms.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200 or answer.headers.get("X-Ringlog-Behind") == "true":
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.headers} {answer.text}")
    return ms, False
