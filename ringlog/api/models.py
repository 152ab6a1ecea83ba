"""Request and response bodies of the HTTP API (separate from the event schemas).

Every text a request carries reaches a store (the log, then the CRM, the worker's store, the
warehouse), so each is bounded and clean at the edge: a length limit, and no control characters
(NUL among them, which PostgreSQL refuses in any text). Single-line values (refs, ids, names of
things) refuse every control character; free text (:data:`FreeText`) keeps tabs and line
breaks. What breaks a rule is a 422 naming the field; nothing is cleaned silently.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from ringlog.schemas import PhoneNumber
from ringlog.schemas.retell import CONTROL_CHARACTERS, MAX_REF_LENGTH, ref_problem

#: Control characters free text may not hold: all but tab, line feed and carriage return.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: The same rules as JSON Schema patterns, so the OpenAPI document states them.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


def single_line(value: str) -> str:
    """``value`` if it holds no control character; ``ValueError`` otherwise."""
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters (NUL, line breaks, tabs …)")
    return value


def clean_text(value: str) -> str:
    """``value`` if it holds no control character but tabs and line breaks."""
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain NUL or other control characters")
    return value


#: A single-line value of 1-128 characters (an agent id, a ref, an actor).
ShortText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(single_line),
    Field(json_schema_extra={"pattern": LINE_PATTERN}),
]
#: A call ref given by a caller: the call-ref rule (1-128 characters, no control characters).
CallRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_REF_LENGTH),
    AfterValidator(single_line),
    Field(json_schema_extra={"pattern": LINE_PATTERN}),
]
#: Free text of at most 4000 characters: line breaks and tabs allowed, other controls not.
FreeText = Annotated[
    str,
    StringConstraints(max_length=4000),
    AfterValidator(clean_text),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]


def _bounded_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 metadata entries")
    for k, v in value.items():
        if not 0 < len(k) <= 64 or len(v) > 512:
            raise ValueError("metadata keys are 1-64 characters, values at most 512")
        if CONTROL_CHARACTERS.search(k) or CONTROL_CHARACTERS.search(v):
            raise ValueError("metadata keys and values must not contain control characters")
    call_ref = value.get("call_ref")
    if call_ref is not None and (problem := ref_problem(call_ref)):
        raise ValueError(f"metadata call_ref {problem}")
    return value


class CallRequestIn(BaseModel):
    """An upstream trigger asking for an outbound call."""

    model_config = ConfigDict(extra="forbid")

    to_number: PhoneNumber = Field(description="Callee, E.164 (+15551234567).")
    from_number: PhoneNumber = Field(
        description="Caller ID, E.164; a number on the Retell account."
    )
    agent_id: ShortText | None = Field(None, description="Retell agent; default from settings.")
    scheduled_at: AwareDatetime | None = Field(
        None,
        description="Place the call at this time; ISO 8601 with a zone (a time without one "
        "is refused: its instant is unknown).",
    )
    patient_ref: ShortText | None = None
    task_ref: ShortText | None = None
    metadata: Annotated[dict[str, str], AfterValidator(_bounded_metadata)] = Field(
        default_factory=dict,
        description="Passed to Retell as the call's metadata (at most 50 entries, keys 1-64 "
        "and values at most 512 characters, no control characters). ringlog sets `call_ref`.",
    )


class CallAccepted(BaseModel):
    """The request is durably on the log; ``call_ref`` identifies the call from now on."""

    call_ref: str


class Problem(BaseModel):
    """An error answer."""

    detail: str
