"""The consumer's per-record decode (headers' type and version, one cached validator per model)
keeps what decoding promises: typed payloads, upcasts, errors captured with the raw bytes."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from ringlog.errors import DecodeError
from ringlog.schemas import REGISTRY, Envelope, EventModel, RetellCallEnded, encode, headers
from ringlog.streams.consumer import to_log_record
from tests.support.examples import example_events

EXAMPLES = example_events()
LEGACY = (Path(__file__).parent / "fixtures" / "retell_legacy_call_ended.json").read_bytes()


def consumed(value: bytes, record_headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    """A record as aiokafka hands it over (its headers a tuple)."""
    return ConsumerRecord(
        "calls",
        2,
        41,
        1_700_000_000_000,
        0,
        b"k",
        value,
        None,
        1,
        len(value),
        tuple(record_headers),
    )


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.event_type)
def test_a_record_reads_as_the_envelope_written_with_its_typed_payload(event: EventModel) -> None:
    envelope = Envelope.new(event, source="test", correlation_id="c-1")
    msg = consumed(encode(envelope), headers(envelope))
    for _ in range(2):  # the validator built on first use, then reused
        record = to_log_record(msg)
        assert record.error is None
        assert record.envelope == envelope
        assert type(record.envelope.payload) is type(event)
    assert msgspec.structs.astuple(record)[:7] == (
        "calls", 2, 41, 1_700_000_000_000, b"k", msg.value, msg.headers,
    )  # fmt: skip
    assert record.headers is msg.headers  # not copied


def test_a_record_that_does_not_decode_comes_back_with_its_error_and_bytes() -> None:
    envelope = orjson.loads(encode(Envelope.new(EXAMPLES[0], source="t")))
    value = orjson.dumps(envelope | {"payload": {"call_ref": "c"}})
    record = to_log_record(consumed(value, [("ringlog-type", b"call.requested")]))
    typed = to_log_record(
        consumed(value, [("ringlog-type", b"call.requested"), ("ringlog-version", b"1")])
    )
    for r in (record, typed):
        assert r.envelope is None
        assert isinstance(r.error, DecodeError)
        assert r.value == r.error.raw == value
        assert "invalid call.requested v1" in r.error.reason
    assert to_log_record(consumed(b"not json", [])).error is not None


def test_an_older_version_named_in_the_headers_is_upcast() -> None:
    body = orjson.loads(LEGACY)
    _, upcast = REGISTRY.upcast("retell.call_ended", 1, body)
    envelope = Envelope.new(RetellCallEnded.from_body(upcast), source="ingest")
    value = encode(envelope, as_written=(1, body))
    record = to_log_record(consumed(value, headers(envelope, version=1)))
    assert record.error is None
    assert record.envelope == envelope
    assert record.envelope.schema_version == 2


def test_current_model_is_model_for_without_raising() -> None:
    model = type(EXAMPLES[0])
    assert REGISTRY.current_model(model.event_type, model.schema_version) is model
    assert REGISTRY.model_for(model.event_type, model.schema_version) is model
    assert REGISTRY.current_model(model.event_type, model.schema_version + 1) is None
    assert REGISTRY.current_model("retell.call_ended", 1) is None
    assert REGISTRY.current_model("no.such.type", 1) is None
