"""The booking dialog's slot parsers: names, dates, times, sites and yes/no answers."""

from __future__ import annotations

from datetime import date, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringlog.dialog.extract import (
    SITES,
    parse_date,
    parse_date_of_birth,
    parse_name,
    parse_site,
    parse_time,
    parse_yes_no,
)

MONDAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("utterance", "expected"),
    [
        ("My name is Jane Doe", "Jane Doe"),
        ("This is Jane Doe", "Jane Doe"),
        ("It's Jane Doe.", "Jane Doe"),
        ("it\u2019s jane doe", "Jane Doe"),
        ("Jane Doe", "Jane Doe"),
        ("jane doe", "Jane Doe"),
        ("JANE DOE", "Jane Doe"),
        ("Hi, my name's mary-jane o'brien, thanks", "Mary-Jane O'Brien"),
        ("Angus McDonald", "Angus McDonald"),
        ("José Núñez", "José Núñez"),
    ],
)
def test_names_are_found_and_title_cased(utterance: str, expected: str) -> None:
    assert parse_name(utterance) == expected


@pytest.mark.parametrize(
    "utterance",
    ["", "   ", "A", "J.", "12345", "Jane 2", "I don't know", "hello", "what?", "a b c d e f"],
)
def test_things_that_are_not_names_are_refused(utterance: str) -> None:
    assert parse_name(utterance) is None


@pytest.mark.parametrize(
    "utterance",
    [
        "March 3rd, 1980",
        "3 March 1980",
        "1980-03-03",
        "03/03/1980",
        "3/3/80",
        "my date of birth is March 3, 1980",
        "I was born on the 3rd of March 1980",
    ],
)
def test_dates_of_birth_in_many_forms(utterance: str) -> None:
    assert parse_date_of_birth(utterance, MONDAY) == date(1980, 3, 3)


@pytest.mark.parametrize("utterance", ["", "March 3rd", "purple", "1980", "next Tuesday"])
def test_a_date_of_birth_needs_day_month_and_year(utterance: str) -> None:
    assert parse_date_of_birth(utterance, MONDAY) is None


@pytest.mark.parametrize(
    ("utterance", "expected"),
    [
        # weekday phrases mean the first such weekday strictly after today
        ("next Tuesday", date(2026, 11, 24)),
        ("this Friday", date(2026, 11, 27)),
        ("on Wednesday please", date(2026, 11, 25)),
        ("Monday", date(2026, 11, 30)),
        ("next Monday", date(2026, 11, 30)),
        ("Tuesday next week", date(2026, 12, 1)),
        ("last Friday", date(2026, 11, 20)),
        ("tomorrow", date(2026, 11, 24)),
        ("the day after tomorrow", date(2026, 11, 25)),
        ("December 3rd", date(2026, 12, 3)),
        ("dec. 3", date(2026, 12, 3)),
        ("the 3rd", date(2026, 12, 3)),
        ("the third", date(2026, 12, 3)),
        ("the 25th", date(2026, 11, 25)),
        ("11/24", date(2026, 11, 24)),
        ("2026-12-02", date(2026, 12, 2)),
        ("in two weeks", date(2026, 12, 7)),
        ("I'd like December 1st at 10am at Riverside", date(2026, 12, 1)),
    ],
)
def test_appointment_dates_prefer_the_future(utterance: str, expected: date) -> None:
    assert parse_date(utterance, MONDAY) == expected


def test_next_weekday_said_on_that_weekday_is_a_week_later() -> None:
    tuesday = date(2026, 11, 24)
    assert parse_date("next Tuesday", tuesday) == date(2026, 12, 1)


def test_a_day_of_month_already_past_means_next_month() -> None:
    assert parse_date("the 20th", MONDAY) == date(2026, 12, 20)
    assert parse_date("the 31st", MONDAY) == date(2026, 12, 31)


@pytest.mark.parametrize("utterance", ["", "10am", "noon", "at the 10 o'clock slot", "riverside"])
def test_times_and_words_are_not_dates(utterance: str) -> None:
    assert parse_date(utterance, MONDAY) is None


@pytest.mark.parametrize(
    ("utterance", "expected"),
    [
        ("10am", time(10, 0)),
        ("10 a.m.", time(10, 0)),
        ("10:30 am", time(10, 30)),
        ("2 pm", time(14, 0)),
        ("12pm", time(12, 0)),
        ("14:00", time(14, 0)),
        ("2:30", time(14, 30)),  # an hour of 1-8 without am/pm is the afternoon
        ("noon", time(12, 0)),
        ("morning", time(9, 0)),
        ("tomorrow afternoon", time(14, 0)),
        ("3 o'clock", time(15, 0)),
        ("half past 2", time(14, 30)),
        ("10 in the morning", time(10, 0)),
        ("ten thirty am", time(10, 30)),
        ("7pm", time(19, 0)),  # parsed; the policy refuses it
    ],
)
def test_times(utterance: str, expected: time) -> None:
    assert parse_time(utterance) == expected


def test_a_lone_number_is_a_time_only_when_loose() -> None:
    assert parse_time("December 3") is None
    assert parse_time("good morning") is None
    assert parse_time("at 10 please", loose=True) == time(10, 0)
    assert parse_time("2", loose=True) == time(14, 0)
    assert parse_time("between 2 and 3", loose=True) is None


@pytest.mark.parametrize(
    ("utterance", "expected"),
    [
        ("main street", SITES[0]),
        ("The MAIN STREET CLINIC please", SITES[0]),
        ("riverside", SITES[1]),
        ("the pharmacy", SITES[1]),
        ("Eastside", SITES[2]),
        ("east side health centre", SITES[2]),
    ],
)
def test_sites_by_distinctive_word(utterance: str, expected: str) -> None:
    assert parse_site(utterance) == expected


def test_site_ordinals_only_when_loose_and_ambiguity_is_refused() -> None:
    assert parse_site("the second one") is None
    assert parse_site("the second one", loose=True) == SITES[1]
    assert parse_site("main street or riverside") is None
    assert parse_site("the clinic") is None


@pytest.mark.parametrize(
    ("utterance", "expected"),
    [
        ("yes", "yes"),
        ("Yeah, book it", "yes"),
        ("that's correct", "yes"),
        ("please do", "yes"),
        ("no", "no"),
        ("no, change the time", "no"),
        ("that's not right", "no"),
        ("hmm", None),
        ("", None),
    ],
)
def test_yes_no(utterance: str, expected: str | None) -> None:
    assert parse_yes_no(utterance) == expected


@given(st.text())
def test_parsers_never_raise(text: str) -> None:
    parse_name(text)
    parse_date(text, MONDAY)
    parse_date_of_birth(text, MONDAY)
    parse_time(text, loose=True)
    parse_site(text, loose=True)
    parse_yes_no(text)
