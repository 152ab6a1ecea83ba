"""Booking sessions that can span several calls (topic ``sessions``, key: phone number).

A session is the fold of these events; Redis only caches it. A session started on one call
survives the call dropping and resumes when the same number calls again, until it completes
or expires.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import msgspec

from ringlog.schemas.base import EventModel, PhoneNumber
from ringlog.schemas.registry import REGISTRY


class _SessionEvent(EventModel, frozen=True, kw_only=True):
    topic: ClassVar[str] = "sessions"
    schema_version: ClassVar[int] = 1

    session_id: str
    phone: PhoneNumber

    def partition_key(self) -> str:
        """The caller's phone number (E.164)."""
        return self.phone


class Appointment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A booked appointment."""

    kind: str = "flu_shot"
    date: dt.date
    time: str
    site: str


class Patient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who the appointment is for."""

    name: str
    date_of_birth: dt.date


@REGISTRY.register
class SessionStarted(_SessionEvent, frozen=True, kw_only=True):
    """A call from a number with no open session began a new one."""

    event_type: ClassVar[str] = "session.started"
    call_ref: str
    task: str = "flu_shot_booking"
    stage: str


@REGISTRY.register
class SessionProgressed(_SessionEvent, frozen=True, kw_only=True):
    """A turn moved the session: its stage and the slots known so far."""

    event_type: ClassVar[str] = "session.progressed"
    call_ref: str
    stage: str
    slots: dict[str, str] = msgspec.field(default_factory=dict)
    last_user_text: str | None = None
    last_agent_text: str | None = None


@REGISTRY.register
class SessionDropped(_SessionEvent, frozen=True, kw_only=True):
    """The call ended before the session completed; it stays open until ``expires_at``."""

    event_type: ClassVar[str] = "session.dropped"
    call_ref: str
    stage: str
    reason: str
    expires_at: dt.datetime


@REGISTRY.register
class SessionResumed(_SessionEvent, frozen=True, kw_only=True):
    """A new call from the same number picked the open session up."""

    event_type: ClassVar[str] = "session.resumed"
    call_ref: str
    stage: str
    previous_call_refs: tuple[str, ...] = ()


@REGISTRY.register
class SessionIdentityFailed(_SessionEvent, frozen=True, kw_only=True):
    """A caller on a resume could not confirm an identity fact; the old session stays hidden."""

    event_type: ClassVar[str] = "session.identity_failed"
    call_ref: str
    fact: str


@REGISTRY.register
class SessionCompleted(_SessionEvent, frozen=True, kw_only=True):
    """The booking completed: the appointment, the patient, and every call the session spans."""

    event_type: ClassVar[str] = "session.completed"
    call_ref: str
    call_refs: tuple[str, ...]
    appointment: Appointment
    patient: Patient


@REGISTRY.register
class SessionExpired(_SessionEvent, frozen=True, kw_only=True):
    """An open session passed its expiry; a later call starts fresh."""

    event_type: ClassVar[str] = "session.expired"
