"""Decoding with the headers' type and version (one validation pass) ends where the general
path ends: equal envelopes, the same bytes re-encoded, the same errors, the body deciding."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given

from ringlog.errors import DecodeError
from ringlog.schemas import (
    Envelope,
    EventModel,
    RetellCallEnded,
    decode,
    encode,
    headers,
    written_as,
)
from tests.support.examples import example_events
from tests.support.strategies import EXTRA_CALL_FIELDS, call_ended_with

EXAMPLES = example_events()


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.event_type)
def test_the_typed_path_reads_every_event_as_the_general_path_does(event: EventModel) -> None:
    envelope = Envelope.new(event, source="test", correlation_id="c-1")
    raw = encode(envelope)
    hint = written_as(headers(envelope))
    assert hint == (event.event_type, event.schema_version)
    typed = decode(raw, written_as=hint)
    assert typed == decode(raw) == envelope
    assert type(typed.payload) is type(event)
    assert encode(typed) == raw


@given(extra=EXTRA_CALL_FIELDS)
def test_unknown_retell_fields_read_the_same_on_both_paths(extra: dict[str, Any]) -> None:
    """Whatever JSON Retell adds parses to the same values and is written back exactly."""
    body = call_ended_with(extra)
    envelope = Envelope.new(RetellCallEnded.from_body(body), source="hypothesis")
    raw = encode(envelope)
    typed = decode(raw, written_as=written_as(headers(envelope)))
    assert typed == decode(raw)
    assert encode(typed) == raw


def test_the_body_decides_when_the_headers_name_another_type() -> None:
    """Headers that disagree with the body (a foreign producer, a bug) do not change the read."""
    request, other = EXAMPLES[0], next(e for e in EXAMPLES if e.event_type != "call.requested")
    envelope = Envelope.new(request, source="test")
    raw = encode(envelope)
    lying = (other.event_type, other.schema_version)
    assert decode(raw, written_as=lying) == envelope
    assert type(decode(raw, written_as=lying).payload) is type(request)


def test_an_invalid_body_fails_with_the_general_paths_reason() -> None:
    envelope = orjson.loads(encode(Envelope.new(EXAMPLES[0], source="t")))
    raw = orjson.dumps(envelope | {"payload": {"call_ref": "c"}})
    hint = ("call.requested", 1)
    with pytest.raises(DecodeError) as typed:
        decode(raw, written_as=hint)
    with pytest.raises(DecodeError) as general:
        decode(raw)
    assert typed.value.reason == general.value.reason
    assert typed.value.raw == raw
    assert "invalid call.requested v1" in typed.value.reason


@pytest.mark.parametrize(
    ("record_headers", "expected"),
    [
        ([("ringlog-type", b"call.requested"), ("ringlog-version", b"1")], ("call.requested", 1)),
        ([("ringlog-version", b"2"), ("x", b"y"), ("ringlog-type", b"a.b")], ("a.b", 2)),
        ([("ringlog-type", b"call.requested")], None),
        ([("ringlog-version", b"1")], None),
        ([("ringlog-type", b"call.requested"), ("ringlog-version", b"one")], None),
        ([("ringlog-type", b"\xff\xfe"), ("ringlog-version", b"1")], None),
        ([], None),
    ],
)
def test_written_as_reads_type_and_version_or_nothing(
    record_headers: list[tuple[str, bytes]], expected: tuple[str, int] | None
) -> None:
    assert written_as(record_headers) == expected


@pytest.mark.parametrize("version", [1.0, True, "1"])
def test_a_version_that_is_not_an_integer_is_refused_on_both_paths(version: object) -> None:
    envelope = orjson.loads(encode(Envelope.new(EXAMPLES[0], source="t")))
    raw = orjson.dumps(envelope | {"schema_version": version})
    for hint in (("call.requested", 1), None):
        with pytest.raises(DecodeError, match="schema_version"):
            decode(raw, written_as=hint)
