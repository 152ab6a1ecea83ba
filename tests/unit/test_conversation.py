"""One call's conversation inside its session (pure): resume, identity, completion, drop."""

from __future__ import annotations

import datetime as dt

from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.sessions import (
    SessionCompleted,
    SessionDropped,
    SessionIdentityFailed,
    SessionProgressed,
    SessionStarted,
)
from ringlog.sessions.conversation import Conversation, begin, hang_up, hear
from ringlog.sessions.opening import open_call
from ringlog.sessions.state import SessionState, apply

PHONE = "+14155550123"
TODAY = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
EXPIRY = dt.timedelta(hours=1)


def fold(state: SessionState | None, events: tuple[EventModel, ...]) -> SessionState | None:
    for event in events:
        state = apply(state, Envelope.new(event, source="test", occurred_at=NOW))
    return state


def call(current: SessionState | None, ref: str) -> tuple[Conversation, str, SessionState | None]:
    opening = open_call(
        current,
        phone=PHONE,
        call_ref=ref,
        now=NOW,
        expiry=EXPIRY,
        busy=False,
        new_session_id=f"s-{ref}",
    )
    state = fold(current, opening.events)
    step = begin(opening, state, phone=PHONE, call_ref=ref)
    return step.conversation, step.text, state


def say(
    conversation: Conversation, state: SessionState | None, words: str
) -> tuple[Conversation, str, SessionState | None, tuple[EventModel, ...]]:
    step = hear(conversation, words, today=TODAY, new_session_id="s-new")
    return step.conversation, step.text, fold(state, step.events), step.events


def dropped_at_the_date() -> SessionState | None:
    conversation, _, state = call(None, "c1")
    conversation, _, state, _ = say(conversation, state, "My name is Jane Doe")
    conversation, _, state, _ = say(conversation, state, "March 3rd, 1980")
    return fold(state, hang_up(conversation, reason="socket_closed", now=NOW, expiry=EXPIRY))


def test_each_slot_is_a_progress_event_and_a_hang_up_is_a_drop() -> None:
    conversation, _, state = call(None, "c1")
    conversation, _, state, events = say(conversation, state, "My name is Jane Doe")
    (progress,) = events
    assert isinstance(progress, SessionProgressed) and progress.slots == {"name": "Jane Doe"}
    (drop,) = hang_up(conversation, reason="socket_closed", now=NOW, expiry=EXPIRY)
    assert isinstance(drop, SessionDropped) and drop.stage == "date_of_birth"
    assert drop.expires_at == NOW + EXPIRY


def test_a_reprompt_appends_nothing() -> None:
    conversation, _, state = call(None, "c1")
    _, text, _, events = say(conversation, state, "???")
    assert events == () and "full name" in text.lower()


def test_a_resume_names_the_stage_then_recaps_only_after_the_date_of_birth() -> None:
    conversation, text, state = call(dropped_at_the_date(), "c2")
    assert "selecting a date" in text and "Jane" not in text
    conversation, text, state, events = say(conversation, state, "3 March 1980")
    assert "Jane" in text and "which day" in text.lower() and events == ()
    for words in ("next Tuesday", "10am", "Main Street Clinic"):
        conversation, text, state, _ = say(conversation, state, words)
    step = hear(conversation, "yes", today=TODAY, new_session_id="unused")
    assert step.end_call and "booked" in step.text.lower()
    completed = step.events[-1]
    assert isinstance(completed, SessionCompleted)
    assert completed.call_refs == ("c1", "c2")
    assert completed.patient.date_of_birth == dt.date(1980, 3, 3)
    assert completed.appointment.date == dt.date(2026, 11, 24)
    assert hang_up(step.conversation, reason="socket_closed", now=NOW, expiry=EXPIRY) == ()


def test_a_wrong_date_of_birth_closes_the_old_session_and_starts_fresh() -> None:
    conversation, _, state = call(dropped_at_the_date(), "c2")
    conversation, text, state, events = say(conversation, state, "July 4th, 1975")
    assert [type(e) for e in events] == [SessionIdentityFailed, SessionStarted]
    assert "Jane" not in text and "full name" in text.lower()
    assert state is not None and state.session_id == "s-new" and dict(state.slots) == {}


def test_an_unclear_answer_is_asked_again_once_then_counts_as_wrong() -> None:
    conversation, _, state = call(dropped_at_the_date(), "c2")
    conversation, text, state, events = say(conversation, state, "hmm")
    assert events == () and "date of birth" in text.lower()
    _, _, _, events = say(conversation, state, "hmm")
    assert [type(e) for e in events] == [SessionIdentityFailed, SessionStarted]
