"""Retell's webhooks: call events and the inbound-call webhook.

The signature is checked on the raw bytes before anything is parsed; a bad or missing one is
answered 401 and nothing is written. A signed body that cannot be used is answered 400 and kept
on the quarantine topic. Every accepted delivery is appended as it arrived, duplicates included
(consumers deduplicate on ``(call_id, event)``), before the 2xx.

The inbound webhook also announces the ringing call to the dialog socket
(:mod:`ringlog.api.dialog_gate`); ``call_ended`` releases the number's claim if the call still
holds it.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request, Response, status
from redis.exceptions import RedisError

from ringlog.api.appending import append_event, quarantine_input
from ringlog.api.deps import Services, ServicesDep, services_of
from ringlog.api.ingest import (
    Rejected,
    parse_call_inbound,
    parse_retell_webhook,
    webhook_event,
)
from ringlog.api.models import Problem
from ringlog.api.signature import HEADER, Verdict, verify
from ringlog.calls.known import known_from_inbound, patient_number
from ringlog.config import Settings
from ringlog.dialog import stage_phrase
from ringlog.schemas import Envelope, RetellCallEnded

router = APIRouter(prefix="/v1/webhooks", tags=["retell"])
log = structlog.get_logger("ringlog.api")

_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "signed but malformed; kept on the quarantine topic"},
    401: {"model": Problem, "description": "missing, stale or wrong x-retell-signature"},
    413: {"model": Problem, "description": "body larger than the configured limit"},
    503: {"model": Problem, "description": "the log is unavailable; retry"},
}


async def verified_body(request: Request, settings: Settings) -> bytes:
    """Return the raw body if ``x-retell-signature`` verifies it; raise 401 otherwise."""
    raw = await request.body()
    key = settings.retell.api_key
    if key is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no Retell API key configured")
    verdict = verify(
        raw,
        key.get_secret_value(),
        request.headers.get(HEADER),
        now_ms=int(time.time() * 1000),
        tolerance_s=settings.retell.signature_tolerance_s,
    )
    if verdict is not Verdict.OK:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, verdict.value)
    return raw


async def _reject(services: Services, source: str, raw: bytes, rejected: Rejected) -> HTTPException:
    await quarantine_input(
        services.log,
        services.metrics,
        services.settings.topic("quarantine"),
        source=source,
        raw=raw,
        reason=rejected.reason,
        kind=rejected.kind,
    )
    return HTTPException(status.HTTP_400_BAD_REQUEST, rejected.reason)


@router.post(
    "/retell",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_ERRORS,
    openapi_extra=_JSON_BODY,
)
async def retell_webhook(request: Request) -> Response:
    """Append a Retell call event (``call``, or the legacy ``data``); 204 once it is durable."""
    services = services_of(request)
    raw = await verified_body(request, services.settings)
    parsed = parse_retell_webhook(raw)
    if isinstance(parsed, Rejected):
        raise await _reject(services, "retell-webhook", raw, parsed)
    payload = parsed.payload
    envelope = webhook_event(parsed, source="retell-webhook")
    await append_event(services.log, services.metrics, envelope, as_written=parsed.as_written)
    if isinstance(payload, RetellCallEnded):
        await _free_number(services, payload)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _free_number(services: Services, ended: RetellCallEnded) -> None:
    """The call is over: release its number's claim if the call still holds it (its socket's
    process may have died before releasing it). A failure is logged: the event is durable."""
    call = {
        n: getattr(ended.call, n) for n in ("call_type", "direction", "from_number", "to_number")
    }
    phone = patient_number(call)
    if not phone:
        return
    try:
        await services.sessions.release(phone, ended.partition_key())
    except RedisError as exc:
        log.warning("claim not released at call_ended", error=type(exc).__name__)


@router.post("/retell/inbound", responses=_ERRORS, openapi_extra=_JSON_BODY)
async def retell_inbound(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Append Retell's ``call_inbound``, announce the call (its dialog socket is then served),
    and answer with the call ref Retell will echo back.

    When the caller's number has an open session, the dynamic variables carry the resume
    context: the task and the stage reached, never personal details (caller ID can be spoofed).
    """
    raw = await verified_body(request, services.settings)
    parsed = parse_call_inbound(raw)
    if isinstance(parsed, Rejected):
        raise await _reject(services, "retell-inbound", raw, parsed)
    inbound = parsed.payload.call_inbound
    call_ref = parsed.payload.partition_key()  # the one rule: retell:<call_id>, else in_<hex>
    envelope = Envelope.new(
        parsed.payload, source="retell-inbound", key=call_ref, correlation_id=call_ref
    )
    await append_event(services.log, services.metrics, envelope)
    known = known_from_inbound(inbound, call_ref)
    if known is not None:  # its socket is served without asking get-call
        await services.calls.directory.announce(known)
    metadata: dict[str, str] = {"call_ref": call_ref}
    variables: dict[str, str] = {"call_ref": call_ref}
    phone = patient_number({"direction": "inbound", "from_number": inbound.from_number})
    session = await services.sessions.get(phone) if phone else None
    if session is not None and session.open:
        metadata["session_id"] = session.session_id
        variables |= {
            "resume": "true",
            "session_task": "booking a flu shot",
            "session_stage": stage_phrase(session.stage),  # type: ignore[arg-type]
        }
    return {"call_inbound": {"metadata": metadata, "dynamic_variables": variables}}
