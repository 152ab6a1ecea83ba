"""``POST /v1/calls``: an upstream trigger asks for an outbound call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from ringlog.api.appending import append_event
from ringlog.api.deps import ApiKeyDep, ServicesDep
from ringlog.api.idempotency import append_once, key_header, key_scope
from ringlog.api.ingest import call_request_event
from ringlog.api.models import CallAccepted, CallRequestIn, Problem

router = APIRouter(prefix="/v1", tags=["calls"])

IdempotencyKey = Annotated[
    str | None,
    key_header("A retry with the same key returns the same call_ref and appends nothing."),
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
    # with Idempotency-Key the event id and the call ref derive from the key (the one rule,
    # call_request_event); append_once keeps a retry from appending twice
    scope = key_scope(api_key)

    async def append() -> str:
        envelope = call_request_event(
            body,
            default_agent_id=services.settings.retell.agent_id,
            source="api",
            scope=scope,
            idempotency_key=idempotency_key,
        )
        await append_event(services.log, services.metrics, envelope)
        return envelope.key

    answer = await append_once(
        services.idempotency,
        scope,
        idempotency_key,
        body.model_dump_json().encode(),
        append,
    )
    return CallAccepted(call_ref=answer)
