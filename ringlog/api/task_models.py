"""Request and response bodies of the business task API (``/v1/tasks``).

Texts are bounded and clean as in :mod:`ringlog.api.models`: single-line values refuse every
control character, free text (notes, reasons) keeps tabs and line breaks only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from ringlog.api.models import (
    LINE_PATTERN,
    CallRef,
    FreeText,
    ShortText,
    clean_text,
    single_line,
)
from ringlog.schemas import PhoneNumber
from ringlog.tasks.fields import TaskFields

#: A task id: 1-128 characters, letters, digits and ``. _ : -``, starting with a letter or digit.
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN)]
Actor = ShortText
Ref = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(single_line),
    Field(json_schema_extra={"pattern": LINE_PATTERN}),
]
LongText = FreeText
#: Fields written back as free text; every other text field is single-line.
_FREE_TEXT_FIELDS = frozenset({"notes"})


def _in_the_future(value: datetime) -> datetime:
    if value <= datetime.now(UTC):
        raise ValueError("scheduled_at must be in the future")
    return value.astimezone(UTC)


class FieldWritebackIn(BaseModel):
    """Set named fields of a task; fields not named keep their value, ``null`` clears one."""

    model_config = ConfigDict(extra="forbid")

    fields: TaskFields = Field(description="The fields to set; only names on the allow-list.")
    actor: Actor | None = Field(None, description="Who made the change (a staff id).")

    @field_validator("fields")
    @classmethod
    def _clean_texts(cls, fields: TaskFields) -> TaskFields:
        """No control characters in a text field (``notes`` may hold tabs and line breaks)."""
        for name, value in fields.values().items():
            if isinstance(value, str):
                check = clean_text if name in _FREE_TEXT_FIELDS else single_line
                try:
                    check(value)
                except ValueError as exc:
                    raise ValueError(f"{name} {exc}") from None
        return fields


class RescheduleIn(BaseModel):
    """Move the task's call to a new time."""

    model_config = ConfigDict(extra="forbid")

    scheduled_at: Annotated[AwareDatetime, AfterValidator(_in_the_future)] = Field(
        description="The new time; timezone-aware and in the future (stored in UTC)."
    )
    call_ref: CallRef | None = Field(None, description="The call to move; default: the task's.")
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
