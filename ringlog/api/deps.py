"""FastAPI dependencies, declared once as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from ringlog.api.idempotency import IdempotencyStore
from ringlog.api.metrics import ApiMetrics
from ringlog.config import Settings
from ringlog.streams.producer import LogProducer


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_log(request: Request) -> LogProducer:
    """The app's started log producer."""
    log: LogProducer = request.app.state.log
    return log


def get_metrics(request: Request) -> ApiMetrics:
    """The app's metrics registry."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def get_idempotency(request: Request) -> IdempotencyStore:
    """The app's idempotency-key store."""
    store: IdempotencyStore = request.app.state.idempotency
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(get_idempotency)]
LogDep = Annotated[LogProducer, Depends(get_log)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]


def require_api_key(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> str:
    """Accept ``Authorization: Bearer <key>`` for a key in ``RINGLOG_API_KEYS``; else 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token:
        for key in settings.api.keys:
            if hmac.compare_digest(key.encode(), token.strip().encode()):
                return key
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or unknown API key",
        headers={"WWW-Authenticate": "Bearer"},
    )


ApiKeyDep = Annotated[str, Depends(require_api_key)]
