"""The envelope every event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny
from uuid_utils.compat import uuid7

from ringlog.schemas.base import EventModel


def new_event_id() -> uuid.UUID:
    """A fresh UUIDv7 (time-ordered), as a plain :class:`uuid.UUID`."""
    return uuid7()


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


_ZERO = timedelta(0)


def _in_utc(value: datetime) -> datetime:
    return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


#: A timezone-aware instant, normalised to UTC (naive datetimes are refused).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Envelope(BaseModel):
    """One event on the log: identity, type and version, key, times, lineage and payload.

    ``occurred_at`` is when it happened in the world, ``recorded_at`` when ringlog wrote it;
    both are timezone-aware and normalised to UTC. ``correlation_id`` names the call (or flow)
    the event belongs to and ``causation_id`` the event that caused it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    type: str
    schema_version: int
    key: str
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    source: str
    correlation_id: str | None = None
    causation_id: uuid.UUID | None = None
    payload: SerializeAsAny[EventModel]

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

        ``key`` overrides ``payload.partition_key()``; ``event_id`` overrides the fresh UUIDv7
        (pass a derived id for events that must keep one id across replays).
        """
        now = utc_now()
        return cls(
            event_id=event_id or new_event_id(),
            type=payload.event_type,
            schema_version=payload.schema_version,
            key=key if key is not None else payload.partition_key(),
            occurred_at=occurred_at or now,
            recorded_at=now,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            payload=payload,
        )
