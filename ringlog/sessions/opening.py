"""What a new call from a number does to its session: the pure start-of-call decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from ringlog.schemas.base import EventModel
from ringlog.schemas.sessions import SessionExpired, SessionResumed, SessionStarted
from ringlog.sessions.state import SessionState

FIRST_STAGE = "name"
TASK = "flu_shot_booking"

Kind = Literal["fresh", "resume", "reconnect", "busy"]


@dataclass(frozen=True)
class Opening:
    """The decision for one call: what to append, and which session (if any) it speaks in."""

    kind: Kind
    events: tuple[EventModel, ...]
    session_id: str | None


def open_call(
    current: SessionState | None,
    *,
    phone: str,
    call_ref: str,
    now: dt.datetime,
    expiry: dt.timedelta,
    busy: bool,
    new_session_id: str,
) -> Opening:
    """Decide how a call from ``phone`` starts.

    * another live call holds the number (``busy``) → ``busy``: nothing is appended and the
      caller is told so (the first call keeps the session; the choice is documented);
    * the open session already counts this call (Retell reopening the socket of a call in
      progress) → ``reconnect``: the call goes on in it; ``session.resumed`` only if the lost
      socket recorded a drop, and expiry does not apply (the call never ended);
    * an open session that has not expired → ``resume`` (``session.resumed``);
    * an open session past its expiry → ``session.expired`` then a fresh ``session.started``;
    * otherwise → ``fresh`` (``session.started``).
    """
    if busy:
        return Opening("busy", (), None)
    if current is not None and current.open and call_ref in current.call_refs:
        events: tuple[EventModel, ...] = ()
        if current.status == "dropped":
            events = (reopened(current, call_ref),)
        return Opening("reconnect", events, current.session_id)
    found: list[EventModel] = []
    if current is not None and current.open:
        if not current.expired_at(now, expiry):
            resumed = SessionResumed(
                session_id=current.session_id,
                phone=phone,
                call_ref=call_ref,
                stage=current.stage,
                previous_call_refs=tuple(r for r in current.call_refs if r != call_ref),
            )
            return Opening("resume", (resumed,), current.session_id)
        found.append(SessionExpired(session_id=current.session_id, phone=phone))
    started = SessionStarted(
        session_id=new_session_id, phone=phone, call_ref=call_ref, task=TASK, stage=FIRST_STAGE
    )
    found.append(started)
    return Opening("fresh", tuple(found), new_session_id)


def reopened(session: SessionState, call_ref: str) -> SessionResumed:
    """``session.resumed`` for a call whose socket came back after its drop was recorded: the
    session is active again, in the same call, at the stage it had."""
    return SessionResumed(
        session_id=session.session_id,
        phone=session.phone,
        call_ref=call_ref,
        stage=session.stage,
        previous_call_refs=tuple(r for r in session.call_refs if r != call_ref),
    )
