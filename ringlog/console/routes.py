"""The console's HTTP routes: sign-in, four read-only pages, their live streams, two assets.

Every page is rendered on the server (Jinja2, :mod:`ringlog.console.pages`); the one script
(``static/console.js``, no build step, nothing from another site) only applies the live
streams' updates, which arrive as server-sent events carrying HTML the server rendered.

Access (:mod:`ringlog.console.auth`): ``GET /console/sign-in`` shows the form, ``POST`` takes
an API key and sets the session cookie, ``POST /console/sign-out`` clears it. Without a valid
cookie, a page answers ``303`` to the sign-in form (remembering the page), a stream ``401``.
The assets under ``/console/static/`` are public (the sign-in form needs them). The console
adds no other endpoint that writes: its pages only read the views.

Every answer carries ``Cache-Control: no-store`` and a content security policy that allows
this site's own script and style sheet only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from ringlog.api.deps import services_of
from ringlog.api.keys import matching_key
from ringlog.api.views import views_of
from ringlog.config import Settings
from ringlog.console import auth, pages
from ringlog.console.health import Health, HealthCache, gather
from ringlog.console.live import (
    BoardUpdate,
    CallUpdate,
    Feed,
    board_updates,
    call_updates,
    format_since,
    parse_since,
    read_board,
)
from ringlog.console.models import (
    activity,
    call_row,
    last_stage,
    session_row,
    session_rows,
    timeline,
    turns,
)
from ringlog.console.queries import ConsoleReader, ConsoleTopics

log = structlog.get_logger("ringlog.console")

router = APIRouter(prefix="/console", include_in_schema=False)

#: How many calls other than those in progress the live list shows by default, and at most.
BOARD_DEFAULT = 20
BOARD_MAX = 100
#: The most open sessions listed.
SESSIONS_MAX = 200
#: The most of a session's calls whose dialog is shown (its latest).
SESSION_CALLS_MAX = 20
#: A stream ends after this long (the browser reconnects, and is asked to sign in again once
#: the cookie expired).
STREAM_MAX_S = 600.0
#: How long the browser waits before reconnecting a stream that ended.
RETRY_MS = 1000
#: The longest stage name a call's stream takes from its page.
STAGE_MAX = 64
#: The longest form body the sign-in reads.
FORM_MAX_BYTES = 4096

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Console:
    """What the console keeps per app: settings, its reader of the views, the health cache."""

    settings: Settings
    reader: ConsoleReader
    health: HealthCache


def console_of(request: Request) -> Console:
    """The app's console, made on first use from what the app opened at start-up (the
    views' database engine and the settings); it holds nothing that needs closing."""
    found: Console | None = getattr(request.app.state, "console", None)
    if found is None:
        settings = services_of(request).settings
        reader = ConsoleReader(views_of(request).store.engine, ConsoleTopics.of(settings))

        async def measure() -> Health:
            return await gather(settings, reader)

        found = Console(settings, reader, HealthCache(measure))
        request.app.state.console = found
    return found


# -- access -----------------------------------------------------------------------------------


def _keys(request: Request) -> tuple[str, ...]:
    return tuple(services_of(request).settings.api.keys)


def _token(request: Request) -> str | None:
    return request.cookies.get(auth.COOKIE)


def signed_in(request: Request) -> bool:
    """Whether the request carries a valid session cookie."""
    return auth.verify(_token(request), _keys(request), now=time.time())


async def page_access(request: Request) -> None:
    """A page's guard: without a valid cookie, ``303`` to the sign-in form."""
    if not signed_in(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "sign in first",
            headers={"Location": f"/console/sign-in?next={quote(target, safe='')}"},
        )


async def stream_access(request: Request) -> None:
    """A stream's guard: without a valid cookie, ``401``."""
    if not signed_in(request):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in at /console/sign-in")


