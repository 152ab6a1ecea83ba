"""Bytes on the wire: envelopes as JSON (orjson), type and version also in Kafka headers."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Any

import msgspec
import orjson

from ringlog.errors import DecodeError, InvalidEvent, UnknownEventType
from ringlog.schemas.base import EventModel
from ringlog.schemas.envelope import Envelope, in_utc
from ringlog.schemas.registry import REGISTRY, Registry
from ringlog.schemas.retell import AsSent

#: Kafka header with the event type (``call.requested`` …), UTF-8.
HEADER_TYPE = "ringlog-type"
#: Kafka header with the schema version the body was written under, as decimal ASCII.
HEADER_VERSION = "ringlog-version"
#: Kafka header with the event id (canonical UUID text).
HEADER_EVENT_ID = "ringlog-event-id"

#: A payload as it arrived, with the schema version it was written under: the exact bytes of a
#: JSON object (embedded in the envelope unchanged), or a parsed object to serialise.
AsWritten = tuple[int, bytes | dict[str, Any]]

_REQUIRED = ("event_id", "type", "schema_version", "key", "occurred_at", "recorded_at", "source")


def encode(envelope: Envelope, *, as_written: AsWritten | None = None) -> bytes:
    """Serialise an envelope to compact JSON bytes (unknown Retell fields kept).

    Envelope times are written in UTC (``+00:00``), whatever zone they were given in.
    Every payload field is written, defaults included, except for Retell's models, which
    write back exactly the fields Retell sent. ``as_written`` = ``(version, payload)`` stores
    an input exactly as it arrived, under the schema version it was written in (a Retell body,
    the legacy ``data`` one included), while ``envelope`` carries the validated current model;
    readers validate it and upcast it when the version is older. Bytes are written as they
    are: the caller vouches that they are one JSON object (orjson parsed them).

    Events are not validated when built, so the bytes are read back through the decoder
    before they are returned: an event that breaks its schema raises :class:`InvalidEvent`
    and never reaches the log (an ``as_written`` body was validated when it arrived).
    """
    version, written = as_written or (envelope.schema_version, envelope.payload.to_wire())
    payload = orjson.Fragment(written) if isinstance(written, bytes) else written
    occurred_at, recorded_at = envelope.occurred_at, envelope.recorded_at
    if occurred_at.tzinfo is not UTC:  # Envelope.new already gave UTC; decoded ones need a look
        occurred_at = in_utc(occurred_at)
    if recorded_at.tzinfo is not UTC:
        recorded_at = in_utc(recorded_at)
    raw = orjson.dumps(
        {
            "event_id": envelope.event_id,
            "type": envelope.type,
            "schema_version": version,
            "key": envelope.key,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at,
            "source": envelope.source,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
            "payload": payload,
        }
    )
    if as_written is None:
        model = type(envelope.payload)
        try:
            (_DECODERS.get(model) or _decoder(model))(raw)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(f"{envelope.type}: {exc}") from None
    return raw


def headers(envelope: Envelope, *, version: int | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers that let a consumer route a record without decoding its body.

    ``version`` overrides the envelope's version when the body is written ``as_written``.
    """
    return [
        (HEADER_TYPE, envelope.type.encode()),
        (HEADER_VERSION, str(version or envelope.schema_version).encode()),
        (HEADER_EVENT_ID, str(envelope.event_id).encode()),
    ]


