"""Request and response bodies of the business task API (``/v1/tasks``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ringlog.schemas import PhoneNumber
from ringlog.tasks.fields import TaskFields

#: A task id: 1-128 characters, letters, digits and ``. _ : -``, starting with a letter or digit.
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN)]
Actor = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=4000)]


def _in_the_future(value: datetime) -> datetime:
    if value <= datetime.now(UTC):
        raise ValueError("scheduled_at must be in the future")
    return value.astimezone(UTC)


class FieldWritebackIn(BaseModel):
    """Set named fields of a task; fields not named keep their value, ``null`` clears one."""

    model_config = ConfigDict(extra="forbid")

    fields: TaskFields = Field(description="The fields to set; only names on the allow-list.")
    actor: Actor | None = Field(None, description="Who made the change (a staff id).")


class RescheduleIn(BaseModel):
    """Move the task's call to a new time."""

    model_config = ConfigDict(extra="forbid")

    scheduled_at: Annotated[AwareDatetime, AfterValidator(_in_the_future)] = Field(
        description="The new time; timezone-aware and in the future (stored in UTC)."
    )
    call_ref: Ref | None = Field(None, description="The call to move; default: the task's.")
    actor: Actor | None = None


class DeleteIn(BaseModel):
    """Why a task is deleted (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: LongText | None = None
    actor: Actor | None = None


class IncomingCallIn(BaseModel):
    """An incoming call recorded as a task."""

    model_config = ConfigDict(extra="forbid")

    task_id: TaskId | None = Field(None, description="The task's id; generated when absent.")
    from_number: PhoneNumber = Field(description="The caller, E.164 (+15551234567).")
    to_number: PhoneNumber = Field(description="The number called, E.164.")
    patient_ref: Ref | None = None
    notes: LongText | None = None
    actor: Actor | None = None


class TaskAccepted(BaseModel):
    """The task event is durably on the log."""

    task_id: str
    event_id: str