PageAccess = Depends(page_access)
StreamAccess = Depends(stream_access)


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def _same_origin(request: Request) -> bool:
    """Whether a form post came from this site: no ``Origin`` (not a browser's cross-site
    post), or one naming the host asked (``Host``, or ``X-Forwarded-Host`` behind a proxy that
    rewrites it; a form cannot set either)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None}


@router.get("")
@router.get("/")
async def console_home() -> RedirectResponse:
    """The console's start: the live calls."""
    return RedirectResponse("/console/calls", status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (a signed-in browser goes straight on)."""
    target = auth.safe_next(next)
    if signed_in(request):
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    return _html(pages.render("sign_in.html", next=target, error=None, keys=bool(_keys(request))))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the posted key (a form field, ``key``); right: set the session cookie and go to
    the page asked for; wrong: ``401`` and the form again. The key is never logged."""
    if not _same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "form posted from another site")
    body = await request.body()
    try:
        form = parse_qs(body[:FORM_MAX_BYTES].decode(errors="replace"), max_num_fields=4)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not the sign-in form") from exc
    nexts, keys = form.get("next", []), form.get("key", [])
    target = auth.safe_next(nexts[0] if nexts else None)
    key = matching_key(keys[0] if keys else "", _keys(request))
    if key is None:
        log.info("console sign-in refused")
        page = pages.render(
            "sign_in.html",
            next=target,
            error="That key is not one of this deployment's API keys.",
            keys=bool(_keys(request)),
        )
        return _html(page, status.HTTP_401_UNAUTHORIZED)
    log.info("console signed in")
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    response.set_cookie(
        auth.COOKIE,
        auth.issue(key, now=time.time()),
        max_age=auth.SESSION_TTL_S,
        path=auth.COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Clear the session cookie; back to the sign-in form."""
    if not _same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "form posted from another site")
    response = RedirectResponse(
        "/console/sign-in", status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS
    )
    response.delete_cookie(
        auth.COOKIE,
        path=auth.COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


# -- pages --------------------------------------------------------------------------------------

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
    return _html(
        pages.render(
            "calls.html",
            page="calls",
            board=current,
            limit=n,
            feed=feed,
            since=format_since(marks.timeline),
        )
    )


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


@router.get("/calls/{call_ref}", dependencies=[PageAccess])
async def call_page(request: Request, call_ref: str) -> Response:
    """One call: its state and every event of it in the order recorded, kept up to date."""
    reader = console_of(request).reader
    marks = await reader.marks()
    state, session = await reader.session_of(call_ref)
    events = timeline(await reader.call_rows(call_ref), prefix=reader.topics.prefix)
    if state is None and not events:
        page = pages.render("missing.html", page="calls", what=f"No call {call_ref} in the views.")
        return _html(page, status.HTTP_404_NOT_FOUND)
    return _html(
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


@router.get("/sessions", dependencies=[PageAccess])
async def sessions_page(request: Request) -> Response:
    """Open sessions (active, then dropped), the latest change first."""
    states, total = await console_of(request).reader.open_sessions(SESSIONS_MAX)
    rows = session_rows(states)
    return _html(
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
        return _html(page, status.HTTP_404_NOT_FOUND)
    refs = list(session.call_refs[-SESSION_CALLS_MAX:])
    dialog = turns(await reader.dialog_rows(refs), refs)
    return _html(
        pages.render(
            "session.html", page="sessions", session=session_row(session), refs=refs, turns=dialog
        )
    )


@router.get("/health", dependencies=[PageAccess])
async def health_page(request: Request) -> Response:
    """Lag per reader and partition, parked records, and which parts of the stack answer."""
    health = await console_of(request).health.get()
    return _html(pages.render("health.html", page="health", health=health))


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


# -- streams ------------------------------------------------------------------------------------


def _event(name: str, data: Any, since: str) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=name, id=since, retry=RETRY_MS)


def _stream(request: Request, events: AsyncIterator[Any]) -> EventSourceResponse:
    """Send ``events`` until the client leaves, the server stops, the session cookie
    expires or :data:`STREAM_MAX_S` passes (the browser then reconnects)."""
    expires = _expiry(_token(request))
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
