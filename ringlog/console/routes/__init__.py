"""The console's HTTP routes: sign-in, four read-only pages, their live streams, two assets.

Every page is rendered on the server (Jinja2, :mod:`ringlog.console.pages`); the one script
(``static/console.js``, no build step, nothing from another site) only applies the live
streams' updates, which arrive as server-sent events carrying HTML the server rendered.

:data:`router` (under ``/console``) is the console's start (``/console`` goes to the live
calls) and the routes of:

* :mod:`.access`: sign-in and sign-out, and the guards of pages and streams;
* :mod:`.streams`: the live streams (before the pages: ``/calls/stream`` is not a call);
* :mod:`.pages`: the pages and the assets.

The console adds no other endpoint that writes: its pages only read the views. Every answer
carries the headers of :mod:`.responses`.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse

from ringlog.console.routes import access, pages, streams
from ringlog.console.routes.responses import SECURITY_HEADERS

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
@router.get("/")
async def console_home() -> RedirectResponse:
    """The console's start: the live calls."""
    return RedirectResponse("/console/calls", status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


router.include_router(access.router)
router.include_router(streams.router)
router.include_router(pages.router)

__all__ = ["router"]
