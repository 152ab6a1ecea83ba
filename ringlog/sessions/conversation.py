"""One call's conversation inside its session: the pure step function behind the LLM socket.

The socket handler feeds it the caller's words and appends the session events it returns
*before* speaking the text, so what the caller hears is always already on the log.

On a resume the agent names the task and the stage at once, but repeats personal details only
after the caller confirms the date of birth on file (caller ID can be spoofed). A wrong answer
closes the old session without revealing it and starts a fresh one; an unclear answer is asked
again once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal

from ringlog.dialog import (
    Booking,
    after_identity,
    check_identity,
    greeting,
    is_complete,
    needs_identity_check,
    question,
    reminder,
    respond,
    welcome_back,
)
from ringlog.schemas.base import EventModel
from ringlog.schemas.sessions import (
    Appointment,
    Patient,
    SessionCompleted,
    SessionDropped,
    SessionIdentityFailed,
    SessionProgressed,
    SessionStarted,
)
from ringlog.sessions.opening import FIRST_STAGE, TASK, Opening
from ringlog.sessions.state import SessionState

Mode = Literal["booking", "verifying", "busy", "done"]

BUSY_TEXT = (
    "It looks like you are already on another call with us from this number. "
    "Please continue on that call. Goodbye."
)
IDENTITY_FAILED_TEXT = "I'm sorry, I couldn't match that. Let's start a new booking. "
UNCLEAR_IDENTITY_TEXT = "Sorry, I didn't catch that. Please tell me your date of birth."
#: unclear answers to the identity question before it counts as a failure
MAX_UNCLEAR = 2


@dataclass(frozen=True)
class Conversation:
    """Where one call's dialog stands."""

    phone: str
    call_ref: str
    session_id: str | None
    booking: Booking
    call_refs: tuple[str, ...]
    mode: Mode
    unclear: int = 0


@dataclass(frozen=True)
class Step:
    """The conversation after a step, what to say, and the session events to append first."""

    conversation: Conversation
    text: str
    end_call: bool = False
    events: tuple[EventModel, ...] = ()


def begin(opening: Opening, session: SessionState | None, *, phone: str, call_ref: str) -> Step:
    """The first words of a call, given the start-of-call decision and the session after it."""
    if opening.kind == "busy" or session is None:
        conversation = Conversation(phone, call_ref, None, Booking(), (), "busy")
        return Step(conversation, BUSY_TEXT, end_call=True)
    if opening.kind == "fresh":
        booking = Booking()
        conversation = Conversation(
            phone, call_ref, session.session_id, booking, (call_ref,), "booking"
        )
        return Step(conversation, greeting(booking))
    booking = Booking(stage=session.stage, slots=dict(session.slots))  # type: ignore[arg-type]
    mode: Mode = "verifying" if needs_identity_check(booking) else "booking"
    conversation = Conversation(
        phone, call_ref, session.session_id, booking, session.call_refs, mode
    )
    return Step(conversation, welcome_back(booking))


def hear(
    conversation: Conversation, utterance: str, *, today: dt.date, new_session_id: str
) -> Step:
    """One caller turn: the reply and the session events it causes."""
    if conversation.mode in ("busy", "done"):
        return Step(conversation, "Goodbye.", end_call=True)
    if conversation.mode == "verifying":
        return _verify(conversation, utterance, today, new_session_id)
    reply = respond(conversation.booking, utterance, today)
    after = replace(conversation, booking=reply.booking)
    events: list[EventModel] = []
    if reply.booking != conversation.booking:
        events.append(
            SessionProgressed(
                session_id=_session(conversation),
                phone=conversation.phone,
                call_ref=conversation.call_ref,
                stage=reply.booking.stage,
                slots=dict(reply.booking.slots),
                last_user_text=utterance,
                last_agent_text=reply.text,
            )
        )
    if is_complete(reply.booking):
        events.append(_completed(after))
        after = replace(after, mode="done")
    return Step(after, reply.text, end_call=reply.end_call, events=tuple(events))


def remind(conversation: Conversation) -> str:
    """What to say after the caller has been silent."""
    if conversation.mode == "verifying":
        return UNCLEAR_IDENTITY_TEXT
    return reminder(conversation.booking)


def hang_up(
    conversation: Conversation, *, reason: str, now: dt.datetime, expiry: dt.timedelta
) -> tuple[EventModel, ...]:
    """The session events when the call ends: a drop if the booking was not finished."""
    if conversation.mode not in ("booking", "verifying"):
        return ()
    dropped = SessionDropped(
        session_id=_session(conversation),
        phone=conversation.phone,
        call_ref=conversation.call_ref,
        stage=conversation.booking.stage,
        reason=reason,
        expires_at=now + expiry,
    )
    return (dropped,)


def _verify(conversation: Conversation, utterance: str, today: dt.date, new_id: str) -> Step:
    verdict = check_identity(conversation.booking, utterance, today)
    if verdict == "confirmed":
        after = replace(conversation, mode="booking", unclear=0)
        return Step(after, after_identity(conversation.booking))
    if verdict == "unclear" and conversation.unclear + 1 < MAX_UNCLEAR:
        return Step(replace(conversation, unclear=conversation.unclear + 1), UNCLEAR_IDENTITY_TEXT)
    failed = SessionIdentityFailed(
        session_id=_session(conversation),
        phone=conversation.phone,
        call_ref=conversation.call_ref,
        fact="date_of_birth",
    )
    started = SessionStarted(
        session_id=new_id,
        phone=conversation.phone,
        call_ref=conversation.call_ref,
        task=TASK,
        stage=FIRST_STAGE,
    )
    fresh = Booking()
    after = Conversation(
        conversation.phone,
        conversation.call_ref,
        new_id,
        fresh,
        (conversation.call_ref,),
        "booking",
    )
    return Step(after, IDENTITY_FAILED_TEXT + question(fresh), events=(failed, started))


def _completed(conversation: Conversation) -> SessionCompleted:
    slots = conversation.booking.slots
    return SessionCompleted(
        session_id=_session(conversation),
        phone=conversation.phone,
        call_ref=conversation.call_ref,
        call_refs=conversation.call_refs,
        appointment=Appointment(
            date=dt.date.fromisoformat(slots["date"]), time=slots["time"], site=slots["site"]
        ),
        patient=Patient(
            name=slots["name"], date_of_birth=dt.date.fromisoformat(slots["date_of_birth"])
        ),
    )


def _session(conversation: Conversation) -> str:
    assert conversation.session_id is not None, "only a conversation in a session has events"
    return conversation.session_id
