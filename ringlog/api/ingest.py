"""Pure parsing of what arrives from outside: Retell's webhook bodies and upstream call
requests, accepted as a typed event, or rejected with a reason; and the one rule that turns
each into the envelope appended to the log.

No I/O here: the routes (and the SQS bridge in, :mod:`ringlog.bridges.inbound`) verify what
they must first, then call these functions on the raw bytes, then append what was accepted or
quarantine what was rejected.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from pydantic import ValidationError

from ringlog.api.models import CallRequestIn
from ringlog.schemas import (
    REGISTRY,
    WEBHOOK_EVENTS,
    CallRequested,
    Envelope,
    RetellCallInbound,
    RetellWebhook,
    derived_event_id,
)
from ringlog.schemas.codec import AsWritten, invalid_reason
from ringlog.schemas.envelope import new_event_id


@dataclass(frozen=True)
class Accepted:
    """A body that validated, and the body exactly as it arrived with its schema version.

    The log keeps ``as_written`` (Retell's own bytes, legacy ``data`` bodies included), not a
    re-serialisation of ``payload``; readers validate and upcast it on the way in.
    """

    payload: RetellWebhook
    as_written: AsWritten


@dataclass(frozen=True)
class AcceptedInbound:
    """A valid ``call_inbound`` body."""

    payload: RetellCallInbound


@dataclass(frozen=True)
class Rejected:
    """A signed body ringlog cannot use; ``reason`` is told to the caller and kept with it.

    ``kind`` is a short fixed category (a metric label): ``invalid_json``, ``not_an_object``,
    ``unknown_event`` or ``invalid_payload``.
    """

    reason: str
    kind: str = "invalid_payload"


def parse_retell_webhook(raw: bytes) -> Accepted | Rejected:
    """Parse a call-event webhook body (``call``, or the legacy ``data``) into its event model."""
    body = _json_object(raw)
    if isinstance(body, Rejected):
        return body
    event = body.get("event")
    if not isinstance(event, str):
        return Rejected("missing `event` (a string such as `call_started`)", "unknown_event")
    model = WEBHOOK_EVENTS.get(event)
    if model is None:
        expected = ", ".join(sorted(WEBHOOK_EVENTS))
        return Rejected(f"unknown event {event!r}; expected one of {expected}", "unknown_event")
    as_written: AsWritten = (model.schema_version, raw)
    if "call" not in body and "data" in body:
        _, upcast = REGISTRY.upcast(model.event_type, 1, body)
        as_written, body = (1, raw), upcast
    if not isinstance(body.get("call"), dict):
        return Rejected("missing call object (`call`, or legacy `data`)")
    try:
        return Accepted(model.from_body(body), as_written)
    except msgspec.ValidationError as exc:
        return Rejected(invalid_reason(exc))


def parse_call_inbound(raw: bytes) -> AcceptedInbound | Rejected:
    """Parse Retell's inbound-call webhook body."""
    body = _json_object(raw)
    if isinstance(body, Rejected):
        return body
    if body.get("event") != "call_inbound":
        return Rejected(
            f"expected event `call_inbound`, got {body.get('event')!r}", "unknown_event"
        )
    try:
        return AcceptedInbound(RetellCallInbound.from_body(body))
    except msgspec.ValidationError as exc:
        return Rejected(invalid_reason(exc))


def parse_call_request(raw: bytes) -> CallRequestIn | Rejected:
    """Parse an upstream call request (the body of ``POST /v1/calls``) given as raw bytes.

    The API validates the same model through FastAPI; callers without HTTP (the SQS bridge in)
    use this. A refusal names the fields at fault, never their values.
    """
    body = _json_object(raw)
    if isinstance(body, Rejected):
        return body
    try:
        return CallRequestIn.model_validate(body)
    except ValidationError as exc:
        return Rejected(_errors(exc))


def call_request_event(
    request: CallRequestIn,
    *,
    default_agent_id: str,
    source: str,
    scope: str = "",
    idempotency_key: str | None = None,
) -> Envelope:
    """The ``call.requested`` envelope of ``request``: the one rule for its call ref and id.

    With an ``idempotency_key`` (the ``Idempotency-Key`` header in ``scope``, the caller's
    namespace; or an SQS ``MessageId`` in the queue's), the event id is derived from
    ``(scope, key)`` and the call ref from the event id, so a retry of the same request yields
    the same ref and id: consumers keep the first request of a ref and drop the same event id
    twice. The key is kept in the event (``idempotency_key``). Without one, both are fresh.
    """
    event_id: uuid.UUID | None = None
    if idempotency_key is not None:
        event_id = derived_event_id("call.requested", scope, idempotency_key)
    call_ref = f"call_{(event_id or new_event_id()).hex}"
    event = CallRequested(
        call_ref=call_ref,
        to_number=request.to_number,
        from_number=request.from_number,
        agent_id=request.agent_id or default_agent_id,
        scheduled_at=request.scheduled_at,
        patient_ref=request.patient_ref,
        task_ref=request.task_ref,
        metadata=request.metadata,
        idempotency_key=idempotency_key,
    )
    return Envelope.new(event, source=source, correlation_id=call_ref, event_id=event_id)


def webhook_event(
    accepted: Accepted, *, source: str, event_id: uuid.UUID | None = None
) -> Envelope:
    """The envelope of an accepted Retell call event, keyed and correlated by its call ref
    (:func:`~ringlog.schemas.retell.call_ref_for` through ``partition_key``).

    Every delivery is appended, duplicates included: consumers deduplicate on Retell's
    ``(call_id, event)`` (:meth:`~ringlog.schemas.RetellWebhook.dedupe_key`), wherever the
    delivery came from. ``event_id`` fixes the id (the SQS bridge derives it from the message).
    """
    payload = accepted.payload
    return Envelope.new(
        payload, source=source, correlation_id=payload.partition_key(), event_id=event_id
    )


def _json_object(raw: bytes) -> dict[str, Any] | Rejected:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"body is not valid JSON: {exc}", "invalid_json")
    if not isinstance(body, dict):
        return Rejected(f"body must be a JSON object, got {type(body).__name__}", "not_an_object")
    return body


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors()
    )
