"""The one factory that builds the API from settings (the API's composition root)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from ringlog import __version__, heap, logs
from ringlog.adapters.retell import RetellClient
from ringlog.api.deps import Services
from ringlog.api.dialog_gate import OpenSockets, TrustedCalls
from ringlog.api.idempotency import IdempotencyStore
from ringlog.api.keys import KeyCheck
from ringlog.api.metrics import ApiMetrics
from ringlog.api.middleware import BodyLimit, RequestMetrics, WritePositions
from ringlog.api.routes import calls, health, llm, reads, tasks, webhooks
from ringlog.api.views import Views
from ringlog.calls.directory import CallDirectory
from ringlog.config import Settings
from ringlog.console import router as console_router
from ringlog.dialog.model import ChatModel
from ringlog.errors import BrokerUnavailable, RetryableError
from ringlog.projections.retrying import failure_type, is_transient
from ringlog.sessions.cache import SessionCache
from ringlog.sessions.state import SessionState
from ringlog.streams.head import HEAD
from ringlog.streams.producer import LogProducer

log = structlog.get_logger("ringlog.api")

#: How long a call's start waits for the sessions view on a cache miss (then answers from it).
SESSION_LOOKUP_WAIT_S = 1.0
#: The longest part of an error's ``loc`` (a field name, or a key the caller sent) and the
#: longest ``msg`` a 422 answer repeats; longer ones are cut.
ERROR_TEXT_MAX = 128


def create_app(settings: Settings) -> FastAPI:
    """Build the FastAPI app: routes, middleware, error mapping, and clients opened on start.

    The log producer connects at start-up; if the broker is down then, the app still starts,
    answers 503 until the broker is back, and reconnects on the next request.
    """
    metrics = ApiMetrics()
    otel = settings.api.opentelemetry

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = LogProducer(settings.kafka)
        try:
            await producer.start()
        except BrokerUnavailable as exc:
            log.warning("broker unavailable at start; will retry per request", error=str(exc))
        redis = aioredis.Redis.from_url(settings.redis.url, socket_timeout=2)
        views = app.state.views = Views.open(settings, producer)

        async def session_in_view(phone: str) -> SessionState | None:
            # the session may have been written by another process: read up to the log's end
            state, _coverage = await views.session(phone, HEAD, timeout_s=SESSION_LOOKUP_WAIT_S)
            return state

        prefix = settings.redis.key_prefix
        sessions = SessionCache(redis, prefix=prefix, view=session_in_view)
        max_call = dt.timedelta(seconds=settings.dialog.max_call_s)
        calls = TrustedCalls(
            CallDirectory(redis, prefix=prefix, max_call=max_call),
            RetellClient(settings.retell, settings.worker) if settings.retell.api_key else None,
        )
        app.state.services = Services(
            settings=settings,
            log=producer,
            metrics=metrics,
            idempotency=IdempotencyStore(redis, prefix=prefix),
            sessions=sessions,
            calls=calls,
            sockets=OpenSockets(settings.dialog.max_sockets_per_address),
            keys=KeyCheck(
                settings.api.keys,
                max_failures=settings.api.max_key_failures,
                window_s=settings.api.key_failure_window_s,
            ),
            dialog_model=ChatModel(settings.dialog) if settings.dialog.model_enabled else None,
        )
        heap.settle()  # what is built so far lives as long as the process
        try:
            yield
        finally:
            await producer.stop()
            await calls.aclose()
            await redis.aclose()
            await views.close()
            if app.state.services.dialog_model is not None:
                await app.state.services.dialog_model.aclose()

    app = FastAPI(
        title="ringlog",
        version=__version__,
        summary="Ingest of call requests and Retell webhooks; a 2xx means durable on Kafka.",
        lifespan=lifespan,
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
    )
    # FastAPI tries routers in order, walking every route of each: the busiest path first
    app.include_router(webhooks.router)
    app.include_router(calls.router)
    app.include_router(llm.router)
    app.include_router(reads.router)
    app.include_router(tasks.router)
    app.include_router(health.router)
    app.include_router(console_router)
    app.add_exception_handler(RetryableError, _unavailable)
    app.add_exception_handler(SQLAlchemyError, _database_failed)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.api.max_body_bytes,
        per_prefix={webhooks.router.prefix: settings.api.webhook_max_body_bytes},
    )
    app.add_middleware(WritePositions)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` serving the API: its address,
    WebSocket frames no larger than the dialog reads (``dialog.max_frame_bytes``), and logging
    left to :mod:`ringlog.logs`."""
    return {
        "host": settings.api.host,
        "port": settings.api.port,
        "ws_max_size": settings.dialog.max_frame_bytes,
        **logs.uvicorn_options(),
    }


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """Map retryable failures (broker down, append timeout, Redis down) to 503 + Retry-After."""
    retry_after = getattr(exc, "retry_after", None) or 1
    log.warning("unavailable", error=str(exc))
    return JSONResponse(
        {"detail": str(exc)},
        status_code=503,
        headers={"Retry-After": str(math.ceil(retry_after))},
    )


async def _database_failed(_request: Request, exc: Exception) -> JSONResponse:
    """A failure of the views' database (the CRM database): 503 + Retry-After when retrying may
    help (the server down or unreachable, :func:`~ringlog.projections.retrying.is_transient`),
    else 500. Neither the answer nor the log repeats the driver's message, which may name the
    server, the user or values."""
    driver = failure_type(exc)
    if is_transient(exc):
        log.warning("views database unavailable", error=driver)
        return JSONResponse(
            {"detail": "the views' database is unavailable; retry"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    log.error("views database failed", error=driver)
    return JSONResponse({"detail": "the views' database failed"}, status_code=500)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each error's ``loc``, ``msg`` and ``type``, never the value sent (FastAPI's
    own answer echoes it as ``input``); logged the same way, without values."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "loc": [_cut(part) for part in error.get("loc", ())],
            "msg": _cut(str(error.get("msg", ""))),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]
    log.info(
        "request refused",
        method=request.method,
        path=_cut(request.url.path),
        errors=[{"loc": e["loc"], "type": e["type"]} for e in detail],
    )
    return JSONResponse({"detail": detail}, status_code=422)


def _cut(part: object) -> object:
    """A ``loc`` part or message as sent back: integers as they are, text cut to
    :data:`ERROR_TEXT_MAX` characters."""
    if isinstance(part, int):
        return part
    text = str(part)
    return text if len(text) <= ERROR_TEXT_MAX else f"{text[:ERROR_TEXT_MAX]}…"
