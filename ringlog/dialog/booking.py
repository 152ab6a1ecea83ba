"""The flu-shot booking dialog as a pure policy: ``(booking, utterance, today) -> reply``.

A ``Booking`` walks the stages name -> date_of_birth -> date -> time -> site -> confirm -> done.
``respond`` fills the slot of the current stage (and, from the date stage on, any other missing
date/time/site it can parse from the same utterance), then asks for the first slot still
missing. Every question contains a fixed keyword phrase (``"full name"``, ``"date of birth"``,
``"which day"``, ``"what time"``, ``"which site"``, ``"shall i book"``) that scripted callers
recognise. No I/O, no clock, no randomness: ``today`` is always a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Literal

from ringlog.dialog.extract import (
    SITES,
    parse_date,
    parse_date_of_birth,
    parse_name,
    parse_site,
    parse_time,
    parse_yes_no,
)

__all__ = [
    "SITES",
    "STAGES",
    "Booking",
    "Reply",
    "Stage",
    "after_identity",
    "check_identity",
    "greeting",
    "identity_fact",
    "identity_question",
    "is_complete",
    "needs_identity_check",
    "question",
    "reminder",
    "respond",
    "stage_phrase",
    "welcome_back",
]

Stage = Literal["name", "date_of_birth", "date", "time", "site", "confirm", "done"]
STAGES: tuple[Stage, ...] = ("name", "date_of_birth", "date", "time", "site", "confirm", "done")
SLOT_STAGES: tuple[Stage, ...] = ("name", "date_of_birth", "date", "time", "site")
"""The stages that each fill the slot of the same name."""

OPENING_HOUR, LAST_SLOT = time(9, 0), time(16, 30)
MAX_DAYS_AHEAD = 60


@dataclass(frozen=True)
class Booking:
    """Where a booking dialog stands: the current stage and the slots known so far.

    ``slots`` keys: ``name``, ``date_of_birth`` (YYYY-MM-DD), ``date`` (YYYY-MM-DD), ``time``
    (HH:MM, 24 h), ``site`` (one of ``SITES``). The mapping is copied on construction and never
    mutated; every change makes a new ``Booking``. An unknown stage raises ``ValueError``.
    """

    stage: Stage = "name"
    slots: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown booking stage {self.stage!r}")
        object.__setattr__(self, "slots", dict(self.slots))

    def __hash__(self) -> int:
        return hash((self.stage, frozenset(self.slots.items())))


@dataclass(frozen=True)
class Reply:
    """One agent turn: what to say, the booking after it, whether to hang up, and whether
    the caller's words were understood (``False`` for a re-prompt)."""

    text: str
    booking: Booking
    end_call: bool = False
    understood: bool = True


_PHRASES: Mapping[Stage, str] = {
    "name": "confirming your name",
    "date_of_birth": "confirming your date of birth",
    "date": "selecting a date",
    "time": "choosing a time",
    "site": "choosing a site",
    "confirm": "confirming the appointment",
    "done": "done",
}
_QUESTIONS: Mapping[Stage, str] = {
    "name": "May I have your full name, please?",
    "date_of_birth": "What is your date of birth?",
    "date": "Which day would you like to come in? We're open Monday to Friday.",
    "time": "What time would you like?",
    "site": f"Which site would you prefer: {SITES[0]}, {SITES[1]}, or {SITES[2]}?",
    "confirm": "Shall I book it?",
    "done": "Your flu shot is booked. Thank you for calling!",
}
_INTRO = "Hello, this is the Wellness Clinic booking line. I can help you book a flu shot."
_SORRY = "Sorry, I didn't catch that."


# ---------------------------------------------------------------- formatting


def _say_date(iso: str) -> str:
    """ "2026-11-24" -> "Tuesday, November 24" (unparseable values are returned as is)."""
    try:
        d = date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{d:%A}, {d:%B} {d.day}"


def _say_time(hhmm: str) -> str:
    """ "14:30" -> "2:30 PM", "10:00" -> "10:00 AM" (unparseable values are returned as is)."""
    try:
        t = time.fromisoformat(hhmm)
    except ValueError:
        return hhmm
    return f"{(t.hour - 1) % 12 + 1}:{t.minute:02d} {'AM' if t.hour < 12 else 'PM'}"


def _appointment(slots: Mapping[str, str]) -> str:
    """The known parts of the appointment: "Tuesday, November 24 at 10:00 AM at Main Street
    Clinic" (missing parts are left out; empty when none is known)."""
    parts = []
    if "date" in slots:
        parts.append(_say_date(slots["date"]))
    if "time" in slots:
        parts.append(_say_time(slots["time"]))
    if "site" in slots:
        parts.append(slots["site"])
    return " at ".join(parts)


