"""One call's conversation inside its session (pure): resume, identity, completion, drop, which
replies stand (Retell's transcript as the truth), calls without a number, reconnects."""

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
from ringlog.sessions.conversation import (
    Conversation,
    Ledger,
    Step,
    answer_for,
    begin,
    begin_without_session,
    caller_words,
    hang_up,
    hear,
    hung_up,
    sent,
    settle,
    stands_at_once,
    turns_of,
)
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


# ---------------------------------------------------------------- which replies stand

GREETING = {"role": "agent", "content": "Hello. May I have your full name, please?"}


def user(words: str) -> dict[str, str]:
    return {"role": "user", "content": words}


def agent(words: str) -> dict[str, str]:
    return {"role": "agent", "content": words}


def fresh() -> Ledger:
    conversation, _, _ = call(None, "c1")
    return Ledger(conversation)


def replied(ledger: Ledger, transcript: list[dict[str, str]], response_id: int) -> Ledger:
    """Answer the request whose transcript is ``transcript`` and send the reply."""
    words = caller_words(transcript)
    step = hear(ledger.conversation, words, today=TODAY, new_session_id="s-new")
    ledger, answer = answer_for(
        ledger, transcript, response_id=response_id, step=step, text=step.text, heard=words
    )
    return sent(ledger, answer)


def test_a_reply_stands_once_a_later_transcript_shows_the_agent_spoke_after_it() -> None:
    asked = [GREETING, user("My name is Jane Doe")]
    ledger = replied(fresh(), asked, 1)
    assert ledger.open is not None and ledger.conversation.booking.stage == "name"
    heard = [*asked, agent(ledger.open.text), user("March 3rd, 1980")]
    before = ledger
    ledger, standing = settle(ledger, heard, newer_request=True)
    assert standing is not None and ledger.open is None
    assert ledger.conversation.booking.slots == {"name": "Jane Doe"} and ledger.recorded == 3
    assert turns_of(before, standing) == [
        ("user", "My name is Jane Doe", 1),
        ("agent", "Thanks, Jane. What is your date of birth?", 2),
    ]
    (progress,) = standing.step.events
    assert isinstance(progress, SessionProgressed)


def test_a_reply_a_newer_request_superseded_is_dropped_and_the_next_starts_over() -> None:
    """Retell's example: "My name is Mike" is answered but not spoken; "My name is Mike
    Trump" is answered from the name stage again."""
    ledger = replied(fresh(), [GREETING, user("My name is Mike")], 1)
    grown = [GREETING, user("My name is Mike Trump")]
    ledger, standing = settle(ledger, grown, newer_request=True)
    assert standing is None and ledger.open is None
    ledger = replied(ledger, grown, 2)
    assert ledger.open is not None and ledger.open.text.startswith("Thanks, Mike.")
    assert ledger.open.step.conversation.booking.slots == {"name": "Mike Trump"}


def test_an_update_that_does_not_show_the_reply_leaves_it_open() -> None:
    ledger = replied(fresh(), [GREETING, user("My name is Mike")], 1)
    still = [GREETING, user("My name is Mike Trump")]
    after, standing = settle(ledger, still, newer_request=False)
    assert standing is None and after.open == ledger.open


def test_a_reply_not_sent_does_not_stand_and_a_hang_up_keeps_only_a_sent_one() -> None:
    transcript = [GREETING, user("My name is Jane Doe")]
    words = caller_words(transcript)
    step = hear(fresh().conversation, words, today=TODAY, new_session_id="s-new")
    unsent, answer = answer_for(
        fresh(), transcript, response_id=1, step=step, text=step.text, heard=words
    )
    heard = [*transcript, agent(answer.text), user("March 3rd, 1980")]
    assert settle(unsent, heard, newer_request=True)[1] is None
    assert hung_up(unsent)[1] is None
    ledger, standing = hung_up(sent(unsent, answer))
    assert standing is not None and ledger.conversation.booking.stage == "date_of_birth"


def test_a_reminder_records_only_the_agent_and_empty_words_record_no_user_turn() -> None:
    transcript = [GREETING]
    step = Step(fresh().conversation, "Are you still there?")
    ledger, answer = answer_for(
        fresh(), transcript, response_id=1, step=step, text=step.text, heard=""
    )
    assert turns_of(ledger, answer) == [("agent", "Are you still there?", 1)]


def test_a_call_taken_over_counts_what_came_before_the_callers_words_as_recorded() -> None:
    transcript = [GREETING, user("My name is Jane Doe"), agent("Thanks."), user("March 3, 1980")]
    ledger = Ledger(fresh().conversation, recorded=None)
    step = hear(ledger.conversation, "March 3, 1980", today=TODAY, new_session_id="s-new")
    ledger, answer = answer_for(
        ledger, transcript, response_id=1, step=step, text=step.text, heard="March 3, 1980"
    )
    assert ledger.recorded == 3
    assert [index for _, _, index in turns_of(ledger, answer)] == [3, 4]


def test_completion_and_a_failed_identity_check_stand_at_once() -> None:
    conversation, _, _ = call(dropped_at_the_date(), "c2")
    failed = hear(conversation, "July 4th, 1975", today=TODAY, new_session_id="s-new")
    assert stands_at_once(failed)
    progress = hear(fresh().conversation, "My name is Jane Doe", today=TODAY, new_session_id="x")
    assert not stands_at_once(progress)


def test_a_call_without_a_number_books_without_session_events() -> None:
    step = begin_without_session("web1")
    conversation = step.conversation
    assert "full name" in step.text.lower() and conversation.session_id is None
    for words in ("My name is Jane Doe", "March 3rd, 1980", "next Tuesday", "10am"):
        step = hear(conversation, words, today=TODAY, new_session_id="unused")
        assert step.events == ()
        conversation = step.conversation
    conversation = hear(
        conversation, "Main Street Clinic", today=TODAY, new_session_id="x"
    ).conversation
    done = hear(conversation, "yes", today=TODAY, new_session_id="unused")
    assert done.end_call and done.events == () and "booked" in done.text.lower()
    assert hang_up(conversation, reason="socket_closed", now=NOW, expiry=EXPIRY) == ()


def test_a_reconnect_says_nothing_and_goes_on_in_the_same_session() -> None:
    conversation, _, state = call(None, "c1")
    conversation, _, state, _ = say(conversation, state, "My name is Jane Doe")
    state = fold(state, hang_up(conversation, reason="socket_closed_1006", now=NOW, expiry=EXPIRY))
    again, text, state = call(state, "c1")
    assert text == "" and again.mode == "booking"
    assert again.session_id == conversation.session_id and again.booking.stage == "date_of_birth"
    assert state is not None and state.status == "active" and state.call_refs == ("c1",)


def test_a_booking_confirmed_but_unheard_is_said_again_when_asked() -> None:
    conversation, _, state = call(dropped_at_the_date(), "c2")
    for words in ("3 March 1980", "next Tuesday", "10am", "Main Street Clinic"):
        conversation, _, state, _ = say(conversation, state, words)
    done = hear(conversation, "yes", today=TODAY, new_session_id="unused")
    again = hear(done.conversation, "yes", today=TODAY, new_session_id="unused")
    assert again.end_call and "booked" in again.text.lower() and again.events == ()
