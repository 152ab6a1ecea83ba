"""FastAPI dependencies, declared once as ``Annotated`` aliases.

The app's long-lived clients are gathered in one :class:`Services` object built at start-up,
so a route takes a single dependency (each dependency costs per request on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from ringlog.api.dialog_gate import OpenSockets, TrustedCalls
from ringlog.api.idempotency import IdempotencyStore
from ringlog.api.keys import KeyCheck, TooManyWrongKeys
from ringlog.api.metrics import ApiMetrics
from ringlog.config import Settings
from ringlog.dialog.model import ChatModel
from ringlog.sessions.cache import SessionCache
from ringlog.streams.producer import LogProducer


@dataclass(frozen=True)
class Services:
    """What request handlers use: settings, the log producer, metrics, idempotency store, the
    session cache, the calls the dialog may serve, the dialog sockets open and the key check."""

    settings: Settings
    log: LogProducer
    metrics: ApiMetrics
    idempotency: IdempotencyStore
    sessions: SessionCache
    calls: TrustedCalls
    sockets: OpenSockets
    keys: KeyCheck
    #: words the dialog's replies when ``RINGLOG_DIALOG_MODEL_ENABLED``; else None
    dialog_model: ChatModel | None = None


def services_of(request: Request) -> Services:
    """The services the app opened at start-up.

    Hot routes (Retell's webhooks) call this directly instead of declaring a dependency:
    FastAPI's dependency resolution is a measurable share of a request's cost there.
    """
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The services the app opened at start-up (as a dependency)."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str:
    """The address of the request's client (as the server saw it, or its proxy said)."""
    return request.client.host if request.client is not None else "unknown"


async def require_api_key(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> str:
    """Accept ``Authorization: Bearer <key>`` for a key in ``RINGLOG_API_KEYS``; else 401;
    429 with ``Retry-After`` while the client's address is over its bound of wrong keys."""
    scheme, _, token = (authorization or "").partition(" ")
    try:
        presented = token if scheme.lower() == "bearer" else ""
        key = services.keys.check(presented, client_address(request))
    except TooManyWrongKeys as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=str(exc),
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    if key is not None:
        return key
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or unknown API key",
        headers={"WWW-Authenticate": "Bearer"},
    )


ApiKeyDep = Annotated[str, Depends(require_api_key)]
