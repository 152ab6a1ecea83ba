"""An SQS message bridged in, as a decision: the API's event, the quarantine, or a refusal."""

from __future__ import annotations

import base64

import orjson

from ringlog.api.ingest import (
    Accepted,
    call_request_event,
    parse_call_request,
    parse_retell_webhook,
    webhook_event,
)
from ringlog.api.models import CallRequestIn
from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.messages import (
    HEADER_ATTRIBUTES,
    HEADER_MESSAGE_ID,
    HEADER_QUEUE,
    Append,
    Quarantine,
    Refuse,
    SqsMessage,
    body_limit,
    decide,
    queue_scope,
)
from ringlog.config import ApiSettings
from ringlog.schemas import CallRequested, RetellWebhook, derived_event_id
from tests.support.examples import CLINIC, PHONE, REF, retell_call

QUEUE = "legacy-calls"
AGENT = "agent-default"


def message(body: str | bytes, message_id: str = "m-1", **attributes: object) -> SqsMessage:
    text = body.decode() if isinstance(body, bytes) else body
    return SqsMessage(
        message_id=message_id,
        receipt_handle=f"rh-{message_id}",
        body=text,
        attributes={"SentTimestamp": "1714608475945", "ApproximateReceiveCount": "1"},
        message_attributes=attributes,  # type: ignore[arg-type]
    )


def decided(msg: SqsMessage, kind: InboundKind, max_bytes: int = 1_000_000) -> object:
    return decide(msg, kind=kind, queue=QUEUE, max_bytes=max_bytes, default_agent_id=AGENT)


REQUEST = orjson.dumps({"to_number": PHONE, "from_number": CLINIC, "task_ref": "t-1"})


def test_a_call_request_is_the_apis_event_with_ids_from_the_message_id() -> None:
    """The envelope is what ``call_request_event`` makes for the same body with the MessageId
    as idempotency key in the queue's scope: event id and call ref derived from it; the
    MessageId is in the event and in the record's headers."""
    decision = decided(message(REQUEST, "m-42"), InboundKind.CALL_REQUEST)
    assert isinstance(decision, Append)
    envelope = decision.envelope
    payload = envelope.payload
    assert isinstance(payload, CallRequested)
    assert envelope.event_id == derived_event_id("call.requested", "sqs:legacy-calls", "m-42")
    assert envelope.key == payload.call_ref == f"call_{envelope.event_id.hex}"
    assert envelope.correlation_id == envelope.key
    assert payload.idempotency_key == "m-42"
    assert payload.agent_id == AGENT
    assert payload.task_ref == "t-1"
    assert envelope.source == queue_scope(QUEUE) == "sqs:legacy-calls"
    assert decision.as_written is None
    assert dict(decision.headers) == {
        HEADER_MESSAGE_ID: b"m-42",
        HEADER_QUEUE: QUEUE.encode(),
    }
    request = parse_call_request(REQUEST)
    assert isinstance(request, CallRequestIn)
    rule = call_request_event(
        request,
        default_agent_id=AGENT,
        source="sqs:legacy-calls",
        scope="sqs:legacy-calls",
        idempotency_key="m-42",
    )
    assert (rule.event_id, rule.key, rule.payload) == (envelope.event_id, envelope.key, payload)


def test_the_same_message_twice_is_the_same_event_and_another_message_is_another() -> None:
    """A redelivery (same MessageId) gives the same event id and call ref; a second message
    with the same body is a second request (its own id and ref)."""
    first = decided(message(REQUEST, "m-1"), InboundKind.CALL_REQUEST)
    again = decided(message(REQUEST, "m-1"), InboundKind.CALL_REQUEST)
    other = decided(message(REQUEST, "m-2"), InboundKind.CALL_REQUEST)
    assert isinstance(first, Append) and isinstance(again, Append) and isinstance(other, Append)
    assert (first.envelope.event_id, first.envelope.key) == (
        again.envelope.event_id,
        again.envelope.key,
    )
    assert first.envelope.event_id != other.envelope.event_id
    assert first.envelope.key != other.envelope.key


def test_the_same_message_id_in_another_queue_is_another_event() -> None:
    """Message ids are namespaced by queue."""
    here = decide(
        message(REQUEST, "m-1"),
        kind=InboundKind.CALL_REQUEST,
        queue="a",
        max_bytes=10_000,
        default_agent_id=AGENT,
    )
    there = decide(
        message(REQUEST, "m-1"),
        kind=InboundKind.CALL_REQUEST,
        queue="b",
        max_bytes=10_000,
        default_agent_id=AGENT,
    )
    assert isinstance(here, Append) and isinstance(there, Append)
    assert here.envelope.event_id != there.envelope.event_id


