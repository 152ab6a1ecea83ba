"""Bytes on the wire: envelopes as JSON (orjson), type and version also in Kafka headers."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from ringlog.errors import DecodeError, UnknownEventType
from ringlog.schemas.envelope import Envelope
from ringlog.schemas.registry import REGISTRY, Registry

HEADER_TYPE = "ringlog-type"
HEADER_VERSION = "ringlog-version"
HEADER_EVENT_ID = "ringlog-event-id"

#: A payload as it arrived, with the schema version it was written under.
AsWritten = tuple[int, dict[str, Any]]

_ENVELOPE_FIELDS = ("event_id", "type", "schema_version", "key", "occurred_at", "recorded_at")


def encode(envelope: Envelope, *, as_written: AsWritten | None = None) -> bytes:
    """Serialise an envelope to compact JSON bytes (UTC times, unknown Retell fields kept).

    ``as_written`` = ``(version, payload)`` stores an input exactly as it arrived under an older
    schema version (Retell's legacy ``data`` body) while ``envelope`` carries the validated
    current model; readers upcast it back to the current version.
    """
    version, payload = as_written or (envelope.schema_version, envelope.payload.to_wire())
    return orjson.dumps(
        {
            "event_id": envelope.event_id,
            "type": envelope.type,
            "schema_version": version,
            "key": envelope.key,
            "occurred_at": envelope.occurred_at,
            "recorded_at": envelope.recorded_at,
            "source": envelope.source,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
            "payload": payload,
        }
    )


def headers(envelope: Envelope, *, version: int | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers that let a consumer route a record without decoding its body."""
    return [
        (HEADER_TYPE, envelope.type.encode()),
        (HEADER_VERSION, str(version or envelope.schema_version).encode()),
        (HEADER_EVENT_ID, str(envelope.event_id).encode()),
    ]


def decode(raw: bytes, registry: Registry = REGISTRY) -> Envelope:
    """Parse, upcast and validate one record; raise :class:`DecodeError` carrying ``raw``."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}", raw) from None
    if not isinstance(data, dict):
        raise DecodeError(f"envelope must be a JSON object, got {type(data).__name__}", raw)
    missing = [f for f in (*_ENVELOPE_FIELDS, "payload") if f not in data]
    if missing:
        raise DecodeError(f"envelope lacks {', '.join(missing)}", raw)
    event_type, version, payload = data["type"], data["schema_version"], data["payload"]
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise DecodeError("envelope type must be a string and schema_version an integer", raw)
    if not isinstance(payload, dict):
        raise DecodeError("envelope payload must be a JSON object", raw)
    try:
        version, payload = registry.upcast(event_type, version, payload)
        model = registry.model_for(event_type, version)
        data["payload"] = model.model_validate(payload)
        data["schema_version"] = version
        return Envelope.model_validate(data)
    except UnknownEventType as exc:
        raise UnknownEventType(exc.event_type, exc.version, raw) from None
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"invalid {event_type} v{version}: {_short(exc)}", raw) from None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)
