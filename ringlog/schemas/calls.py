"""Call requests and their dispatch to Retell (topic ``calls``, key: call ref)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

import msgspec

from ringlog.schemas.base import EventModel, PhoneNumber
from ringlog.schemas.registry import REGISTRY


class _CallEvent(EventModel, frozen=True, kw_only=True):
    topic: ClassVar[str] = "calls"
    call_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

    def partition_key(self) -> str:
        """The call ref."""
        return self.call_ref


@REGISTRY.register
class CallRequested(_CallEvent, frozen=True, kw_only=True):
    """An upstream service asked for an outbound call (now, or at ``scheduled_at``)."""

    event_type: ClassVar[str] = "call.requested"
    schema_version: ClassVar[int] = 1

    to_number: PhoneNumber
    from_number: PhoneNumber
    agent_id: str
    scheduled_at: datetime | None = None
    patient_ref: str | None = None
    task_ref: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    idempotency_key: str | None = None


@REGISTRY.register
class CallDispatched(_CallEvent, frozen=True, kw_only=True):
    """Retell accepted the create-call request and named its call id."""

    event_type: ClassVar[str] = "call.dispatched"
    schema_version: ClassVar[int] = 1

    retell_call_id: str
    agent_id: str
    attempt: int = 1


@REGISTRY.register
class CallDispatchFailed(_CallEvent, frozen=True, kw_only=True):
    """The call could not be placed: a permanent error, or retries exhausted."""

    event_type: ClassVar[str] = "call.dispatch_failed"
    schema_version: ClassVar[int] = 1

    reason: str
    permanent: bool
    attempts: int


@REGISTRY.register
class CallCancelled(_CallEvent, frozen=True, kw_only=True):
    """A pending or scheduled call was cancelled before dispatch (e.g. its task was deleted)."""

    event_type: ClassVar[str] = "call.cancelled"
    schema_version: ClassVar[int] = 1

    reason: str
    task_ref: str | None = None
    #: the event this follows from (``task.deleted``), when there is one
    cause_event_id: str | None = None


@REGISTRY.register
class CallRescheduled(_CallEvent, frozen=True, kw_only=True):
    """A pending call moves to a new time because its task was rescheduled."""

    event_type: ClassVar[str] = "call.rescheduled"
    schema_version: ClassVar[int] = 1

    scheduled_at: datetime
    task_ref: str | None = None
    #: the ``task.rescheduled`` event this follows from
    cause_event_id: str | None = None


@REGISTRY.register
class CallRecorded(_CallEvent, frozen=True, kw_only=True):
    """The call's record (outcome, timings, analysis) was written to the call-record store.

    Appended by the lifecycle processor after the write succeeded, so a replay neither writes
    it again nor emits ABT ``call_completed`` before the record exists.
    """

    event_type: ClassVar[str] = "call.recorded"
    schema_version: ClassVar[int] = 1

    retell_call_id: str
    store: str
