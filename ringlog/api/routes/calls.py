"""``POST /v1/calls``: an upstream trigger asks for an outbound call."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status

from ringlog.api.appending import append_event
from ringlog.api.deps import ApiKeyDep, ServicesDep
from ringlog.api.idempotency import fingerprint
from ringlog.api.models import CallAccepted, CallRequestIn, Problem
from ringlog.schemas import CallRequested, Envelope, derived_event_id
from ringlog.schemas.envelope import new_event_id

router = APIRouter(prefix="/v1", tags=["calls"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="A retry with the same key returns the same call_ref and appends nothing.",
    ),
]


@router.post(
    "/calls",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        401: {"model": Problem, "description": "missing or unknown API key"},
        409: {"model": Problem, "description": "the same Idempotency-Key is in flight; retry"},
        422: {"description": "invalid request, or Idempotency-Key reused for another body"},
        503: {"model": Problem, "description": "the log is unavailable; retry"},
    },
)
async def request_call(
    body: CallRequestIn,
    api_key: ApiKeyDep,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> CallAccepted:
    """Append ``CallRequested``; answer 202 with the call ref only once it is durable."""
    idempotency = services.idempotency
    scope = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    if idempotency_key is None:
        call_ref, event_id = f"call_{new_event_id().hex}", None
    else:
        event_id = derived_event_id("call.requested", scope, idempotency_key)
        call_ref = f"call_{event_id.hex}"
        digest = fingerprint(body.model_dump_json().encode())
        prior = await idempotency.claim(scope, idempotency_key, digest)
        if prior is not None:
            if prior.fingerprint != digest:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "Idempotency-Key was already used for a different request",
                )
            if prior.state == "done" and prior.call_ref:
                return CallAccepted(call_ref=prior.call_ref)
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "a request with this Idempotency-Key is in progress; retry",
                headers={"Retry-After": "1"},
            )
    event = CallRequested(
        call_ref=call_ref,
        to_number=body.to_number,
        from_number=body.from_number,
        agent_id=body.agent_id or services.settings.retell.agent_id,
        scheduled_at=body.scheduled_at,
        patient_ref=body.patient_ref,
        task_ref=body.task_ref,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    envelope = Envelope.new(event, source="api", correlation_id=call_ref, event_id=event_id)
    try:
        await append_event(services.log, services.metrics, envelope)
    except BaseException:
        if idempotency_key is not None:
            await idempotency.release(scope, idempotency_key)
        raise
    if idempotency_key is not None:
        await idempotency.complete(scope, idempotency_key, digest, call_ref)
    return CallAccepted(call_ref=call_ref)