def _first_name(slots: Mapping[str, str]) -> str:
    """The first word of the name slot, or empty."""
    words = slots.get("name", "").split()
    return words[0] if words else ""


# ---------------------------------------------------------------- questions


def stage_phrase(stage: Stage) -> str:
    """Where the dialog stands, for "We were at ...": e.g. "selecting a date"."""
    return _PHRASES[stage]


def question(booking: Booking) -> str:
    """The question for the current stage. It contains the stage's keyword phrase and no other
    stage's. At confirm it first reads back everything known ("So that's a flu shot for Jane
    Doe on Tuesday, November 24 at 10:00 AM at Main Street Clinic. Shall I book it?")."""
    if booking.stage != "confirm":
        return _QUESTIONS[booking.stage]
    readback = "So that's a flu shot"
    if name := booking.slots.get("name"):
        readback += f" for {name}"
    if booking.slots.get("date"):
        readback += " on"
    if appointment := _appointment(booking.slots):
        readback += f" {appointment}" if booking.slots.get("date") else f" at {appointment}"
    return f"{readback}. {_QUESTIONS['confirm']}"


def greeting(booking: Booking) -> str:
    """The first words of a fresh call: the introduction, then the current stage's question."""
    return f"{_INTRO} {question(booking)}"


def reminder(booking: Booking) -> str:
    """After a silence: a short nudge, then the current stage's question again."""
    return f"Are you still there? {question(booking)}"


def welcome_back(booking: Booking) -> str:
    """The greeting of a resumed call. It names the stage but never a slot value (no name,
    date of birth, date, time or site): a caller must prove who they are first. Ends with
    :func:`identity_question` when a detail is on file to confirm, else the stage's question."""
    text = f"Welcome back! You were booking a flu shot. We were at {stage_phrase(booking.stage)}."
    if needs_identity_check(booking):
        return f"{text} Before we go on, {identity_question(booking)}"
    return f"{text} {question(booking)}"


IdentityFact = Literal["date_of_birth", "name"]


def identity_fact(booking: Booking) -> IdentityFact | None:
    """The detail a returning caller must repeat before anything personal is said back: the
    date of birth when one is on file, else the name; ``None`` when neither is (nothing is on
    file to read back, so the booking simply asks again)."""
    if booking.slots.get("date_of_birth"):
        return "date_of_birth"
    if booking.slots.get("name"):
        return "name"
    return None


def needs_identity_check(booking: Booking) -> bool:
    """True when a detail is on file (see :func:`identity_fact`), so a returning caller must
    repeat it."""
    return identity_fact(booking) is not None


def identity_question(booking: Booking) -> str:
    """The request to repeat the detail on file (it names the detail, never its value)."""
    if identity_fact(booking) == "name":
        return "please tell me your full name."
    return "please confirm your date of birth."


def check_identity(
    booking: Booking, utterance: str, today: date
) -> Literal["confirmed", "wrong", "unclear"]:
    """Compare what the caller said to the detail on file (:func:`identity_fact`).

    A date of birth is "confirmed" when the same date is heard, "wrong" for another date. A
    name is "confirmed" when the same words are heard (case and punctuation aside), "unclear"
    when only some of them are (e.g. the first name alone), "wrong" otherwise. "unclear" too
    when nothing usable was heard or nothing is on file.
    """
    fact = identity_fact(booking)
    if fact == "date_of_birth":
        heard = parse_date_of_birth(utterance, today)
        if heard is None:
            return "unclear"
        return "confirmed" if heard.isoformat() == booking.slots["date_of_birth"] else "wrong"
    if fact == "name":
        name = parse_name(utterance)
        if name is None:
            return "unclear"
        said, known = _name_words(name), _name_words(booking.slots["name"])
        if said == known:
            return "confirmed"
        return "unclear" if said < known else "wrong"
    return "unclear"


def _name_words(name: str) -> frozenset[str]:
    """A name's words, case and punctuation aside."""
    return frozenset("".join(c for c in w if c.isalpha()).casefold() for w in name.split())


def after_identity(booking: Booking) -> str:
    """After a confirmed identity: "Thank you, Jane.", a one-line recap of the appointment
    chosen so far (if any), then the current stage's question."""
    first = _first_name(booking.slots)
    parts = [f"Thank you, {first}." if first else "Thank you."]
    if booking.stage != "confirm" and (appointment := _appointment(booking.slots)):
        parts.append(f"So far we have {appointment}.")
    parts.append(question(booking))
    return " ".join(parts)


def is_complete(booking: Booking) -> bool:
    """True once the booking is confirmed (stage "done")."""
    return booking.stage == "done"


# ---------------------------------------------------------------- turns


def _next_stage(slots: Mapping[str, str]) -> Stage:
    """The first stage whose slot is missing, or "confirm" when all are known."""
    return next((s for s in SLOT_STAGES if not slots.get(s)), "confirm")


