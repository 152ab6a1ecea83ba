"""The envelope every event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Generic

import msgspec
from typing_extensions import TypeVar
from uuid_utils.compat import uuid7

from ringlog.schemas.base import EventModel


def new_event_id() -> uuid.UUID:
    """A fresh UUIDv7 (time-ordered), as a plain :class:`uuid.UUID`."""
    return uuid7()


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


_ZERO = timedelta(0)

#: A timezone-aware datetime (a naive one is refused when decoding).
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]

#: the payload's model; ``Envelope`` alone means any event
P = TypeVar("P", bound=EventModel, default=EventModel)


def in_utc(value: datetime) -> datetime:
    """``value`` as the same instant in UTC (unchanged when already at offset zero).

    Raises ``ValueError`` for a naive datetime: its instant is unknown.
    """
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no timezone")
    return value if offset == _ZERO else value.astimezone(UTC)


class Envelope(
    msgspec.Struct, Generic[P], frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False
):
    """One event on the log: identity, type and version, key, times, lineage and payload.

    ``occurred_at`` is when it happened in the world, ``recorded_at`` when ringlog wrote it;
    both must be timezone-aware (naive ones are refused when decoding). :meth:`new` and the
    encoder put them in UTC; decoding does not convert, to keep it cheap. ``correlation_id``
    names the call (or flow) the event belongs to and ``causation_id`` the event that caused it.
    Like the payloads, an envelope is validated when decoded, not when constructed.
    """

    event_id: uuid.UUID = msgspec.field(default_factory=new_event_id)
    type: str
    schema_version: int  # strict, as the general decode path: 1.0 or true is not a version
    key: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    source: str
    correlation_id: str | None = None
    causation_id: uuid.UUID | None = None
    payload: P

    @classmethod
    def new(
        cls,
        payload: EventModel,
        *,
        source: str,
        correlation_id: str | None = None,
        causation_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        key: str | None = None,
    ) -> Envelope:
        """Wrap ``payload``: type, version and key come from it, times default to now (UTC).

        ``occurred_at`` must be timezone-aware and is stored in UTC (``ValueError`` if naive).
        ``key`` overrides ``payload.partition_key()``; ``event_id`` overrides the fresh UUIDv7
        (pass a derived id for events that must keep one id across replays).
        """
        now = utc_now()
        return Envelope(
            event_id=event_id or new_event_id(),
            type=payload.event_type,
            schema_version=payload.schema_version,
            key=key if key is not None else payload.partition_key(),
            occurred_at=in_utc(occurred_at) if occurred_at is not None else now,
            recorded_at=now,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            payload=payload,
        )