def decode(
    raw: bytes, registry: Registry = REGISTRY, *, written_as: tuple[str, int] | None = None
) -> Envelope:
    """Parse one record, upcast its payload to the current version and validate it.

    The returned envelope carries the current model and ``schema_version``. Raises
    :class:`UnknownEventType` for a ``(type, version)`` nothing can read, and
    :class:`DecodeError` for anything else wrong (not JSON, not an object, a missing envelope
    field, an invalid payload); both carry ``raw`` and a readable ``reason``.

    ``written_as`` is the ``(type, version)`` the record's headers name (:func:`written_as`).
    When it is the current version, the body is validated in one pass against that model
    (``Envelope[Model]``, JSON parsed by msgspec); the result is kept only if the body names
    the same type and version. Anything else takes the general path, which also words errors
    and reads Retell's bodies leniently (``"3"`` for an int), as they are stored as sent.
    """
    if written_as is not None:
        # the fast path, inline: it runs for every record a processor reads
        event_type, version = written_as
        model = registry.current_model(event_type, version)
        if model is not None:  # else an older version (upcast) or an unknown type
            try:
                envelope = (_DECODERS.get(model) or _decoder(model))(raw)
            except msgspec.DecodeError:  # ValidationError included: the general path words it
                pass
            else:
                if envelope.type == event_type and envelope.schema_version == version:
                    return envelope  # else headers and body disagree: the body decides
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}", raw) from None
    if not isinstance(data, dict):
        raise DecodeError(f"envelope must be a JSON object, got {type(data).__name__}", raw)
    try:
        event_type, version, payload = data["type"], data["schema_version"], data["payload"]
    except KeyError:
        missing = [f for f in (*_REQUIRED, "payload") if f not in data]
        raise DecodeError(f"envelope lacks {', '.join(missing)}", raw) from None
    if not isinstance(event_type, str):
        raise DecodeError("envelope type must be a string", raw)
    if type(version) is not int:
        raise DecodeError(f"envelope schema_version must be an integer, not {version!r}", raw)
    if not isinstance(payload, dict):
        raise DecodeError("envelope payload must be a JSON object", raw)
    try:
        model = registry.model_for(event_type, version)
    except UnknownEventType:
        model = None
    try:
        if model is None:
            version, payload = registry.upcast(event_type, version, payload)
            model = registry.model_for(event_type, version)
            data["schema_version"] = version
        head = msgspec.convert(data, _Loose)
        if issubclass(model, AsSent):
            body: EventModel = model.from_body(payload)  # read leniently, kept as sent
        else:
            body = msgspec.convert(payload, model)
        return msgspec.structs.replace(head, payload=body)
    except UnknownEventType as exc:
        raise UnknownEventType(exc.event_type, exc.version, raw) from None
    except msgspec.ValidationError as exc:
        missing = [f for f in _REQUIRED if f not in data]
        reason = f"envelope lacks {', '.join(missing)}" if missing else invalid_reason(exc)
        raise DecodeError(f"invalid {event_type} v{version}: {reason}", raw) from None
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        # an upcaster met an old payload it cannot read
        raise DecodeError(f"cannot upcast {event_type} v{version}: {exc!r}", raw) from None


_AT = re.compile(r"(?P<problem>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")


def invalid_reason(exc: msgspec.ValidationError) -> str:
    """A validation error as ``path: problem`` (``call.call_id: field required``): the field
    at fault and what is wrong with it, never its value (msgspec's messages hold none)."""
    said = _AT.fullmatch(str(exc))
    problem, path = (said["problem"], said["path"] or "") if said else (str(exc), "")
    missing = _MISSING.fullmatch(problem)
    if missing:
        path, problem = ".".join(p for p in (path, missing["field"]) if p), "field required"
    return f"{path}: {problem}" if path else problem


def written_as(record_headers: Iterable[tuple[str, bytes]]) -> tuple[str, int] | None:
    """The ``(type, version)`` a record's headers name, or ``None`` when either is missing or
    unreadable (the body then decides)."""
    event_type = version = None
    for name, value in record_headers:
        if name == HEADER_TYPE:
            event_type = value
        elif name == HEADER_VERSION:
            version = value
    return written_as_named(event_type, version)


@functools.lru_cache(maxsize=1024)
def written_as_named(event_type: bytes | None, version: bytes | None) -> tuple[str, int] | None:
    """:func:`written_as` of the two header values (a reader that reads the headers in a pass
    of its own); remembered, as a log holds few of them."""
    if event_type is None or version is None or not version.isdigit():
        return None
    try:
        return event_type.decode(), int(version)
    except UnicodeDecodeError:
        return None


#: The envelope with its payload as parsed (the general path checks the envelope alone).
_Loose = Envelope[Any]


#: per current model, the decoder of its records (``Envelope[Model]`` in one strict pass; a
#: Retell payload keeps the record, its body as sent), built on first use
_DECODERS: dict[type[EventModel], Callable[[bytes], Envelope]] = {}


def _decoder(model: type[EventModel]) -> Callable[[bytes], Envelope]:
    decode = _DECODERS.get(model)
    if decode is None:
        typed: Callable[[bytes], Envelope] = msgspec.json.Decoder(Envelope[model]).decode  # type: ignore[valid-type]
        if issubclass(model, AsSent):

            def decode(raw: bytes) -> Envelope:
                envelope = typed(raw)
                envelope.payload.keep_record(raw)  # type: ignore[attr-defined]
                return envelope

        else:
            decode = typed
        _DECODERS[model] = decode
    return decode