def test_a_retell_body_is_the_webhooks_event_kept_as_written() -> None:
    """Parsed by the webhook's parser, wrapped by the webhook's rule: same payload, key and
    correlation; stored as written (legacy ``data`` included); the event id is derived from
    the MessageId, so a redelivery keeps it."""
    for wrapper in ("call", "data"):
        body = orjson.dumps({"event": "call_ended", wrapper: retell_call("call_ended")})
        decision = decided(message(body, "m-7"), InboundKind.RETELL_EVENT)
        assert isinstance(decision, Append)
        parsed = parse_retell_webhook(body)
        assert isinstance(parsed, Accepted)
        webhook = webhook_event(parsed, source="retell-webhook")
        envelope = decision.envelope
        assert isinstance(envelope.payload, RetellWebhook)
        assert envelope.payload == webhook.payload
        assert envelope.key == webhook.key == REF
        assert envelope.correlation_id == webhook.correlation_id
        assert envelope.payload.dedupe_key() == parsed.payload.dedupe_key()
        assert decision.as_written == parsed.as_written
        assert envelope.event_id == derived_event_id("retell.call_ended", "sqs:legacy-calls", "m-7")


def test_a_body_that_does_not_parse_is_quarantined_with_the_messages_attributes() -> None:
    """Not JSON, or not the kind's shape: quarantine with the raw bytes, a reason naming the
    fields (never their values), and the message's id and attributes (binary as base64)."""
    attributes = {
        "origin": {"DataType": "String", "StringValue": "crm"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    for kind, body in (
        (InboundKind.CALL_REQUEST, b"not json"),
        (InboundKind.CALL_REQUEST, orjson.dumps({"to_number": "555-0199", "from_number": CLINIC})),
        (InboundKind.RETELL_EVENT, orjson.dumps({"event": "call_ended"})),
        (InboundKind.RETELL_EVENT, b"[1, 2]"),
    ):
        decision = decided(message(body, "m-9", **attributes), kind)
        assert isinstance(decision, Quarantine), (kind, body)
        assert decision.raw == body
        assert decision.source == "sqs:legacy-calls"
        assert decision.reason
        assert "555-0199" not in decision.reason
        headers = dict(decision.headers)
        assert headers[HEADER_MESSAGE_ID] == b"m-9"
        saved = orjson.loads(headers[HEADER_ATTRIBUTES])
        assert saved["MessageId"] == "m-9"
        assert saved["Attributes"]["SentTimestamp"] == "1714608475945"
        assert saved["MessageAttributes"]["origin"]["StringValue"] == "crm"
        blob = saved["MessageAttributes"]["blob"]["BinaryValue"]
        assert base64.b64decode(blob) == b"\x00\xff"


def test_a_body_larger_than_the_api_takes_is_refused_not_quarantined() -> None:
    """Over the kind's limit by one byte: refused, with the id, the size and the limit."""
    body = REQUEST.decode()
    decision = decided(message(body, "m-big"), InboundKind.CALL_REQUEST, max_bytes=len(body) - 1)
    assert isinstance(decision, Refuse)
    assert "m-big" in decision.reason
    assert f"{len(body)} bytes" in decision.reason
    assert f"{len(body) - 1} bytes a call-request may have" in decision.reason
    assert isinstance(decided(message(body), InboundKind.CALL_REQUEST, max_bytes=len(body)), Append)


def test_the_body_limits_are_the_apis() -> None:
    api = ApiSettings(max_body_bytes=1_000, webhook_max_body_bytes=9_000)
    assert body_limit(InboundKind.CALL_REQUEST, api) == 1_000
    assert body_limit(InboundKind.RETELL_EVENT, api) == 9_000


def test_a_message_from_sqs_keeps_its_parts() -> None:
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "b"}},
    }
    parsed = SqsMessage.from_sqs(raw)
    assert parsed.message_id == "m-1"
    assert parsed.receipt_handle == "rh"
    assert parsed.attributes == {"ApproximateReceiveCount": "2"}
    assert parsed.message_attributes["a"]["StringValue"] == "b"
    assert SqsMessage.from_sqs({"MessageId": "m", "ReceiptHandle": "r"}).body == ""
