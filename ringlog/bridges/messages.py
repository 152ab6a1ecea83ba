"""An SQS message bridged in, as a decision (pure): append this event, quarantine, or refuse.

The rules are the API's, imported, never copied (:mod:`ringlog.api.ingest`): a call request
is validated as ``POST /v1/calls`` validates it and gets its call ref and event id from the one
rule (:func:`~ringlog.api.ingest.call_request_event`), with the SQS ``MessageId`` as the
idempotency key in the queue's scope; a Retell body is parsed as the webhook parses it and
kept as it arrived. So a message delivered twice (SQS is at-least-once, and a bridge killed
between the append and the delete appends it again) becomes the same event id and call ref,
and consumers deduplicate it: ``call.requested`` by call ref (the first request of a ref
stands), Retell events by ``(call_id, event)`` exactly like the webhook's duplicates, and
every store keyed by event id (the warehouse) by that id. The message id also travels in the
record's headers (:data:`HEADER_MESSAGE_ID`).

A body that does not parse goes to ``quarantine`` with the message's id and attributes (then
the message is deleted: kept, not lost). A body larger than the API would take for its kind
(``RINGLOG_API_MAX_BODY_BYTES`` for call requests, ``…_WEBHOOK_MAX_BODY_BYTES`` for Retell
events) is refused: it is left on the queue, where the queue's redrive policy can move it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ringlog.api.ingest import (
    Rejected,
    call_request_event,
    parse_call_request,
    parse_retell_webhook,
    webhook_event,
)
from ringlog.bridges.kinds import InboundKind
from ringlog.config import ApiSettings
from ringlog.schemas import Envelope, derived_event_id
from ringlog.schemas.codec import AsWritten

#: Kafka header with the SQS ``MessageId`` an event (or a quarantined body) came from.
HEADER_MESSAGE_ID = "ringlog-sqs-message-id"
#: Kafka header with the name of the queue it came from.
HEADER_QUEUE = "ringlog-sqs-queue"
#: Kafka header (on quarantine records) with the message's attributes, as JSON.
HEADER_ATTRIBUTES = "ringlog-sqs-attributes"

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class SqsMessage:
    """What the bridge reads of a received message."""

    message_id: str
    receipt_handle: str
    body: str
    #: system attributes (``SentTimestamp``, ``ApproximateReceiveCount`` …)
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: the producer's message attributes, as SQS returns them (``DataType``, ``StringValue`` or
    #: ``BinaryValue``)
    message_attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_sqs(cls, message: Mapping[str, Any]) -> SqsMessage:
        """From one entry of ``ReceiveMessage``'s ``Messages``."""
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message.get("Body", ""),
            attributes=dict(message.get("Attributes") or {}),
            message_attributes=dict(message.get("MessageAttributes") or {}),
        )


@dataclass(frozen=True)
class Append:
    """Append ``envelope`` (its payload stored ``as_written`` when set) with ``headers``."""

    envelope: Envelope
    as_written: AsWritten | None
    headers: Headers


@dataclass(frozen=True)
class Quarantine:
    """Keep ``raw`` on the quarantine topic with ``reason``; ``kind`` is a metric label."""

    source: str
    raw: bytes
    reason: str
    kind: str
    headers: Headers


@dataclass(frozen=True)
class Refuse:
    """Leave the message on the queue: ``reason`` says why, for the error logged."""

    reason: str


Decision = Append | Quarantine | Refuse


def queue_scope(queue: str) -> str:
    """The namespace of a queue's message ids (``sqs:<queue name>``), and the ``source`` of
    what is bridged in from it."""
    return f"sqs:{queue}"


def body_limit(kind: InboundKind, api: ApiSettings) -> int:
    """The largest body of ``kind`` ringlog takes: the API's limit for the same input."""
    if kind is InboundKind.CALL_REQUEST:
        return api.max_body_bytes
    return api.webhook_max_body_bytes


def decide(
    message: SqsMessage,
    *,
    kind: InboundKind,
    queue: str,
    max_bytes: int,
    default_agent_id: str,
) -> Decision:
    """What to do with ``message`` from ``queue`` (a queue of ``kind``)."""
    raw = message.body.encode()
    if len(raw) > max_bytes:
        return Refuse(
            f"message {message.message_id} is {len(raw)} bytes, larger than the {max_bytes} "
            f"bytes a {kind.value} may have; left on the queue (its redrive policy, if any, "
            "moves it to a dead-letter queue)"
        )
    scope = queue_scope(queue)
    origin: Headers = (
        (HEADER_MESSAGE_ID, message.message_id.encode()),
        (HEADER_QUEUE, queue.encode()),
    )
    if kind is InboundKind.CALL_REQUEST:
        request = parse_call_request(raw)
        if isinstance(request, Rejected):
            return _quarantine(message, scope, raw, request, origin)
        envelope = call_request_event(
            request,
            default_agent_id=default_agent_id,
            source=scope,
            scope=scope,
            idempotency_key=message.message_id,
        )
        return Append(envelope, None, origin)
    parsed = parse_retell_webhook(raw)
    if isinstance(parsed, Rejected):
        return _quarantine(message, scope, raw, parsed, origin)
    event_id = derived_event_id(parsed.payload.event_type, scope, message.message_id)
    envelope = webhook_event(parsed, source=scope, event_id=event_id)
    return Append(envelope, parsed.as_written, origin)


def _quarantine(
    message: SqsMessage, scope: str, raw: bytes, rejected: Rejected, origin: Headers
) -> Quarantine:
    attributes = orjson.dumps(
        {
            "MessageId": message.message_id,
            "Attributes": dict(message.attributes),
            "MessageAttributes": {
                name: _attribute(value) for name, value in message.message_attributes.items()
            },
        }
    )
    headers = (*origin, (HEADER_ATTRIBUTES, attributes))
    return Quarantine(scope, raw, rejected.reason, rejected.kind, headers)


def _attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A message attribute as JSON: binary values base64-encoded, lists kept."""
    shown: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, bytes | bytearray):
            shown[key] = base64.b64encode(item).decode()
        elif isinstance(item, list):
            shown[key] = [
                base64.b64encode(v).decode() if isinstance(v, bytes | bytearray) else v
                for v in item
            ]
        else:
            shown[key] = item
    return shown
