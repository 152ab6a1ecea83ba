"""One call's conversation inside its session: the pure step functions behind the LLM socket.

Retell's transcript is the truth. Each request is answered from the conversation as it stood
after the last reply the caller actually heard, with the caller's words as the request's
transcript gives them. A reply *stands* once a later transcript shows the agent spoke after
those words (the caller's turn was over and the reply was heard); only then are its session
events and its two turns recorded. A reply that a newer request superseded before that (the
caller kept talking, or Retell asked again) is dropped: nothing of it is recorded, and the next
reply is worked out from the same starting point with the caller's final words (see
:class:`Ledger`). A reply that ends the call (the booking's completion) or closes the session
(a failed identity check) stands at once: it is on the log before the agent says it
(:func:`stands_at_once`).

On a resume the agent names the task and the stage at once, but repeats personal details only
after the caller confirms a detail on file: the date of birth, else the name (caller ID can be
spoofed). With nothing on file the booking simply asks again. A wrong answer closes the old
session without revealing it or changing what it holds and starts a fresh one; an unclear
answer is asked again once.

A call without a number (a web call) has a dialog but no session: nothing is claimed and no
session event is recorded, only its turns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ringlog.dialog import (
    Booking,
    after_identity,
    check_identity,
    greeting,
    identity_fact,
    identity_question,
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
UNCLEAR_IDENTITY_TEXT = "Sorry, I didn't catch that. "
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
    """The first words of a call, given the start-of-call decision and the session after it.

    A reconnect says nothing (``""``: the caller is mid-conversation) and goes on in the
    session; it asks for the date of birth again only if this call resumed an older session
    (whether it was confirmed before the socket was lost is not known here).
    """
    if opening.kind == "busy" or session is None:
        return busy(phone, call_ref)
    if opening.kind == "fresh":
        booking = Booking()
        conversation = Conversation(
            phone, call_ref, session.session_id, booking, (call_ref,), "booking"
        )
        return Step(conversation, greeting(booking))
    booking = Booking(stage=session.stage, slots=dict(session.slots))  # type: ignore[arg-type]
    mode: Mode = "verifying" if needs_identity_check(booking) else "booking"
    if opening.kind == "reconnect" and session.call_refs[:1] == (call_ref,):
        mode = "booking"  # the session began in this call: nobody else's details to protect
    conversation = Conversation(
        phone, call_ref, session.session_id, booking, session.call_refs, mode
    )
    if opening.kind == "reconnect":
        return Step(conversation, "")
    return Step(conversation, welcome_back(booking))


def busy(phone: str, call_ref: str) -> Step:
    """Another call holds the number: say so and end the call, outside any session."""
    conversation = Conversation(phone, call_ref, None, Booking(), (), "busy")
    return Step(conversation, BUSY_TEXT, end_call=True)


def begin_without_session(call_ref: str) -> Step:
    """The first words of a call with no caller number (a web call): a fresh booking, no
    session."""
    booking = Booking()
    conversation = Conversation("", call_ref, None, booking, (call_ref,), "booking")
    return Step(conversation, greeting(booking))


def hear(
    conversation: Conversation, utterance: str, *, today: dt.date, new_session_id: str
) -> Step:
    """One caller turn: the reply and the session events it causes (none without a
    session)."""
    if conversation.mode == "busy":
        return Step(conversation, "Goodbye.", end_call=True)
    if conversation.mode == "done":  # e.g. the words saying so were superseded
        reply = respond(conversation.booking, utterance, today)
        return Step(conversation, reply.text, end_call=True)
    if conversation.mode == "verifying":
        return _verify(conversation, utterance, today, new_session_id)
    reply = respond(conversation.booking, utterance, today)
    after = replace(conversation, booking=reply.booking)
    if conversation.session_id is None:  # a call without a session records no session events
        mode: Mode = "done" if is_complete(reply.booking) else after.mode
        return Step(replace(after, mode=mode), reply.text, end_call=reply.end_call)
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
        return _ask_identity_again(conversation)
    return reminder(conversation.booking)


def hang_up(
    conversation: Conversation, *, reason: str, now: dt.datetime, expiry: dt.timedelta
) -> tuple[EventModel, ...]:
    """The session events when the call ends: a drop if the booking was not finished (none
    for a call without a session)."""
    if conversation.mode not in ("booking", "verifying") or conversation.session_id is None:
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
        again = replace(conversation, unclear=conversation.unclear + 1)
        return Step(again, _ask_identity_again(conversation))
    failed = SessionIdentityFailed(
        session_id=_session(conversation),
        phone=conversation.phone,
        call_ref=conversation.call_ref,
        fact=identity_fact(conversation.booking) or "date_of_birth",
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


def _ask_identity_again(conversation: Conversation) -> str:
    """ "Sorry, I didn't catch that. Please tell me your full name." (or date of birth)."""
    return UNCLEAR_IDENTITY_TEXT + identity_question(conversation.booking).capitalize()


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


# ---------------------------------------------------------------- which replies stand

Transcript = Sequence[Any]
"""Retell's transcript as a request carries it: ``{"role", "content"}`` entries in spoken
order (anything else in it is skipped)."""


def caller_words(transcript: Transcript) -> str:
    """What the caller said since the agent last spoke (the trailing user entries, joined)."""
    words: list[str] = []
    for entry in reversed(transcript):
        if not isinstance(entry, Mapping):
            continue
        if entry.get("role") != "user":
            break
        words.append(str(entry.get("content") or ""))
    return " ".join(reversed(words)).strip()


def agent_entries(transcript: Transcript) -> int:
    """How many times the agent has spoken in ``transcript``."""
    return sum(1 for e in transcript if isinstance(e, Mapping) and e.get("role") == "agent")


@dataclass(frozen=True)
class Answer:
    """A reply worked out for one request, not yet known to stand.

    ``heard`` is the caller's words it answers (``""`` for a reminder); ``position`` is where
    the reply goes in the transcript (the length of the request's transcript: the caller's last
    words are at ``position - 1``), which is also the turn index it is recorded under;
    ``agents_before`` counts the agent's entries in that transcript; ``sent`` is set once its
    last chunk went out.
    """

    response_id: int
    step: Step
    text: str
    heard: str
    position: int
    agents_before: int
    latency_ms: float | None = None
    sent: bool = False


@dataclass(frozen=True)
class Ledger:
    """Which replies of a call stand.

    ``conversation`` is where the dialog stands after the last reply that stood; turns below
    transcript position ``recorded`` are on the log (``None`` when not known: a call taken over
    from a lost socket served elsewhere, then the first request's earlier entries count as
    recorded); ``open`` is the latest reply not yet known to stand.
    """

    conversation: Conversation
    recorded: int | None = 1
    open: Answer | None = None


def answer_for(
    ledger: Ledger,
    transcript: Transcript,
    *,
    response_id: int,
    step: Step,
    text: str,
    heard: str,
    latency_ms: float | None = None,
) -> tuple[Ledger, Answer]:
    """Make ``step`` (worked out from ``ledger.conversation`` for the request whose transcript
    is ``transcript``) the open reply, replacing any other."""
    position = len(transcript)
    recorded = ledger.recorded
    if recorded is None:  # taken over: what came before the caller's last words is recorded
        recorded = position - 1 if heard else position
    answer = Answer(response_id, step, text, heard, position, agent_entries(transcript), latency_ms)
    return replace(ledger, recorded=recorded, open=answer), answer


def stands_at_once(step: Step) -> bool:
    """Whether a reply is recorded before it is said, heard or not: one that ends the call
    (the booking's completion), or one that closes the session the call spoke in (a failed
    identity check: the old session is closed before the caller hears of a new one)."""
    return step.end_call or any(isinstance(e, SessionIdentityFailed) for e in step.events)


def sent(ledger: Ledger, answer: Answer) -> Ledger:
    """The ledger after ``answer``'s last chunk went out (unchanged if it is no longer open)."""
    if ledger.open is not answer:
        return ledger
    return replace(ledger, open=replace(answer, sent=True))


