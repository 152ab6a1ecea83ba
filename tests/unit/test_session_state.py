"""The session fold and the start-of-call decision (pure)."""

from __future__ import annotations

import datetime as dt

from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.sessions import (
    SessionDropped,
    SessionExpired,
    SessionIdentityFailed,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
)
from ringlog.sessions.opening import open_call
from ringlog.sessions.state import SessionState, fold

PHONE = "+14155550123"
T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
EXPIRY = dt.timedelta(hours=24)


def envelopes(*events: EventModel, start: dt.datetime = T0) -> list[Envelope]:
    return [
        Envelope.new(e, source="test", occurred_at=start + dt.timedelta(seconds=i))
        for i, e in enumerate(events)
    ]


def started(session: str = "s1", call: str = "c1") -> SessionStarted:
    return SessionStarted(session_id=session, phone=PHONE, call_ref=call, stage="name")


def dropped(session: str = "s1", call: str = "c1", stage: str = "date") -> SessionDropped:
    return SessionDropped(
        session_id=session,
        phone=PHONE,
        call_ref=call,
        stage=stage,
        reason="socket_closed",
        expires_at=T0 + EXPIRY,
    )


def progressed(slots: dict[str, str], stage: str, session: str = "s1") -> SessionProgressed:
    return SessionProgressed(
        session_id=session, phone=PHONE, call_ref="c1", stage=stage, slots=slots
    )


def test_a_drop_keeps_the_session_open_with_its_stage_slots_and_expiry() -> None:
    state = fold(
        envelopes(
            started(),
            progressed({"name": "Jane Doe"}, "date_of_birth"),
            progressed({"date_of_birth": "1980-03-03"}, "date"),
            dropped(),
        )
    )[PHONE]
    assert state.status == "dropped" and state.open
    assert state.stage == "date"
    assert dict(state.slots) == {"name": "Jane Doe", "date_of_birth": "1980-03-03"}
    assert state.active_call is None and state.expires_at == T0 + EXPIRY


def test_a_resume_adds_the_call_once_and_makes_it_active() -> None:
    resumed = SessionResumed(session_id="s1", phone=PHONE, call_ref="c2", stage="date")
    state = fold(envelopes(started(), dropped(), resumed, resumed))[PHONE]
    assert state.call_refs == ("c1", "c2")
    assert state.status == "active" and state.active_call == "c2"


def test_events_of_an_older_session_do_not_touch_the_current_one() -> None:
    failed = SessionIdentityFailed(session_id="s1", phone=PHONE, call_ref="c2", fact="dob")
    state = fold(
        envelopes(started(), dropped(), failed, started("s2", "c2"), progressed({"x": "y"}, "z"))
    )[PHONE]
    assert state.session_id == "s2" and state.stage == "name" and dict(state.slots) == {}


def test_identity_failure_and_expiry_close_the_session() -> None:
    failed = SessionIdentityFailed(session_id="s1", phone=PHONE, call_ref="c2", fact="dob")
    assert not fold(envelopes(started(), dropped(), failed))[PHONE].open
    expired = SessionExpired(session_id="s1", phone=PHONE)
    assert fold(envelopes(started(), dropped(), expired))[PHONE].status == "expired"


def test_the_cache_form_round_trips() -> None:
    state = fold(
        envelopes(started(), progressed({"name": "Jane Doe"}, "date_of_birth"), dropped())
    )[PHONE]
    assert SessionState.from_json(state.to_json()) == state


def test_a_first_call_starts_a_session() -> None:
    opening = open_call(
        None, phone=PHONE, call_ref="c1", now=T0, expiry=EXPIRY, busy=False, new_session_id="s1"
    )
    assert opening.kind == "fresh" and opening.session_id == "s1"
    assert [type(e) for e in opening.events] == [SessionStarted]


def test_a_callback_to_an_open_session_resumes_it_at_its_stage() -> None:
    current = fold(envelopes(started(), dropped()))[PHONE]
    opening = open_call(
        current, phone=PHONE, call_ref="c2", now=T0, expiry=EXPIRY, busy=False, new_session_id="s2"
    )
    assert opening.kind == "resume" and opening.session_id == "s1"
    (resumed,) = opening.events
    assert isinstance(resumed, SessionResumed)
    assert resumed.stage == "date" and resumed.previous_call_refs == ("c1",)


def test_a_callback_after_expiry_expires_the_old_session_and_starts_fresh() -> None:
    current = fold(envelopes(started(), dropped()))[PHONE]
    late = T0 + EXPIRY + dt.timedelta(seconds=1)
    opening = open_call(
        current,
        phone=PHONE,
        call_ref="c2",
        now=late,
        expiry=EXPIRY,
        busy=False,
        new_session_id="s2",
    )
    assert opening.kind == "fresh"
    assert [type(e) for e in opening.events] == [SessionExpired, SessionStarted]


def test_a_second_simultaneous_call_is_busy_and_appends_nothing() -> None:
    current = fold(envelopes(started()))[PHONE]
    opening = open_call(
        current, phone=PHONE, call_ref="c2", now=T0, expiry=EXPIRY, busy=True, new_session_id="s2"
    )
    assert opening.kind == "busy" and opening.events == ()


def test_an_active_session_whose_call_vanished_expires_after_its_last_event() -> None:
    current = fold(envelopes(started()))[PHONE]
    assert not current.expired_at(T0 + EXPIRY - dt.timedelta(seconds=1), EXPIRY)
    assert current.expired_at(T0 + EXPIRY, EXPIRY)


def test_the_same_call_opening_again_is_a_reconnect_that_undoes_its_drop() -> None:
    current = fold(envelopes(started(), dropped()))[PHONE]
    opening = open_call(
        current, phone=PHONE, call_ref="c1", now=T0, expiry=EXPIRY, busy=False, new_session_id="s2"
    )
    assert opening.kind == "reconnect" and opening.session_id == "s1"
    (resumed,) = opening.events
    assert isinstance(resumed, SessionResumed) and resumed.call_ref == "c1"
    assert resumed.previous_call_refs == ()


def test_a_reconnect_while_the_session_is_active_appends_nothing_even_past_expiry() -> None:
    current = fold(envelopes(started()))[PHONE]
    late = T0 + EXPIRY + dt.timedelta(seconds=1)
    opening = open_call(
        current,
        phone=PHONE,
        call_ref="c1",
        now=late,
        expiry=EXPIRY,
        busy=False,
        new_session_id="s2",
    )
    assert opening.kind == "reconnect" and opening.events == ()