def _advance(booking: Booking, new: Mapping[str, str]) -> Booking:
    """A booking with ``new`` slots added, at the first stage still missing a slot."""
    slots = {**booking.slots, **new}
    return Booking(stage=_next_stage(slots), slots=slots)


def _not_understood(booking: Booking) -> Reply:
    """A re-prompt: stage unchanged, "Sorry, I didn't catch that." and the question again."""
    return Reply(f"{_SORRY} {question(booking)}", booking, understood=False)


def _check_date(d: date, today: date) -> str | None:
    """Why an appointment date cannot be booked, or ``None`` when it can."""
    if d <= today:
        return "Sorry, we can only book from tomorrow onwards."
    if d > today + timedelta(days=MAX_DAYS_AHEAD):
        return f"Sorry, we can only book up to {MAX_DAYS_AHEAD} days ahead."
    if d.weekday() >= 5:
        return "Sorry, the clinic is closed on weekends."
    return None


def _check_time(t: time) -> str | None:
    """Why a time cannot be booked, or ``None`` when it is within clinic hours."""
    if OPENING_HOUR <= t <= LAST_SLOT:
        return None
    return (
        "Sorry, that's outside our hours. We're open 9:00 AM to 5:00 PM; "
        "the last appointment is at 4:30 PM."
    )


def _appointment_turn(booking: Booking, utterance: str, today: date) -> Reply:
    """A turn at the date, time or site stage: fill every missing one of them that parses."""
    found: dict[str, str] = {}
    problems: list[str] = []
    slots = booking.slots
    if not slots.get("date") and (d := parse_date(utterance, today)) is not None:
        problem = _check_date(d, today)
        if problem is None:
            found["date"] = d.isoformat()
        else:
            problems.append(problem)
    if not slots.get("time"):
        t = parse_time(utterance, loose=booking.stage == "time")
        if t is not None:
            problem = _check_time(t)
            if problem is None:
                found["time"] = f"{t:%H:%M}"
            else:
                problems.append(problem)
    if not slots.get("site"):
        site = parse_site(utterance, loose=booking.stage == "site")
        if site is not None:
            found["site"] = site
    if not found and not problems:
        return _not_understood(booking)
    after = _advance(booking, found) if found else booking
    parts = [f"Got it: {_appointment(found)}."] if found else []
    parts += problems
    parts.append(question(after))
    return Reply(" ".join(parts), after)


def _confirm_turn(booking: Booking, utterance: str) -> Reply:
    """A turn at confirm: yes books and ends the call; no goes back to the date stage with
    date, time and site cleared; anything else asks again."""
    if _next_stage(booking.slots) != "confirm":  # an inconsistent booking: ask what is missing
        after = _advance(booking, {})
        return Reply(question(after), after)
    answer = parse_yes_no(utterance)
    if answer == "yes":
        done = Booking(stage="done", slots=booking.slots)
        text = (
            f"Your flu shot is booked for {_appointment(booking.slots)}. "
            "Thank you for calling, goodbye!"
        )
        return Reply(text, done, end_call=True)
    if answer == "no":
        kept = {k: v for k, v in booking.slots.items() if k in ("name", "date_of_birth")}
        back = Booking(stage="date", slots=kept)
        return Reply(f"No problem, let's choose again. {question(back)}", back)
    return _not_understood(booking)


def respond(booking: Booking, utterance: str, today: date) -> Reply:
    """One caller turn. Parses the current stage's slot (and, from the date stage on, any
    missing date/time/site) from ``utterance``; on success stores it and asks for the first
    missing slot; on garbage re-prompts with ``understood=False``; on a parsed but unusable
    value (weekend, past, more than 60 days ahead, outside 09:00-16:30, an impossible date of
    birth) says why and asks again with ``understood=True``. Never raises for any string."""
    stage = booking.stage
    if stage == "done":
        return Reply("Your flu shot is already booked. Goodbye!", booking, end_call=True)
    if stage == "confirm":
        return _confirm_turn(booking, utterance)
    if stage == "name":
        name = parse_name(utterance)
        if name is None:
            return _not_understood(booking)
        after = _advance(booking, {"name": name})
        return Reply(f"Thanks, {name.split()[0]}. {question(after)}", after)
    if stage == "date_of_birth":
        dob = parse_date_of_birth(utterance, today)
        if dob is None:
            return _not_understood(booking)
        if not (dob.year > 1900 and dob < today):
            return Reply(
                f"Sorry, that date of birth doesn't look right. {question(booking)}", booking
            )
        after = _advance(booking, {"date_of_birth": dob.isoformat()})
        return Reply(f"Thank you. {question(after)}", after)
    return _appointment_turn(booking, utterance, today)
