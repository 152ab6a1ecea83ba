"""Business tasks done by staff (topic ``tasks``, key: task id)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

import msgspec

from ringlog.schemas.base import EventModel, PhoneNumber
from ringlog.schemas.registry import REGISTRY

FieldValue = str | int | float | bool | None


class _TaskEvent(EventModel, frozen=True, kw_only=True):
    topic: ClassVar[str] = "tasks"
    schema_version: ClassVar[int] = 1

    task_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    actor: str | None = None

    def partition_key(self) -> str:
        """The task id."""
        return self.task_id


@REGISTRY.register
class TaskFieldWriteback(_TaskEvent, frozen=True, kw_only=True):
    """Named fields of a task were set by a business user."""

    event_type: ClassVar[str] = "task.field_writeback"
    fields: dict[str, FieldValue]


@REGISTRY.register
class TaskRescheduled(_TaskEvent, frozen=True, kw_only=True):
    """The task's call moves to a new time."""

    event_type: ClassVar[str] = "task.rescheduled"
    call_ref: str | None = None
    scheduled_at: datetime


@REGISTRY.register
class TaskDeleted(_TaskEvent, frozen=True, kw_only=True):
    """The task was deleted; its pending calls are cancelled, its history kept."""

    event_type: ClassVar[str] = "task.deleted"
    reason: str | None = None


@REGISTRY.register
class TaskIncomingCall(_TaskEvent, frozen=True, kw_only=True):
    """An incoming call was recorded as a task."""

    event_type: ClassVar[str] = "task.incoming_call"
    from_number: PhoneNumber
    to_number: PhoneNumber
    patient_ref: str | None = None
    notes: str | None = None
