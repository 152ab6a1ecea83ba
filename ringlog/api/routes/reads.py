"""Read API: a session by phone number, a call's state, and a call's full timeline.

Answers are folded from the log itself (only the key's partition is read), so they are right
even when a projection lags; an open session comes from the Redis cache, which is written as
its events are appended.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from ringlog.api.deps import ApiKeyDep, ServicesDep
from ringlog.api.models import Problem
from ringlog.api.views import views_of
from ringlog.schemas import Envelope
from ringlog.schemas.codec import encode
from ringlog.sessions.state import fold
from ringlog.streams.replay import read_key

router = APIRouter(prefix="/v1", tags=["reads"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown API key"},
    404: {"model": Problem, "description": "nothing on the log for this key"},
    503: {"model": Problem, "description": "the log is unavailable; retry"},
}

Phone = Annotated[str, Path(pattern=r"^\+[1-9]\d{6,14}$", description="E.164 number")]
CallRef = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/sessions/{phone}", responses=_ERRORS)
async def get_session(phone: Phone, services: ServicesDep, _key: ApiKeyDep) -> dict[str, Any]:
    """The number's current session: status, stage, known slots, and the calls it spans."""
    state = await services.sessions.get(phone)
    if state is None:
        envelopes = await _envelopes(services, "sessions", phone)
        state = fold(envelopes).get(phone)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session for {phone}")
    return state.to_json()


@router.get("/calls/{call_ref}", responses=_ERRORS)
async def get_call(
    call_ref: CallRef,
    request: Request,
    response: Response,
    services: ServicesDep,
    _key: ApiKeyDep,
) -> dict[str, Any]:
    """The call's state, from the worker's view (``calls`` and ``abt`` folded).

    The answer waits, at most 2 s, for the view to reach the log's end on the call's
    partitions; ``X-Ringlog-Position`` names the position it reflects and ``X-Ringlog-Behind:
    true`` says the view had not caught up in time."""
    state, coverage = await views_of(request, services).call(call_ref)
    headers = {"X-Ringlog-Position": coverage.header()}
    if coverage.behind:
        headers["X-Ringlog-Behind"] = "true"
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {call_ref}", headers=headers)
    response.headers.update(headers)
    body: dict[str, Any] = state.model_dump(mode="json")
    return body


@router.get("/calls/{call_ref}/events", responses=_ERRORS)
async def get_call_events(
    call_ref: CallRef, services: ServicesDep, _key: ApiKeyDep
) -> list[dict[str, Any]]:
    """Every event of the call on ``calls``, ``dialog`` and ``abt``, in the order recorded."""
    found = await asyncio.gather(
        *(_envelopes(services, topic, call_ref) for topic in ("calls", "dialog", "abt"))
    )
    envelopes = [envelope for per_topic in found for envelope in per_topic]
    if not envelopes:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {call_ref}")
    envelopes.sort(key=lambda e: (e.recorded_at, str(e.event_id)))
    return [orjson.loads(encode(e)) for e in envelopes]


async def _envelopes(services: ServicesDep, topic: str, key: str) -> list[Envelope]:
    records = await read_key(services.settings.kafka, services.settings.topic(topic), key)
    return [r.envelope for r in records if r.envelope is not None]