def settle(
    ledger: Ledger, transcript: Transcript, *, newer_request: bool
) -> tuple[Ledger, Answer | None]:
    """Decide the open reply against a later transcript.

    It stands when it was sent and the transcript has the agent speaking more often than the
    reply's own request did: it is returned, to be recorded (see :func:`stand`). Otherwise a
    newer request means it was not heard: it is dropped and nothing of it is recorded. A
    transcript update (``update_only``) that does not show it leaves it open.
    """
    answer = ledger.open
    if answer is None:
        return ledger, None
    if answer.sent and agent_entries(transcript) > answer.agents_before:
        return stand(ledger, answer), answer
    if newer_request:
        return replace(ledger, open=None), None
    return ledger, None


def stand(ledger: Ledger, answer: Answer) -> Ledger:
    """The ledger once ``answer`` stands: the conversation after it, recorded past it."""
    return Ledger(answer.step.conversation, answer.position + 1, None)


def hung_up(ledger: Ledger) -> tuple[Ledger, Answer | None]:
    """The call ended: the open reply stands if it was sent (the caller's words were final;
    whether the reply was heard is not known), else it is dropped."""
    answer = ledger.open
    if answer is not None and answer.sent:
        return stand(ledger, answer), answer
    return replace(ledger, open=None), None


def turns_of(ledger: Ledger, answer: Answer) -> list[tuple[Literal["agent", "user"], str, int]]:
    """The turns a standing reply records, ``(role, text, turn index)``: the caller's words
    (unless empty or already recorded) at ``position - 1``, then the reply at ``position``.
    ``ledger`` is the one before the reply stood."""
    turns: list[tuple[Literal["agent", "user"], str, int]] = []
    recorded = ledger.recorded or 0
    if answer.heard and answer.position - 1 >= recorded:
        turns.append(("user", answer.heard, answer.position - 1))
    turns.append(("agent", answer.text, answer.position))
    return turns
