"""Envelopes encode to JSON bytes and decode back unchanged; bad bytes raise typed errors."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringlog.errors import DecodeError, UnknownEventType
from ringlog.schemas import REGISTRY, Envelope, decode, encode, headers
from ringlog.schemas.retell import RetellCallEnded
from tests.support.examples import example_events, retell_call

EXAMPLES = example_events()


def test_every_registered_model_has_an_example() -> None:
    """The example set covers the registry, so round-trip tests cover every event type."""
    covered = {type(e) for e in EXAMPLES}
    missing = [m.event_type for m in REGISTRY.models() if m not in covered]
    assert not missing


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.event_type)
def test_round_trip_is_lossless(event: object) -> None:
    """encode → decode gives an equal envelope, and re-encoding gives the same bytes."""
    assert hasattr(event, "event_type")
    envelope = Envelope.new(event, source="test", correlation_id="c-1")  # type: ignore[arg-type]
    raw = encode(envelope)
    decoded = decode(raw)
    assert decoded == envelope
    assert encode(decoded) == raw


def test_headers_carry_type_version_and_id() -> None:
    """A consumer can route on headers without decoding the body."""
    envelope = Envelope.new(EXAMPLES[0], source="test")
    assert dict(headers(envelope)) == {
        "ringlog-type": b"call.requested",
        "ringlog-version": b"1",
        "ringlog-event-id": str(envelope.event_id).encode(),
    }


def test_unknown_retell_fields_survive_a_round_trip() -> None:
    """Fields Retell adds that ringlog does not model are kept byte for byte."""
    call = retell_call("call_ended") | {"brand_new_field": {"nested": [1, 2]}}
    body = {"event": "call_ended", "call": call, "top_level_extra": "x"}
    envelope = Envelope.new(RetellCallEnded.model_validate(body), source="test")
    payload = orjson.loads(encode(envelope))["payload"]
    assert payload["call"]["brand_new_field"] == {"nested": [1, 2]}
    assert payload["top_level_extra"] == "x"
    assert payload["call"]["opt_out_sensitive_data_storage"] is False


def _enveloped(payload: object, event_type: str = "call.requested", version: int = 1) -> bytes:
    envelope = orjson.loads(encode(Envelope.new(EXAMPLES[0], source="t")))
    envelope |= {"type": event_type, "schema_version": version, "payload": payload}
    return orjson.dumps(envelope)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00garbage", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"type": "call.requested"}', "lacks"),
        (_enveloped({"call_ref": "c"}), "invalid call.requested v1"),
        (_enveloped({"call_ref": "c"}, version=9), "no model registered"),
        (_enveloped({}, event_type="no.such.type"), "no model registered"),
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
    with pytest.raises(UnknownEventType) as caught:
        decode(_enveloped({}, event_type="no.such.type", version=3))
    assert (caught.value.event_type, caught.value.version) == ("no.such.type", 3)


def test_payload_validation_names_the_field() -> None:
    """An invalid phone number is reported with the field it is in."""
    bad = EXAMPLES[0].model_dump(mode="json") | {"to_number": "555-1234"}
    with pytest.raises(DecodeError, match="to_number"):
        decode(_enveloped(bad))


@given(
    metadata=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5),
    ref=st.text(min_size=1, max_size=64),
)
def test_any_call_request_round_trips(metadata: dict[str, str], ref: str) -> None:
    """Arbitrary unicode refs and metadata survive encode → decode unchanged."""
    event = EXAMPLES[0].model_copy(update={"call_ref": ref, "metadata": metadata})
    envelope = Envelope.new(event, source="hypothesis")
    assert decode(encode(envelope)) == envelope
