"""Envelopes encode to JSON bytes and decode back unchanged; bad bytes raise typed errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringlog.errors import DecodeError, UnknownEventType
from ringlog.schemas import (
    REGISTRY,
    Envelope,
    EventModel,
    RetellCallEnded,
    RetellCallStarted,
    RetellTranscriptUpdated,
    decode,
    dedupe_key,
    encode,
    headers,
)
from tests.support.examples import example_events, retell_call
from tests.support.strategies import EXTRA_CALL_FIELDS, call_ended_with

EXAMPLES = example_events()
REQUEST = EXAMPLES[0]
STARTED = next(e for e in EXAMPLES if isinstance(e, RetellCallStarted))


def test_every_registered_model_has_an_example() -> None:
    """The example set covers the registry, so round-trip tests cover every event type."""
    covered = {type(e) for e in EXAMPLES}
    missing = [m.event_type for m in REGISTRY.models() if m not in covered]
    assert missing == []


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.event_type)
def test_round_trip_is_lossless(event: EventModel) -> None:
    """encode → decode gives an equal envelope, and re-encoding gives the same bytes."""
    envelope = Envelope.new(event, source="test", correlation_id="c-1")
    raw = encode(envelope)
    decoded = decode(raw)
    assert decoded == envelope
    assert type(decoded.payload) is type(event)
    assert encode(decoded) == raw


def test_headers_carry_type_version_and_id() -> None:
    """A consumer can route on headers without decoding the body."""
    envelope = Envelope.new(REQUEST, source="test")
    assert dict(headers(envelope)) == {
        "ringlog-type": b"call.requested",
        "ringlog-version": b"1",
        "ringlog-event-id": str(envelope.event_id).encode(),
    }
    assert dict(headers(envelope, version=7))["ringlog-version"] == b"7"


def test_envelope_new_takes_type_version_and_key_from_the_payload() -> None:
    """Envelope.new fills type, version and key from the payload, and times in UTC."""
    envelope = Envelope.new(STARTED, source="ingest")
    assert (envelope.type, envelope.schema_version) == ("retell.call_started", 2)
    assert envelope.key == "call_01HZX3"  # the call ref Retell echoed in metadata
    assert envelope.event_id.version == 7
    assert envelope.occurred_at.utcoffset() == dt.timedelta(0)


def test_envelope_times_must_be_aware_and_are_written_in_utc() -> None:
    """A naive time is refused; a time in another zone is written as the same instant in UTC."""
    with pytest.raises(ValueError, match="naive"):
        Envelope.new(REQUEST, source="t", occurred_at=dt.datetime(2026, 1, 1, 12))
    envelope = Envelope.new(REQUEST, source="t")
    with pytest.raises(ValueError, match="naive"):
        encode(msgspec.structs.replace(envelope, recorded_at=dt.datetime(2026, 1, 1, 12)))
    naive = encode(envelope).replace(b"+00:00", b"", 1)
    with pytest.raises(DecodeError, match="timezone"):
        decode(naive)
    paris = dt.timezone(dt.timedelta(hours=1))
    at_one_in_paris = dt.datetime(2026, 1, 1, 13, tzinfo=paris)
    envelope = Envelope.new(REQUEST, source="t", occurred_at=at_one_in_paris)
    assert envelope.occurred_at.utcoffset() == dt.timedelta(0)
    assert envelope.occurred_at == at_one_in_paris
    direct = msgspec.structs.replace(envelope, occurred_at=at_one_in_paris)
    raw = encode(direct)
    assert b'"occurred_at":"2026-01-01T12:00:00+00:00"' in raw
    assert decode(raw) == direct


def test_unknown_retell_fields_survive_a_round_trip() -> None:
    """Fields Retell adds that ringlog does not model are kept through encode and decode."""
    call = retell_call("call_ended") | {"brand_new_field": {"nested": [1, 2.5, None]}}
    body = {"event": "call_ended", "call": call, "top_level_extra": "x"}
    envelope = Envelope.new(RetellCallEnded.from_body(body), source="test")
    decoded = decode(encode(envelope))
    payload = orjson.loads(encode(decoded))["payload"]
    assert payload == orjson.loads(orjson.dumps(body))  # exactly what Retell sent, nothing added


def _json(value: object) -> object:
    """``value`` as JSON gives it back (datetimes and UUIDs as strings)."""
    return orjson.loads(orjson.dumps(value))


def _enveloped(payload: object, event_type: str = "call.requested", version: int = 1) -> bytes:
    envelope = orjson.loads(encode(Envelope.new(REQUEST, source="t")))
    envelope |= {"type": event_type, "schema_version": version, "payload": payload}
    return orjson.dumps(envelope)


def _without(field: str) -> bytes:
    envelope = orjson.loads(encode(Envelope.new(REQUEST, source="t")))
    del envelope[field]
    return orjson.dumps(envelope)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00garbage", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"call.requested"', "must be a JSON object"),
        (b'{"type": "call.requested"}', "lacks event_id"),
        (_without("source"), "lacks source"),
        (_without("occurred_at"), "lacks occurred_at"),
        (_enveloped({"call_ref": "c"}), "invalid call.requested v1"),
        (_enveloped([1]), "payload must be a JSON object"),
        (_enveloped(_json(REQUEST.to_wire()), version=True), "must be an integer"),
        (_enveloped({"call_ref": "c"}, version=9), "no model registered"),
        (_enveloped({}, event_type="no.such.type"), "no model registered"),
        (_enveloped({"event": "call_ended"}, "retell.call_ended", 1), "cannot upcast"),
    ],
)
def test_decode_errors_carry_raw_bytes_and_reason(raw: bytes, reason: str) -> None:
    """Every kind of bad record raises DecodeError with the exact bytes and a readable reason."""
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert caught.value.raw == raw
    assert reason in caught.value.reason


def test_unknown_type_is_its_own_error_class() -> None:
    """An unregistered type is an UnknownEventType naming the type and version."""
    raw = _enveloped({}, event_type="no.such.type", version=3)
    with pytest.raises(UnknownEventType) as caught:
        decode(raw)
    assert (caught.value.event_type, caught.value.version, caught.value.raw) == (
        "no.such.type",
        3,
        raw,
    )


def test_payload_validation_names_the_field() -> None:
    """An invalid phone number is reported with the field it is in."""
    bad = _json(REQUEST.to_wire()) | {"to_number": "555-1234"}
    with pytest.raises(DecodeError, match="to_number"):
        decode(_enveloped(bad))


def test_dedupe_key_is_call_id_and_event() -> None:
    """A retried delivery has the same key; different events of one call do not."""
    ended = RetellCallEnded.from_body({"event": "call_ended", "call": retell_call("x")})
    again = RetellCallEnded.from_body({"event": "call_ended", "call": retell_call("x")})
    assert dedupe_key(ended) == dedupe_key(again) == f"{ended.call.call_id}:call_ended"
    assert dedupe_key(STARTED) != dedupe_key(ended)


def test_transcript_updates_differ_by_transcript_digest() -> None:
    """Each transcript update of one call gets its own key, a retry of one keeps it."""

    def update(transcript: str) -> RetellTranscriptUpdated:
        call = retell_call("transcript_updated") | {"transcript": transcript}
        return RetellTranscriptUpdated.from_body({"event": "transcript_updated", "call": call})

    first, second = update("Agent: Hello!"), update("Agent: Hello!\nUser: Hi")
    assert dedupe_key(first) == dedupe_key(update("Agent: Hello!"))
    assert dedupe_key(first) != dedupe_key(second)
    assert dedupe_key(first).startswith(f"{first.call.call_id}:transcript_updated:")


def test_transcript_digest_falls_back_to_the_transcript_object() -> None:
    """Updates that carry only transcript_object still get one key per transcript."""

    def update(*lines: str) -> RetellTranscriptUpdated:
        utterances = [{"role": "user", "content": line} for line in lines]
        call = {"call_id": "c1", "transcript_object": utterances}
        return RetellTranscriptUpdated.from_body({"event": "transcript_updated", "call": call})

    assert dedupe_key(update("Hi")) == dedupe_key(update("Hi"))
    assert dedupe_key(update("Hi")) != dedupe_key(update("Hi", "A flu shot, please."))


@given(
    metadata=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5),
    ref=st.text(min_size=1, max_size=64),
)
def test_any_call_request_round_trips(metadata: dict[str, str], ref: str) -> None:
    """Arbitrary unicode refs and metadata survive encode → decode unchanged."""
    event = msgspec.structs.replace(REQUEST, call_ref=ref, metadata=metadata)
    envelope = Envelope.new(event, source="hypothesis")
    assert decode(encode(envelope)) == envelope


@given(extra=EXTRA_CALL_FIELDS)
def test_any_unknown_retell_fields_round_trip(extra: dict[str, Any]) -> None:
    """Whatever JSON Retell adds to the call object is written back exactly, after decode too."""
    body = call_ended_with(extra)
    envelope = Envelope.new(RetellCallEnded.from_body(body), source="hypothesis")
    raw = encode(envelope)
    assert orjson.loads(raw)["payload"] == orjson.loads(orjson.dumps(body))
    assert encode(decode(raw)) == raw


@given(extra=EXTRA_CALL_FIELDS, indent=st.booleans())
def test_bytes_kept_as_written_are_embedded_unchanged(extra: dict[str, Any], indent: bool) -> None:
    """A body given as bytes is written verbatim and reads back as its parsed form would."""
    body = call_ended_with(extra)
    raw_body = orjson.dumps(body, option=orjson.OPT_INDENT_2 if indent else None)
    envelope = Envelope.new(RetellCallEnded.from_body(body), source="hypothesis")
    as_bytes = encode(envelope, as_written=(2, raw_body))
    assert b'"payload":' + raw_body + b"}" in as_bytes
    assert orjson.loads(as_bytes)["payload"] == orjson.loads(raw_body)
    as_dict = encode(envelope, as_written=(2, body))
    written = ("retell.call_ended", 2)
    assert decode(as_bytes) == decode(as_bytes, written_as=written) == decode(as_dict) == envelope


def test_a_missing_or_invalid_field_is_named_by_its_path_without_its_value() -> None:
    """The general path words a payload error as ``path: problem``, the value left out."""
    secret = "+14155550199"
    missing = _json(REQUEST.to_wire())
    del missing["agent_id"]  # type: ignore[attr-defined]
    with pytest.raises(DecodeError, match=r"invalid call.requested v1: agent_id: field required"):
        decode(_enveloped(missing))
    bad = _json(REQUEST.to_wire()) | {"to_number": secret + "x"}  # type: ignore[operator]
    with pytest.raises(DecodeError, match=r"to_number: Expected `str` matching") as caught:
        decode(_enveloped(bad))
    assert secret not in caught.value.reason
