"""The flu-shot booking dialog policy: stages, re-prompts, refusals, resume and identity."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringlog.dialog import (
    SITES,
    STAGES,
    Booking,
    Stage,
    after_identity,
    check_identity,
    greeting,
    identity_fact,
    is_complete,
    needs_identity_check,
    question,
    reminder,
    respond,
    stage_phrase,
    welcome_back,
)

MONDAY = date(2026, 11, 23)
KEYWORDS: dict[Stage, str] = {
    "name": "full name",
    "date_of_birth": "date of birth",
    "date": "which day",
    "time": "what time",
    "site": "which site",
    "confirm": "shall i book",
}
FULL = {
    "name": "Jane Doe",
    "date_of_birth": "1980-03-03",
    "date": "2026-11-24",
    "time": "10:00",
    "site": "Main Street Clinic",
}
SLOT_ORDER = ("name", "date_of_birth", "date", "time", "site")


def at(stage: Stage, **extra: str) -> Booking:
    """A consistent booking at ``stage``: every slot of an earlier stage filled from FULL."""
    index = STAGES.index(stage)
    slots = {k: FULL[k] for k in SLOT_ORDER[:index]}
    return Booking(stage=stage, slots={**slots, **extra})


def test_stages_in_order() -> None:
    assert STAGES == ("name", "date_of_birth", "date", "time", "site", "confirm", "done")
    assert SITES == ("Main Street Clinic", "Riverside Pharmacy", "Eastside Health Center")
    assert Booking() == Booking(stage="name", slots={})


def test_happy_dialog_from_greeting_to_done() -> None:
    booking = Booking()
    opening = greeting(booking)
    assert "flu shot" in opening.lower() and "full name" in opening.lower()
    turns = [
        ("My name is jane doe", "date_of_birth", "date of birth"),
        ("March 3rd, 1980", "date", "which day"),
        ("next Tuesday", "time", "what time"),
        ("10am", "site", "which site"),
        ("Main Street please", "confirm", "shall i book"),
    ]
    for utterance, stage, keyword in turns:
        reply = respond(booking, utterance, MONDAY)
        assert reply.understood and not reply.end_call
        assert reply.booking.stage == stage
        assert keyword in reply.text.lower()
        booking = reply.booking
    assert dict(booking.slots) == FULL
    assert question(booking) == (
        "So that's a flu shot for Jane Doe on Tuesday, November 24 at 10:00 AM at "
        "Main Street Clinic. Shall I book it?"
    )
    final = respond(booking, "yes please", MONDAY)
    assert final.end_call and final.understood
    assert is_complete(final.booking) and final.booking.stage == "done"
    assert "booked" in final.text.lower()
    assert "Tuesday, November 24" in final.text and "10:00 AM" in final.text
    assert dict(final.booking.slots) == FULL


def test_one_utterance_fills_date_time_and_site() -> None:
    reply = respond(at("date"), "I'd like next Tuesday at 10am at Main Street Clinic", MONDAY)
    assert reply.booking.stage == "confirm"
    assert dict(reply.booking.slots) == FULL
    assert "shall i book" in reply.text.lower()


def test_a_later_slot_given_early_is_kept_and_never_asked_again() -> None:
    reply = respond(at("date"), "riverside, 2pm", MONDAY)
    assert reply.booking.stage == "date"
    assert reply.booking.slots["site"] == "Riverside Pharmacy"
    assert reply.booking.slots["time"] == "14:00"
    nxt = respond(reply.booking, "Thursday", MONDAY)
    assert nxt.booking.stage == "confirm"
    assert nxt.booking.slots["date"] == "2026-11-26"


def test_name_and_date_of_birth_are_only_taken_at_their_own_stage() -> None:
    reply = respond(at("name"), "Jane Doe", MONDAY)
    assert "date" not in reply.booking.slots
    reply = respond(at("date"), "My name is John Smith, born March 3rd 1980", MONDAY)
    assert reply.booking.slots["name"] == "Jane Doe"


@pytest.mark.parametrize("stage", ["name", "date_of_birth", "date", "time", "site", "confirm"])
@pytest.mark.parametrize("garbage", ["", "   ", "zxcv 1234 ###", "???", "hmm", "\x00\ud800"])
def test_garbage_is_re_prompted_without_change(stage: Stage, garbage: str) -> None:
    booking = at(stage)
    reply = respond(booking, garbage, MONDAY)
    assert not reply.understood and not reply.end_call
    assert reply.booking == booking
    assert reply.text.startswith("Sorry, I didn't catch that.")
    assert reply.text.endswith(question(booking))


@pytest.mark.parametrize(
    ("utterance", "reason"),
    [
        ("Saturday", "closed on weekends"),
        ("this Sunday", "closed on weekends"),
        ("yesterday", "from tomorrow"),
        ("today", "from tomorrow"),
        ("November 20, 2026", "from tomorrow"),
        ("January 25th", "60 days"),
    ],
)
def test_unbookable_dates_are_refused_with_a_reason(utterance: str, reason: str) -> None:
    booking = at("date")
    reply = respond(booking, utterance, MONDAY)
    assert reply.understood
    assert reply.booking == booking
    assert reason in reply.text
    assert "which day" in reply.text.lower()


def test_sixty_days_ahead_is_the_last_bookable_day() -> None:
    reply = respond(at("date"), "January 22nd", MONDAY)  # a Friday, today + 60
    assert reply.booking.slots["date"] == "2027-01-22"


@pytest.mark.parametrize("utterance", ["7pm", "8am", "4:45 pm", "5pm", "midnight 0:00"])
def test_out_of_hours_times_are_refused(utterance: str) -> None:
    booking = at("time")
    reply = respond(booking, utterance, MONDAY)
    assert reply.understood
    assert reply.booking == booking
    assert "9:00 AM" in reply.text and "4:30 PM" in reply.text
    assert "what time" in reply.text.lower()


@pytest.mark.parametrize(
    ("utterance", "expected"),
    [("9am", "09:00"), ("4:30 pm", "16:30"), ("noon", "12:00"), ("afternoon", "14:00")],
)
def test_times_within_hours_are_taken(utterance: str, expected: str) -> None:
    assert respond(at("time"), utterance, MONDAY).booking.slots["time"] == expected


def test_a_refused_date_does_not_lose_a_good_time() -> None:
    reply = respond(at("date"), "Saturday at 10am", MONDAY)
    assert reply.booking.stage == "date"
    assert reply.booking.slots["time"] == "10:00"
    assert "closed on weekends" in reply.text


@pytest.mark.parametrize("utterance", ["March 3rd, 2030", "January 1, 1899"])
def test_impossible_dates_of_birth_are_refused(utterance: str) -> None:
    booking = at("date_of_birth")
    reply = respond(booking, utterance, MONDAY)
    assert reply.booking == booking
    assert "date of birth" in reply.text.lower()


def test_no_at_confirm_goes_back_to_the_date_keeping_name_and_birth_date() -> None:
    reply = respond(at("confirm", **FULL), "No, I need to change that", MONDAY)
    assert reply.booking.stage == "date"
    assert dict(reply.booking.slots) == {"name": "Jane Doe", "date_of_birth": "1980-03-03"}
    assert "which day" in reply.text.lower()
    assert not reply.end_call


def test_confirm_with_missing_slots_asks_for_them_instead_of_booking() -> None:
    booking = Booking(stage="confirm", slots={"name": "Jane Doe", "date_of_birth": "1980-03-03"})
    reply = respond(booking, "yes", MONDAY)
    assert reply.booking.stage == "date" and not reply.end_call


def test_done_ends_the_call_without_change() -> None:
    booking = Booking(stage="done", slots=FULL)
    reply = respond(booking, "hello?", MONDAY)
    assert reply.end_call and reply.booking == booking


def test_questions_have_their_keyword_and_no_other() -> None:
    for stage, keyword in KEYWORDS.items():
        text = question(at(stage, **FULL)).lower()
        assert keyword in text
        others = [k for s, k in KEYWORDS.items() if s != stage]
        assert not [k for k in others if k in text], stage
        assert keyword in reminder(at(stage)).lower()


def test_stage_phrases() -> None:
    assert [stage_phrase(s) for s in STAGES] == [
        "confirming your name",
        "confirming your date of birth",
        "selecting a date",
        "choosing a time",
        "choosing a site",
        "confirming the appointment",
        "done",
    ]


def test_welcome_back_asks_for_identity_when_a_birth_date_is_known() -> None:
    text = welcome_back(at("time"))
    assert text.startswith("Welcome back! You were booking a flu shot. We were at choosing a time.")
    assert text.endswith("please confirm your date of birth.")
    assert needs_identity_check(at("time")) and identity_fact(at("time")) == "date_of_birth"


def test_without_a_birth_date_on_file_the_name_is_asked_again() -> None:
    text = welcome_back(at("date_of_birth"))
    assert identity_fact(at("date_of_birth")) == "name"
    assert text.endswith("Before we go on, please tell me your full name.")
    assert "Jane" not in text
    fresh = welcome_back(at("name"))  # nothing on file: just the stage's question
    assert not needs_identity_check(at("name")) and identity_fact(at("name")) is None
    assert fresh.endswith(question(at("name")))


names = st.from_regex(r"[A-Z][a-z]{3,9}", fullmatch=True)


@given(
    first=names,
    last=names,
    dob=st.dates(date(1901, 1, 1), date(2020, 12, 31)),
    day=st.dates(date(2026, 1, 1), date(2027, 12, 31)),
    hour=st.integers(9, 16),
    minute=st.sampled_from([0, 15, 30, 45]),
    site=st.sampled_from(SITES),
    stage=st.sampled_from(STAGES),
)
def test_welcome_back_never_reveals_a_slot_value(
    first: str, last: str, dob: date, day: date, hour: int, minute: int, site: str, stage: Stage
) -> None:
    values = {
        "name": f"{first} {last}",
        "date_of_birth": dob.isoformat(),
        "date": day.isoformat(),
        "time": f"{hour:02d}:{minute:02d}",
        "site": site,
    }
    known = SLOT_ORDER[: STAGES.index(stage)]  # every slot before the stage (all at confirm/done)
    text = welcome_back(Booking(stage=stage, slots={k: values[k] for k in known}))
    lowered = text.lower()
    assert "welcome back" in lowered and "booking a flu shot" in lowered and "we were at" in lowered
    assert f"we were at {stage_phrase(stage)}." in lowered
    assert not any(ch.isdigit() for ch in text)  # no date, time or birth date in any written form
    assert first not in text and last not in text
    if "site" in known:
        assert site.split()[0].lower() not in lowered
    if "date" in known:
        assert f"{day:%B} {day.day}" not in text and f"{day:%A}" not in text


def test_check_identity() -> None:
    booking = at("site")
    assert check_identity(booking, "March 3rd, 1980", MONDAY) == "confirmed"
    assert check_identity(booking, "it's 03/03/1980", MONDAY) == "confirmed"
    assert check_identity(booking, "March 4th, 1980", MONDAY) == "wrong"
    assert check_identity(booking, "I don't remember", MONDAY) == "unclear"
    assert check_identity(at("date_of_birth"), "March 3rd, 1980", MONDAY) == "unclear"
    assert check_identity(at("name"), "Jane Doe", MONDAY) == "unclear"


@pytest.mark.parametrize(
    ("said", "verdict"),
    [
        ("My name is Jane Doe", "confirmed"),
        ("jane doe", "confirmed"),
        ("It's Jane Doe.", "confirmed"),
        ("Jane", "unclear"),
        ("I don't know", "unclear"),
        ("John Smith", "wrong"),
        ("Jane Smith", "wrong"),
        ("Jane Doe Smith", "wrong"),
    ],
)
def test_check_identity_by_name_when_no_birth_date_is_on_file(said: str, verdict: str) -> None:
    assert check_identity(at("date_of_birth"), said, MONDAY) == verdict


def test_after_identity_thanks_by_first_name_and_recaps() -> None:
    text = after_identity(at("site"))
    assert text.startswith("Thank you, Jane.")
    assert "Tuesday, November 24" in text and "10:00 AM" in text
    assert text.endswith(question(at("site")))
    bare = after_identity(at("date"))
    assert bare == f"Thank you, Jane. {question(at('date'))}"


def test_booking_is_immutable_and_copies_its_slots() -> None:
    source = {"name": "Jane Doe"}
    booking = Booking(stage="date_of_birth", slots=source)
    source["name"] = "Someone Else"
    assert booking.slots["name"] == "Jane Doe"
    with pytest.raises(dataclasses.FrozenInstanceError):
        booking.stage = "date"  # type: ignore[misc]
    before = dict(booking.slots)
    respond(booking, "March 3rd, 1980", MONDAY)
    assert dict(booking.slots) == before
    assert hash(booking) == hash(Booking(stage="date_of_birth", slots={"name": "Jane Doe"}))
    with pytest.raises(ValueError, match="stage"):
        Booking(stage="nowhere")  # type: ignore[arg-type]


@given(stage=st.sampled_from(STAGES), utterance=st.text())
def test_respond_never_raises(stage: Stage, utterance: str) -> None:
    booking = at(stage, **(FULL if stage in ("confirm", "done") else {}))
    reply = respond(booking, utterance, MONDAY)
    assert reply.text
    assert reply.booking.stage in STAGES
