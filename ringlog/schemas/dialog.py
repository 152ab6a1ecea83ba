"""Dialog turns over Retell's custom-LLM socket (topic ``dialog``, key: call ref)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from ringlog.schemas.base import EventModel
from ringlog.schemas.registry import REGISTRY


@REGISTRY.register
class DialogTurn(EventModel, frozen=True, kw_only=True):
    """One thing said in a call: who said it, the text, and where the dialog stood."""

    topic: ClassVar[str] = "dialog"
    event_type: ClassVar[str] = "dialog.turn"
    schema_version: ClassVar[int] = 1

    call_ref: str
    call_id: str
    session_id: str | None = None
    turn_index: Annotated[int, msgspec.Meta(ge=0)]
    role: Literal["agent", "user"]
    text: str
    response_id: int | None = None
    stage: str | None = None
    latency_ms: float | None = None

    def partition_key(self) -> str:
        """The call ref."""
        return self.call_ref
