"""Pure parsing of Retell's webhook bodies: accepted as a typed event, or rejected with a reason.

No I/O here: the routes verify the signature first, then call these functions on the raw bytes,
then append what was accepted or quarantine what was rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from ringlog.schemas import REGISTRY, WEBHOOK_EVENTS, RetellCallInbound, RetellWebhook
from ringlog.schemas.codec import AsWritten


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
        return Accepted(model.model_validate(body), as_written)
    except ValidationError as exc:
        return Rejected(_errors(exc))


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
        return AcceptedInbound(RetellCallInbound.model_validate(body))
    except ValidationError as exc:
        return Rejected(_errors(exc))


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
