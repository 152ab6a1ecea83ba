"""The fields a business user may write back on an outreach task, with their types and limits.

:class:`TaskFields` is the allow-list: one optional attribute per writable field. A writeback
names only the fields it sets; a field given as ``null`` is cleared. Names outside the list,
values of the wrong type or out of bounds, and an empty writeback are refused. Validated values
are plain JSON scalars (:data:`~ringlog.schemas.tasks.FieldValue`), as the event stores them:
dates become ``YYYY-MM-DD`` strings.

:func:`validate_fields` is the same check for callers that are not HTTP handlers; it raises
:class:`FieldErrors` naming every unknown or invalid field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ringlog.schemas import PhoneNumber
from ringlog.schemas.tasks import FieldValue

TaskStatus = Literal["open", "in_progress", "scheduled", "completed", "cancelled", "unreachable"]
Priority = Literal["low", "normal", "high", "urgent"]
Outcome = Literal[
    "reached",
    "booked",
    "declined",
    "callback_requested",
    "voicemail",
    "no_answer",
    "wrong_number",
]
#: A BCP 47 language tag such as ``en``, ``es-MX`` or ``zh-Hant``.
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$", max_length=35)
]
Notes = Annotated[str, StringConstraints(max_length=4000)]
Assignee = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TaskFields(BaseModel):
    """The writable fields of a task; set only the ones to change (``null`` clears one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: TaskStatus | None = Field(None, description="Where the outreach stands.")
    priority: Priority | None = Field(None, description="How urgent the outreach is.")
    notes: Notes | None = Field(None, description="Free text for staff, at most 4000 characters.")
    outcome: Outcome | None = Field(None, description="What the last contact attempt achieved.")
    callback_number: PhoneNumber | None = Field(
        None, description="Where the patient wants to be called back, E.164."
    )
    preferred_language: LanguageTag | None = Field(
        None, description="The patient's language, BCP 47 (en, es-MX)."
    )
    assigned_to: Assignee | None = Field(None, description="The staff member owning the task.")
    due_date: date | None = Field(None, description="When the outreach should be done by.")
    max_attempts: int | None = Field(
        None, ge=1, le=20, strict=True, description="Call attempts before giving up (1-20)."
    )
    do_not_call: bool | None = Field(
        None, strict=True, description="The patient asked not to be called again."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> TaskFields:
        if not self.model_fields_set:
            raise ValueError("at least one field is required")
        return self

    def values(self) -> dict[str, FieldValue]:
        """The fields that were given, as JSON scalars, by name (dates as ``YYYY-MM-DD``)."""
        given: dict[str, FieldValue] = self.model_dump(mode="json", exclude_unset=True)
        return given


#: Every field name a writeback may set.
ALLOWED: frozenset[str] = frozenset(TaskFields.model_fields)


class FieldErrors(ValueError):
    """A writeback that names unknown fields or gives invalid values; ``errors`` maps each
    offending field name (or ``""`` for the writeback as a whole) to the reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(sorted(errors.items()))
        unknown = [name for name, reason in self.errors.items() if reason == "unknown field"]
        parts = [f"unknown fields: {', '.join(unknown)}"] if unknown else []
        parts += [
            f"{name or 'fields'}: {reason}"
            for name, reason in self.errors.items()
            if reason != "unknown field"
        ]
        super().__init__("; ".join(parts))


def unknown_fields(names: Mapping[str, object]) -> list[str]:
    """The names in ``names`` that are not on the allow-list, sorted."""
    return sorted(name for name in names if name not in ALLOWED)


def validate_fields(raw: Mapping[str, object]) -> dict[str, FieldValue]:
    """Check a writeback against the allow-list; return its values as the event stores them.

    Raises :class:`FieldErrors` naming every unknown field and every invalid value, or for an
    empty writeback.
    """
    try:
        return TaskFields.model_validate(dict(raw)).values()
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            reason = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            errors.setdefault(name, reason)
        raise FieldErrors(errors) from None
