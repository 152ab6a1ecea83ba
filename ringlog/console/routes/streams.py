"""The live streams of the console's pages: server-sent events carrying HTML the server
rendered (:mod:`ringlog.console.pages`), which the page's one script applies.

What they send comes from :mod:`ringlog.console.live`; here it is rendered and sent, behind
:data:`~ringlog.console.routes.access.StreamAccess`. A stream ends when the client leaves,
the session cookie expires or :data:`STREAM_MAX_S` passes (the browser then reconnects, and
is asked to sign in again once the cookie expired).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from ringlog.console import pages
from ringlog.console.live import (
    BoardUpdate,
    CallUpdate,
    Feed,
    board_updates,
    call_updates,
    parse_since,
)
from ringlog.console.routes.access import StreamAccess, session_token
from ringlog.console.routes.app_state import console_of
from ringlog.console.routes.pages import BOARD_DEFAULT, BoardSize
from ringlog.console.routes.responses import SECURITY_HEADERS

router = APIRouter()

#: A stream ends after this long (the browser reconnects, and is asked to sign in again once
#: the cookie expired).
STREAM_MAX_S = 600.0
#: How long the browser waits before reconnecting a stream that ended.
RETRY_MS = 1000
#: The longest stage name a call's stream takes from its page.
STAGE_MAX = 64


@router.get("/calls/stream", dependencies=[StreamAccess])
async def calls_stream(
    request: Request, n: BoardSize = BOARD_DEFAULT, since: str | None = None
) -> EventSourceResponse:
    """The live list's updates (server-sent events ``board`` and ``feed``)."""
    reader = console_of(request).reader
    resume = request.headers.get("last-event-id") or since
    updates = board_updates(reader, limit=n, since=parse_since(resume) or None)
    return _stream(request, _board_events(updates))


async def _board_events(updates: AsyncIterator[BoardUpdate | Feed]) -> AsyncIterator[Any]:
    async for update in updates:
        if isinstance(update, BoardUpdate):
            changes = update.changes
            data = {
                "full": update.full,
                "rows": {row.call_ref: pages.call_row(row) for row in changes.upsert},
                "remove": list(changes.remove),
                "in_progress": list(changes.in_progress),
                "recent": list(changes.recent),
            }
            yield _event("board", data, update.since)
        else:
            items = [pages.feed_item(event) for event in update.events]
            yield _event("feed", {"items": items}, update.since)


@router.get("/calls/{call_ref}/stream", dependencies=[StreamAccess])
async def call_stream(
    request: Request, call_ref: str, since: str | None = None, stage: str | None = None
) -> EventSourceResponse:
    """One call's updates (server-sent events ``call``)."""
    reader = console_of(request).reader
    resume = request.headers.get("last-event-id") or since
    shown_stage = stage[:STAGE_MAX] if stage else None
    updates = call_updates(reader, call_ref, since=parse_since(resume) or None, stage=shown_stage)
    return _stream(request, _call_events(updates))


async def _call_events(updates: AsyncIterator[CallUpdate]) -> AsyncIterator[Any]:
    async for update in updates:
        data = {
            "header": None if update.row is None else pages.call_header(update.row),
            "events": [
                {"position": event.position, "html": pages.event_item(event)}
                for event in update.events
            ],
        }
        yield _event("call", data, update.since)


def _event(name: str, data: Any, since: str) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=name, id=since, retry=RETRY_MS)


def _stream(request: Request, events: AsyncIterator[Any]) -> EventSourceResponse:
    """Send ``events`` until the client leaves, the server stops, the session cookie
    expires or :data:`STREAM_MAX_S` passes (the browser then reconnects)."""
    expires = _expiry(session_token(request))
    deadline = min(time.time() + STREAM_MAX_S, expires)
    return EventSourceResponse(
        _until(events, deadline), ping=15, send_timeout=30, headers=SECURITY_HEADERS
    )


def _expiry(token: str | None) -> float:
    parts = (token or "").split(".")
    return float(parts[1]) if len(parts) == 4 and parts[1].isdigit() else time.time()


async def _until(events: AsyncIterator[Any], deadline: float) -> AsyncIterator[Any]:
    try:
        while True:
            left = deadline - time.time()
            if left <= 0:
                return
            try:
                event = await asyncio.wait_for(anext(events), left)
            except (TimeoutError, StopAsyncIteration):
                return
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


__all__ = ["router"]
