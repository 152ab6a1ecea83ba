"""ABT (activity-based tracking) events (topic ``abt``, key: call ref).

Ids are deterministic — a function of the call ref and the activity — so a processor that
replays the log derives the same ids and downstream systems see no second "call completed".
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

import msgspec

from ringlog.schemas.base import EventModel, derived_event_id
from ringlog.schemas.registry import REGISTRY

AbtName = Literal["voice_call_initiated", "call_started", "call_completed"]


def abt_id_for(call_ref: str, name: str) -> uuid.UUID:
    """The one id the ABT event ``name`` of call ``call_ref`` ever has."""
    return derived_event_id("abt", call_ref, name)


@REGISTRY.register
class AbtEvent(EventModel, frozen=True, kw_only=True):
    """One tracked activity of a call."""

    topic: ClassVar[str] = "abt"
    event_type: ClassVar[str] = "abt.event"
    schema_version: ClassVar[int] = 1

    abt_id: uuid.UUID
    name: AbtName
    call_ref: str
    retell_call_id: str | None = None
    attributes: dict[str, str] = msgspec.field(default_factory=dict)

    def partition_key(self) -> str:
        """The call ref."""
        return self.call_ref
