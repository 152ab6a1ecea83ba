"""Who may see the console: signing in and out, and the guards of pages and streams.

``GET /console/sign-in`` shows the form, ``POST`` takes an API key and sets the session cookie
(made and checked by :mod:`ringlog.console.auth`), ``POST /console/sign-out`` clears it.
Without a valid cookie, a page answers ``303`` to the sign-in form (remembering the page)
(:data:`PageAccess`), a stream ``401`` (:data:`StreamAccess`).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, quote, urlsplit

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse

from ringlog.api.deps import client_address, services_of
from ringlog.api.keys import TooManyWrongKeys
from ringlog.console import auth, pages
from ringlog.console.routes.responses import SECURITY_HEADERS, html

log = structlog.get_logger("ringlog.console")

router = APIRouter()

#: The longest form body the sign-in reads.
FORM_MAX_BYTES = 4096


def _keys(request: Request) -> tuple[str, ...]:
    return tuple(services_of(request).settings.api.keys)


def session_token(request: Request) -> str | None:
    """The request's session cookie, if any (not checked)."""
    return request.cookies.get(auth.COOKIE)


def signed_in(request: Request) -> bool:
    """Whether the request carries a valid session cookie."""
    return auth.verify(session_token(request), _keys(request), now=time.time())


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


def _same_origin(request: Request) -> bool:
    """Whether a form post came from this site: no ``Origin`` (not a browser's cross-site
    post), or one naming the host asked (``Host``, or ``X-Forwarded-Host`` behind a proxy that
    rewrites it; a form cannot set either)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None}


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (a signed-in browser goes straight on)."""
    target = auth.safe_next(next)
    if signed_in(request):
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    return html(pages.render("sign_in.html", next=target, error=None, keys=bool(_keys(request))))


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
    try:
        key = services_of(request).keys.check(keys[0] if keys else "", client_address(request))
    except TooManyWrongKeys as exc:
        log.warning("console sign-in refused: too many wrong keys from the address")
        page = pages.render(
            "sign_in.html",
            next=target,
            error=f"Too many wrong keys from this address: try again in {exc.retry_after_s} s.",
            keys=bool(_keys(request)),
        )
        retry = {"Retry-After": str(exc.retry_after_s)}
        return html(page, status.HTTP_429_TOO_MANY_REQUESTS, retry)
    if key is None:
        log.info("console sign-in refused")
        page = pages.render(
            "sign_in.html",
            next=target,
            error="That key is not one of this deployment's API keys.",
            keys=bool(_keys(request)),
        )
        return html(page, status.HTTP_401_UNAUTHORIZED)
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


__all__ = [
    "PageAccess",
    "StreamAccess",
    "router",
    "session_token",
    "signed_in",
]
