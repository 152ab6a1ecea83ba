"""Old events are read through upcasters, never rewritten: Retell's legacy `data` key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from ringlog.errors import DecodeError, UnknownEventType
from ringlog.schemas import (
    REGISTRY,
    Envelope,
    EventModel,
    Registry,
    decode,
    encode,
    headers,
    written_as,
)
from ringlog.schemas.retell import WEBHOOK_EVENTS, RetellCallEnded

LEGACY = (Path(__file__).parent / "fixtures" / "retell_legacy_call_ended.json").read_bytes()


def legacy_envelope(body: bytes, event_type: str = "retell.call_ended") -> bytes:
    """A stored v1 envelope around a legacy webhook body, as ingest wrote it."""
    return orjson.dumps(
        {
            "event_id": "01a206de-b5a1-7cff-890d-4a7d31f21111",
            "type": event_type,
            "schema_version": 1,
            "key": "retell:Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
            "occurred_at": "2024-05-02T00:08:11.736000+00:00",
            "recorded_at": "2024-05-02T00:08:11.901000+00:00",
            "source": "ingest",
            "correlation_id": None,
            "causation_id": None,
            "payload": orjson.loads(body),
        }
    )


def test_legacy_data_key_is_read_as_call() -> None:
    """A stored legacy body with `data` decodes to the current version with `call` filled."""
    envelope = decode(legacy_envelope(LEGACY))
    assert envelope.schema_version == RetellCallEnded.schema_version == 2
    payload = envelope.payload
    assert isinstance(payload, RetellCallEnded)
    assert payload.call.call_id == "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6"
    assert payload.call.disconnection_reason == "user_hangup"
    assert payload.call.duration_ms == 15791
    assert payload.call.transcript_object is not None
    assert payload.call.transcript_object[1].content == "I want a flu shot."
    dumped = payload.to_wire()
    assert "data" not in dumped
    assert dumped["call"] == orjson.loads(LEGACY)["data"]  # every field kept, unknown ones too


@pytest.mark.parametrize("name", sorted(WEBHOOK_EVENTS))
def test_every_retell_event_type_reads_its_legacy_form(name: str) -> None:
    """Each webhook event type is readable at v1 (legacy `data`) and lists versions 1 and 2."""
    model = WEBHOOK_EVENTS[name]
    body = orjson.loads(LEGACY) | {"event": name}
    envelope = decode(legacy_envelope(orjson.dumps(body), model.event_type))
    assert type(envelope.payload) is model
    assert REGISTRY.versions(model.event_type) == [1, 2]
    assert REGISTRY.can_upcast(model.event_type, 1)


def test_a_body_kept_as_written_is_read_back_as_current() -> None:
    """Ingest stores a legacy body untouched (v1 on the wire and in headers); readers get v2."""
    body = orjson.loads(LEGACY)
    _, upcast = REGISTRY.upcast("retell.call_ended", 1, body)
    envelope = Envelope.new(RetellCallEnded.from_body(upcast), source="ingest")
    raw = encode(envelope, as_written=(1, body))
    assert orjson.loads(raw)["payload"] == body
    assert orjson.loads(raw)["schema_version"] == 1
    assert dict(headers(envelope, version=1))["ringlog-version"] == b"1"
    assert decode(raw) == envelope
    # the headers' version (1) has no model: the typed path steps aside for the upcast
    assert decode(raw, written_as=written_as(headers(envelope, version=1))) == envelope
    assert body == orjson.loads(LEGACY)  # upcasting did not mutate the stored body


def test_a_version_without_a_path_is_refused() -> None:
    """A version below 1, above the current one, or with no upcaster raises UnknownEventType."""
    for version in (0, 2):
        with pytest.raises(UnknownEventType):
            REGISTRY.upcast("call.requested", version, {})
        assert not REGISTRY.can_upcast("call.requested", version)
    with pytest.raises(UnknownEventType):
        REGISTRY.upcast("no.such.type", 1, {})


class Thing(EventModel):
    """Version 3 of a made-up event: ``ref`` (v1 ``id``), ``count`` (added in v3)."""

    event_type: ClassVar[str] = "test.thing"
    schema_version: ClassVar[int] = 3
    topic: ClassVar[str] = "tasks"
    ref: str
    count: int

    def partition_key(self) -> str:
        """The ref."""
        return self.ref


def three_version_registry() -> Registry:
    """A registry where test.thing v1 → v2 renames a field and v2 → v3 adds one."""
    registry = Registry()
    registry.register(Thing)

    @registry.upcaster("test.thing", 1)
    def rename(payload: dict[str, Any]) -> dict[str, Any]:
        return {"ref": payload["id"]}

    @registry.upcaster("test.thing", 2)
    def add_count(payload: dict[str, Any]) -> dict[str, Any]:
        return payload | {"count": 0}

    return registry


def test_upcasters_chain_from_any_old_version_to_the_current_one() -> None:
    """v1 goes through both steps in order, v2 through one, v3 through none."""
    registry = three_version_registry()
    assert registry.upcast("test.thing", 1, {"id": "a"}) == (3, {"ref": "a", "count": 0})
    assert registry.upcast("test.thing", 2, {"ref": "a"}) == (3, {"ref": "a", "count": 0})
    assert registry.upcast("test.thing", 3, {"ref": "a", "count": 5}) == (
        3,
        {"ref": "a", "count": 5},
    )
    assert registry.versions("test.thing") == [1, 2, 3]


def test_decode_upcasts_with_the_given_registry() -> None:
    """decode applies the chain and reports the current version; a broken old body raises."""
    registry = three_version_registry()
    envelope = Envelope.new(Thing(ref="a", count=2), source="t")
    raw = encode(envelope, as_written=(1, {"id": "a"}))
    decoded = decode(raw, registry)
    assert (decoded.schema_version, decoded.payload) == (3, Thing(ref="a", count=0))
    bad = encode(envelope, as_written=(1, {"no_id": "a"}))
    with pytest.raises(DecodeError, match=r"cannot upcast test\.thing v1") as caught:
        decode(bad, registry)
    assert caught.value.raw == bad


def test_a_gap_in_the_chain_is_refused() -> None:
    """Without the v1 → v2 step, v1 cannot be read even though v2 → v3 exists."""
    registry = Registry()
    registry.register(Thing)
    registry.upcaster("test.thing", 2)(lambda p: p | {"count": 0})
    assert not registry.can_upcast("test.thing", 1)
    with pytest.raises(UnknownEventType) as caught:
        registry.upcast("test.thing", 1, {"id": "a"})
    assert caught.value.version == 1


def test_registration_mistakes_are_refused() -> None:
    """A type registered twice, a second upcaster for one step, or an unknown topic raise."""
    registry = three_version_registry()
    with pytest.raises(ValueError, match="twice"):
        registry.register(Thing)
    with pytest.raises(ValueError, match="twice"):
        registry.upcaster("test.thing", 1)(lambda p: p)

    class NoTopic(Thing):
        event_type: ClassVar[str] = "test.no_topic"
        topic: ClassVar[str] = "nowhere"

    with pytest.raises(ValueError, match="topic"):
        registry.register(NoTopic)


def test_every_current_model_partitions_on_its_topic_key() -> None:
    """Every registered model names one of the five topics and keeps its own version."""
    for model in REGISTRY.models():
        assert model.topic in {"calls", "dialog", "sessions", "abt", "tasks"}
        assert REGISTRY.model_for(model.event_type, model.schema_version) is model
        assert REGISTRY.current_version(model.event_type) == model.schema_version
