"""Request and response bodies of the HTTP API (separate from the event schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from ringlog.schemas import PhoneNumber

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _bounded_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 metadata entries")
    for k, v in value.items():
        if not 0 < len(k) <= 64 or len(v) > 512:
            raise ValueError("metadata keys are 1-64 characters, values at most 512")
    return value


class CallRequestIn(BaseModel):
    """An upstream trigger asking for an outbound call."""

    model_config = ConfigDict(extra="forbid")

    to_number: PhoneNumber = Field(description="Callee, E.164 (+15551234567).")
    from_number: PhoneNumber = Field(
        description="Caller ID, E.164; a number on the Retell account."
    )
    agent_id: ShortText | None = Field(None, description="Retell agent; default from settings.")
    scheduled_at: datetime | None = Field(None, description="Place the call at this time (UTC).")
    patient_ref: ShortText | None = None
    task_ref: ShortText | None = None
    metadata: Annotated[dict[str, str], AfterValidator(_bounded_metadata)] = Field(
        default_factory=dict
    )


class CallAccepted(BaseModel):
    """The request is durably on the log; ``call_ref`` identifies the call from now on."""

    call_ref: str


class Problem(BaseModel):
    """An error answer."""

    detail: str
