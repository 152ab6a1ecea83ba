"""A phone number's current session: the pure fold of its ``sessions`` events.

The fold keeps one session per number: the latest one started. A session is *open* while it is
active (a call is speaking in it) or dropped (waiting for a callback until it expires); it is
closed by completion, expiry, or a failed identity check on a resume (the caller is then served
a fresh session and the old one stays hidden).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from ringlog.schemas import Envelope
from ringlog.schemas.sessions import (
    SessionCompleted,
    SessionDropped,
    SessionExpired,
    SessionIdentityFailed,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
)

Status = Literal["active", "dropped", "completed", "expired", "superseded"]
OPEN: frozenset[Status] = frozenset({"active", "dropped"})


@dataclass(frozen=True)
class SessionState:
    """What is known of one session; ``version`` is how many of its events were folded."""

    session_id: str
    phone: str
    task: str
    status: Status
    stage: str
    started_at: dt.datetime
    updated_at: dt.datetime
    slots: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    call_refs: tuple[str, ...] = ()
    active_call: str | None = None
    expires_at: dt.datetime | None = None
    version: int = 1

    @property
    def open(self) -> bool:
        """Active or dropped: a call from this number continues it."""
        return self.status in OPEN

    def expired_at(self, now: dt.datetime, expiry: dt.timedelta) -> bool:
        """Whether the session is past its expiry at ``now``.

        A dropped session expires at its ``expires_at``. An active one whose call vanished (the
        process serving it died before recording the drop) expires ``expiry`` after its last
        event.
        """
        if not self.open:
            return False
        deadline = self.expires_at or self.updated_at + expiry
        return now >= deadline

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the cache's form and the read API's body)."""
        return {
            "session_id": self.session_id,
            "phone": self.phone,
            "task": self.task,
            "status": self.status,
            "open": self.open,
            "stage": self.stage,
            "slots": dict(self.slots),
            "call_refs": list(self.call_refs),
            "active_call": self.active_call,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionState:
        """The inverse of :meth:`to_json`."""
        expires = data.get("expires_at")
        return cls(
            session_id=data["session_id"],
            phone=data["phone"],
            task=data["task"],
            status=data["status"],
            stage=data["stage"],
            slots=MappingProxyType(dict(data.get("slots", {}))),
            call_refs=tuple(data.get("call_refs", ())),
            active_call=data.get("active_call"),
            started_at=dt.datetime.fromisoformat(data["started_at"]),
            updated_at=dt.datetime.fromisoformat(data["updated_at"]),
            expires_at=dt.datetime.fromisoformat(expires) if expires else None,
            version=int(data.get("version", 1)),
        )


def apply(state: SessionState | None, envelope: Envelope) -> SessionState | None:
    """Fold one ``sessions`` event into the number's current session.

    ``session.started`` replaces whatever was there; every other event applies only to the
    session it names (events of an older session are ignored). Unknown payloads are ignored.
    """
    event = envelope.payload
    at = envelope.occurred_at
    if isinstance(event, SessionStarted):
        return SessionState(
            session_id=event.session_id,
            phone=event.phone,
            task=event.task,
            status="active",
            stage=event.stage,
            started_at=at,
            updated_at=at,
            call_refs=(event.call_ref,),
            active_call=event.call_ref,
        )
    session_id = getattr(event, "session_id", None)
    if state is None or session_id != state.session_id:
        return state
    state = replace(state, updated_at=max(at, state.updated_at), version=state.version + 1)
    if isinstance(event, SessionProgressed):
        slots = MappingProxyType({**state.slots, **event.slots})
        return replace(state, stage=event.stage, slots=slots)
    if isinstance(event, SessionDropped):
        return replace(
            state,
            status="dropped",
            stage=event.stage,
            active_call=None,
            expires_at=event.expires_at,
        )
    if isinstance(event, SessionResumed):
        refs = state.call_refs
        if event.call_ref not in refs:
            refs = (*refs, event.call_ref)
        return replace(
            state, status="active", stage=event.stage, active_call=event.call_ref, call_refs=refs
        )
    if isinstance(event, SessionIdentityFailed):
        return replace(state, status="superseded", active_call=None)
    if isinstance(event, SessionCompleted):
        return replace(state, status="completed", active_call=None, stage="done")
    if isinstance(event, SessionExpired):
        return replace(state, status="expired", active_call=None)
    return state


def fold(envelopes: Iterable[Envelope]) -> dict[str, SessionState]:
    """Every number's current session from ``sessions`` events in log order."""
    states: dict[str, SessionState] = {}
    for envelope in envelopes:
        phone = envelope.key
        folded = apply(states.get(phone), envelope)
        if folded is not None:
            states[phone] = folded
    return states
