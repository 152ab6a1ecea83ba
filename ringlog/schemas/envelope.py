"""The envelope every event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny
from uuid_utils.compat import uuid7

from ringlog.schemas.base import EventModel


def new_event_id() -> uuid.UUID:
    """A fresh UUIDv7 (time-ordered), as a plain :class:`uuid.UUID`."""
    return uuid7()


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One event on the log: identity, type and version, key, times, lineage and payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    type: str
    schema_version: int
    key: str
    occurred_at: datetime
    recorded_at: datetime
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
        """Wrap ``payload``: type, version and key come from it, times default to now (UTC)."""
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
