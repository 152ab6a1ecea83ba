"""The console's four read-only pages and its two assets.

Every page is rendered on the server (Jinja2, :mod:`ringlog.console.pages`) from the views,
behind :data:`~ringlog.console.routes.access.PageAccess`; the pages of the live list and of a
call are kept up to date by their streams (:mod:`.streams`). The assets under
``/console/static/`` are public (the sign-in form needs them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from ringlog.console import pages
from ringlog.console.live import format_since, read_board
from ringlog.console.models.board import call_row
from ringlog.console.models.events import activity, last_stage, timeline
from ringlog.console.models.sessions import session_row, session_rows, turns
from ringlog.console.routes.access import PageAccess
from ringlog.console.routes.app_state import console_of
from ringlog.console.routes.responses import html

router = APIRouter()

#: How many calls other than those in progress the live list shows by default, and at most.
BOARD_DEFAULT = 20
BOARD_MAX = 100
#: The most open sessions listed.
SESSIONS_MAX = 200
#: The most of a session's calls whose dialog is shown (its latest).
SESSION_CALLS_MAX = 20

BoardSize = Annotated[int, Query(ge=1, le=BOARD_MAX)]


@router.get("/calls", dependencies=[PageAccess])
async def calls_page(request: Request, n: BoardSize = BOARD_DEFAULT) -> Response:
    """Live calls: those in progress and the latest ``n`` others, kept up to date."""
    console = console_of(request)
    reader = console.reader
    marks = await reader.marks()
    current = await read_board(reader, n)
    rows = await reader.latest_between({}, marks.timeline, pages.FEED_SEED, pages.FEED_SIZE)
    feed = activity(rows, prefix=reader.topics.prefix, limit=pages.FEED_SIZE)
    return html(
        pages.render(
            "calls.html",
            page="calls",
            board=current,
            limit=n,
            feed=feed,
            since=format_since(marks.timeline),
        )
    )


@router.get("/calls/{call_ref}", dependencies=[PageAccess])
async def call_page(request: Request, call_ref: str) -> Response:
    """One call: its state and every event of it in the order recorded, kept up to date."""
    reader = console_of(request).reader
    marks = await reader.marks()
    state, session = await reader.session_of(call_ref)
    events = timeline(await reader.call_rows(call_ref), prefix=reader.topics.prefix)
    if state is None and not events:
        page = pages.render("missing.html", page="calls", what=f"No call {call_ref} in the views.")
        return html(page, status.HTTP_404_NOT_FOUND)
    return html(
        pages.render(
            "call.html",
            page="calls",
            call_ref=call_ref,
            row=None if state is None else call_row(state),
            session=None if session is None else session_row(session),
            events=events,
            stage=last_stage(events) or "",
            since=format_since(marks.timeline),
        )
    )


@router.get("/sessions", dependencies=[PageAccess])
async def sessions_page(request: Request) -> Response:
    """Open sessions (active, then dropped), the latest change first."""
    states, total = await console_of(request).reader.open_sessions(SESSIONS_MAX)
    rows = session_rows(states)
    return html(
        pages.render(
            "sessions.html",
            page="sessions",
            active=[r for r in rows if r.status == "active"],
            dropped=[r for r in rows if r.status == "dropped"],
            total=total,
            shown=len(rows),
        )
    )


@router.get("/sessions/{call_ref}", dependencies=[PageAccess])
async def session_page(request: Request, call_ref: str) -> Response:
    """The session a call belongs to, and its dialog so far (every call of it)."""
    reader = console_of(request).reader
    _state, session = await reader.session_of(call_ref)
    if session is None:
        page = pages.render(
            "missing.html", page="sessions", what=f"No session known for call {call_ref}."
        )
        return html(page, status.HTTP_404_NOT_FOUND)
    refs = list(session.call_refs[-SESSION_CALLS_MAX:])
    dialog = turns(await reader.dialog_rows(refs), refs)
    return html(
        pages.render(
            "session.html", page="sessions", session=session_row(session), refs=refs, turns=dialog
        )
    )


@router.get("/health", dependencies=[PageAccess])
async def health_page(request: Request) -> Response:
    """Lag per reader and partition, parked records, and which parts of the stack answer."""
    health = await console_of(request).health.get()
    return html(pages.render("health.html", page="health", health=health))


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The console's style sheet and script (public; cached, named by content)."""
    asset = pages.asset(name)
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    body, media_type = asset
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


__all__ = ["BOARD_DEFAULT", "BOARD_MAX", "SESSIONS_MAX", "BoardSize", "router"]
