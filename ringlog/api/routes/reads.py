"""Read API: a session by phone number, a call's state, and a call's full timeline.

Every answer comes from a view kept by the runtime (the worker's call states, the timeline and
sessions views), never from the log, and no read asks the broker anything. Each read first
waits, at most 2 s, for the view to reach, on the key's partitions, every write this API
process acknowledged and the positions named in ``X-Ringlog-After`` (what a write's or an
earlier read's ``X-Ringlog-Position`` said, possibly from another API process), so a read made
after a write's 2xx sees it; ``X-Ringlog-After: head`` waits for everything on the log when the
read began (one broker request). ``X-Ringlog-Position`` names the position the answer reflects
(``topic/partition:next_offset``) and ``X-Ringlog-Behind: true`` says the view had not caught
up in time (a key not found in a view that is behind is a 503, not a 404: the view may not have
reached it yet). A malformed ``X-Ringlog-After`` is a 422 saying which part.

``GET /v1/calls/{call_ref}?at=…`` travels in time: the call's state at that instant, folded
from its events recorded by then (read from the timeline view: :mod:`ringlog.views.history`),
in the same shape; an instant that is not a datetime, is before the log's start or is in the
future is a 422 saying which.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status

from ringlog.api.deps import ApiKeyDep
from ringlog.api.models import Problem
from ringlog.api.views import views_of
from ringlog.errors import RetryableError
from ringlog.streams.head import Coverage, PositionRefused, ReadAfter
from ringlog.views.history import InstantRefused, parse_instant, shown

router = APIRouter(prefix="/v1", tags=["reads"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown API key"},
    404: {"model": Problem, "description": "nothing on the log for this key"},
    422: {"description": "``X-Ringlog-After`` is not a position list or ``head``"},
    503: {"model": Problem, "description": "the log is unavailable; retry"},
}

Phone = Annotated[str, Path(pattern=r"^\+[1-9]\d{6,14}$", description="E.164 number")]
CallRef = Annotated[str, Path(min_length=1, max_length=200)]
At = Annotated[
    str | None,
    Query(
        description="An instant (ISO-8601; UTC when it has no offset): the state then, folded "
        "from the events recorded up to it.",
        examples=["2026-12-01T10:00:00Z"],
        max_length=64,
    ),
]
After = Annotated[
    str | None,
    Header(
        alias="X-Ringlog-After",
        description="Positions the answer must reflect (a write's or a read's "
        "X-Ringlog-Position: topic/partition:next_offset, comma-separated), or 'head' for "
        "everything on the log when the read began.",
        max_length=8192,
    ),
]


def read_after(text: str | None) -> ReadAfter:
    """What the read must reflect, from ``X-Ringlog-After``; 422 when it is malformed."""
    try:
        return ReadAfter.parse(text)
    except PositionRefused as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"X-Ringlog-After: {exc}"
        ) from exc


@router.get("/sessions/{phone}", responses=_ERRORS)
async def get_session(
    phone: Phone, request: Request, response: Response, _key: ApiKeyDep, after: After = None
) -> dict[str, Any]:
    """The number's current session: status, stage, known slots, and the calls it spans."""
    state, coverage = await views_of(request).session(phone, read_after(after))
    headers = _position(coverage, found=state is not None)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session for {phone}", headers=headers)
    response.headers.update(headers)
    return state.to_json()


@router.get(
    "/calls/{call_ref}",
    responses={
        **_ERRORS,
        422: {
            "description": "``at`` is not a datetime, is before the log's start or in the "
            "future, or ``X-Ringlog-After`` is malformed"
        },
    },
)
async def get_call(
    call_ref: CallRef,
    request: Request,
    response: Response,
    _key: ApiKeyDep,
    at: At = None,
    after: After = None,
) -> dict[str, Any]:
    """The call's state (its events on ``calls`` and ``abt`` folded by the worker); with
    ``at``, its state at that instant (the same fold over its events recorded by then)."""
    views, reflect = views_of(request), read_after(after)
    when = ""
    if at is None:
        state, coverage = await views.call(call_ref, reflect)
    else:
        try:
            instant = parse_instant(at)
            state, coverage = await views.call_at(call_ref, instant, reflect)
        except InstantRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        when = f" at {shown(instant)}"
    headers = _position(coverage, found=state is not None)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {call_ref}{when}", headers=headers)
    response.headers.update(headers)
    body: dict[str, Any] = state.to_json()
    return body


@router.get("/calls/{call_ref}/events", responses=_ERRORS)
async def get_call_events(
    call_ref: CallRef, request: Request, response: Response, _key: ApiKeyDep, after: After = None
) -> list[dict[str, Any]]:
    """Every event of the call on ``calls``, ``dialog`` and ``abt``, in the order recorded."""
    events, coverage = await views_of(request).timeline(call_ref, read_after(after))
    headers = _position(coverage, found=bool(events))
    if not events:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {call_ref}", headers=headers)
    response.headers.update(headers)
    return events


def _position(coverage: Coverage, *, found: bool) -> dict[str, str]:
    """The headers naming the position an answer reflects. A miss from a view that is behind
    proves nothing: it is a 503 (retry), never a 404."""
    if coverage.behind and not found:
        raise RetryableError("the view is behind the log; retry", retry_after=1.0)
    headers = {"X-Ringlog-Position": coverage.header()}
    if coverage.behind:
        headers["X-Ringlog-Behind"] = "true"
    return headers
