"""Old events are read through upcasters, never rewritten: Retell's legacy `data` key."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ringlog.errors import UnknownEventType
from ringlog.schemas import REGISTRY, decode
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
    assert payload.call.transcript_object is not None
    assert payload.call.transcript_object[1].content == "I want a flu shot."
    dumped = payload.model_dump()
    assert "data" not in dumped
    assert dumped["call"]["opt_out_sensitive_data_storage"] is False


def test_every_retell_event_type_has_the_legacy_upcaster() -> None:
    """Each webhook event type can read its v1 (legacy `data`) form."""
    for model in WEBHOOK_EVENTS.values():
        assert REGISTRY.versions(model.event_type) == [1, 2]
        assert REGISTRY.can_upcast(model.event_type, 1)


def test_a_version_without_a_path_is_refused() -> None:
    """A version below 1, or a type with no upcaster, raises UnknownEventType."""
    with pytest.raises(UnknownEventType):
        REGISTRY.upcast("call.requested", 0, {})
    assert not REGISTRY.can_upcast("call.requested", 0)
