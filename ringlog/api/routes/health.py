"""``/healthz`` (process up), ``/readyz`` (broker reachable, topics present), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ringlog.api.deps import ServicesDep
from ringlog.errors import BrokerUnavailable
from ringlog.streams.admin import topic_names
from ringlog.streams.topics import TOPICS

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "broker unreachable or topics missing"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the broker answers and every declared topic exists."""
    settings = services.settings
    try:
        present = await topic_names(settings.kafka)
    except BrokerUnavailable as exc:
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
    missing = sorted(
        settings.topic(t.name) for t in TOPICS if settings.topic(t.name) not in present
    )
    if missing:
        return JSONResponse({"status": "not ready", "missing_topics": missing}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition of the API's metrics."""
    registry = services.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
