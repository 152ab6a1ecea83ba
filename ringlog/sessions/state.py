"""A phone number's current session: the pure fold of its ``sessions`` events.

The fold keeps one session per number: the latest one started. A session is *open* while it is
active (a call is speaking in it) or dropped (waiting for a callback until it expires); it is
closed by completion, expiry, or a failed identity check on a resume (the caller is then served
a fresh session and the old one stays hidden).

:func:`apply` folds one event; :func:`apply_all` folds a number's run of events with the same
result, building the new state once (what the sessions view does per batch).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
    return apply_all(state, (envelope,))


def apply_all(state: SessionState | None, envelopes: Iterable[Envelope]) -> SessionState | None:
    """Fold a number's ``envelopes`` (log order) into its session: :func:`apply` on each in
    turn, the same result, but the new state is built once (the steps change a dict of its
    fields), not once per event. ``state`` itself is returned when no event changes it."""
    fields: dict[str, Any] | None = None if state is None else dict(vars(state))
    if fields is not None and type(fields["slots"]) is dict:  # a caller's dict: never changed
        fields["slots"] = MappingProxyType(fields["slots"])
    changed = False
    for envelope in envelopes:
        step = _step(fields, envelope)
        if step is not None:
            fields, changed = step, True
    if not changed or fields is None:
        return state
    slots = fields["slots"]
    if type(slots) is dict:
        fields["slots"] = MappingProxyType(slots)
    return SessionState(**fields)


def _step(fields: dict[str, Any] | None, envelope: Envelope) -> dict[str, Any] | None:
    """One event on a session's fields (changed in place, or a new dict for a session
    started); ``None`` when the event leaves the session as it is. ``slots`` is a plain dict
    only once this fold made its own copy (changed in place from then on)."""
    event = envelope.payload
    at = envelope.occurred_at
    if isinstance(event, SessionStarted):
        return {
            "session_id": event.session_id,
            "phone": event.phone,
            "task": event.task,
            "status": "active",
            "stage": event.stage,
            "started_at": at,
            "updated_at": at,
            "slots": _EMPTY,
            "call_refs": (event.call_ref,),
            "active_call": event.call_ref,
            "expires_at": None,
            "version": 1,
        }
    if fields is None or getattr(event, "session_id", None) != fields["session_id"]:
        return None
    fields["updated_at"] = max(at, fields["updated_at"])
    fields["version"] += 1
    if isinstance(event, SessionProgressed):
        slots = fields["slots"]
        if type(slots) is not dict:  # the first change in this fold: a copy of its own
            slots = fields["slots"] = dict(slots)
        slots.update(event.slots)
        fields["stage"] = event.stage
    elif isinstance(event, SessionDropped):
        fields.update(
            status="dropped", stage=event.stage, active_call=None, expires_at=event.expires_at
        )
    elif isinstance(event, SessionResumed):
        if event.call_ref not in fields["call_refs"]:
            fields["call_refs"] = (*fields["call_refs"], event.call_ref)
        fields.update(status="active", stage=event.stage, active_call=event.call_ref)
    elif isinstance(event, SessionIdentityFailed):
        fields.update(status="superseded", active_call=None)
    elif isinstance(event, SessionCompleted):
        fields.update(status="completed", active_call=None, stage="done")
    elif isinstance(event, SessionExpired):
        fields.update(status="expired", active_call=None)
    return fields


#: The slots of a session just started (shared: never changed in place).
_EMPTY: Mapping[str, str] = MappingProxyType({})


def fold(envelopes: Iterable[Envelope]) -> dict[str, SessionState]:
    """Every number's current session from ``sessions`` events in log order."""
    states: dict[str, SessionState] = {}
    for envelope in envelopes:
        phone = envelope.key
        folded = apply(states.get(phone), envelope)
        if folded is not None:
            states[phone] = folded
    return states
