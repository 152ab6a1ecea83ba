"""Slot parsers for the booking dialog: text in, a value or ``None`` out.

Every function here is pure and total: it never raises, reads no clock (``today`` is a
parameter) and returns ``None`` when nothing usable is found. Values are returned raw (a date
may be on a weekend, a time may be outside clinic hours); the policy in ``booking`` judges them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import dateparser

SITES: tuple[str, ...] = ("Main Street Clinic", "Riverside Pharmacy", "Eastside Health Center")
"""The sites a flu shot can be booked at, in the order they are offered."""

_MAX_CHARS = (
    300  # utterances longer than this are cut before parsing (bounds regex/dateparser work)
)

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORD = r"[0-9]{1,2}(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+[0-9]{4})"


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of a literal word list."""
    return tuple(text.split())


_ORDINAL_WORDS = {
    word: n
    for n, word in enumerate(
        _words(
            "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
            "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth "
            "twentieth twenty-first twenty-second twenty-third twenty-fourth twenty-fifth "
            "twenty-sixth twenty-seventh twenty-eighth twenty-ninth thirtieth thirty-first"
        ),
        start=1,
    )
}
_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        _words("one two three four five six seven eight nine ten eleven twelve"), start=1
    )
}


def _norm(text: str) -> str:
    """Lower-case, straighten apostrophes, collapse whitespace, cut to ``_MAX_CHARS``."""
    text = text[:_MAX_CHARS].replace("\u2019", "'").replace("\u2018", "'").lower()
    return " ".join(text.split())


def _dateparse(text: str, settings: dict[str, Any]) -> datetime | None:
    """``dateparser.parse`` in English that returns ``None`` instead of raising."""
    try:
        result = dateparser.parse(text, languages=["en"], settings=settings)
    except Exception:  # noqa: BLE001 - a third-party parser on arbitrary speech must not crash a call
        return None
    return result if isinstance(result, datetime) else None


# ---------------------------------------------------------------- name

_NAME_PREFIX = re.compile(
    r"^(?:(?:hi|hello|hey|yes|yeah|sure|ok|okay|um+|uh+|er|well|so)\b[\s,.!]*)*"
    r"(?:(?:my|the)\s+name(?:\s+is|'s)|name(?:\s+is|'s)|this\s+is|it\s+is|it's|i\s+am|i'm"
    r"|call\s+me)?\s*",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"[\s,.!?]*(?:(?:thanks|thank\s+you|please)[\s,.!?]*)?$", re.IGNORECASE)
_NAME_TOKEN = re.compile(r"^[^\W\d_]+(?:['\-.][^\W\d_]+)*\.?$")
_NOT_NAME_WORDS = frozenset(
    _words(
        "a an the i me my you your we he she it is am are was be to of and or but not no yes "
        "yeah what who why how when where which don't dont know sorry hello hi hey um uh er ok "
        "okay book booking flu shot appointment want like would could please thanks thank help "
        "today tomorrow morning afternoon can can't here there this that just hmm mm mhm erm huh"
    )
)


def parse_name(text: str) -> str | None:
    """A person's name from "My name is Jane Doe", "This is Jane Doe", "It's Jane Doe" or
    "jane doe", title-cased ("Jane Doe"); ``None`` for digits, a single character, more than
    four words or common non-name words ("I don't know")."""
    text = " ".join(text[:_MAX_CHARS].replace("\u2019", "'").split())
    text = _NAME_PREFIX.sub("", text, count=1)
    text = _NAME_SUFFIX.sub("", text, count=1)
    tokens = text.split()
    if not 1 <= len(tokens) <= 4:
        return None
    if not all(_NAME_TOKEN.match(t) for t in tokens):
        return None
    if any(t.lower().rstrip(".") in _NOT_NAME_WORDS for t in tokens):
        return None
    if sum(ch.isalpha() for ch in text) < 2:
        return None
    return " ".join(t.title() if t.islower() or t.isupper() else t for t in tokens)


# ---------------------------------------------------------------- dates

_DATE_SPANS = tuple(
    re.compile(p)
    for p in (
        r"\b[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\b",
        r"\b[0-9]{1,2}/[0-9]{1,2}(?:/[0-9]{2,4})?\b",
        rf"\b{_MONTH}\.?\s+(?:the\s+)?{_ORD}\b{_YEAR}?",
        rf"\b{_ORD}\s+(?:of\s+)?{_MONTH}\b\.?{_YEAR}?",
    )
)
_WEEKDAY = re.compile(
    r"\b(?:(next|this|coming|last)\s+)?(" + "|".join(_WEEKDAYS) + r")\b(\s+next\s+week)?"
)
_ORDINAL_DAY = re.compile(
    r"\b(?:the\s+([0-9]{1,2})(?:st|nd|rd|th)?|([0-9]{1,2})(?:st|nd|rd|th))\b"
    r"(?!\s*(?::|o'?\s?clock|[ap]\.?\s?m\b))"
    r"|\bthe\s+(" + "|".join(sorted(_ORDINAL_WORDS, key=len, reverse=True)) + r")\b"
)
_IN_N = re.compile(r"\bin\s+(a|an|[0-9]{1,2}|" + "|".join(_NUMBER_WORDS) + r")\s+(day|week)s?\b")
_FILLER = re.compile(
    r"\b(?:how about|what about|let's do|let's say|i'd like|i would like|i want|maybe|"
    r"please|on|for|um+|uh+)\b"
)


def _explicit_date(text: str, settings: dict[str, Any]) -> date | None:
    """The first written-out date ("December 3rd", "3 March 1980", "11/24", "1980-03-03")."""
    for pattern in _DATE_SPANS:
        for match in pattern.finditer(text):
            parsed = _dateparse(match.group(0), settings)
            if parsed is not None:
                return parsed.date()
    return None


def _weekday_date(text: str, today: date) -> date | None:
    """A weekday phrase: "tuesday", "next/this/coming tuesday" is the first one after today;
    "last tuesday" the latest one before today; "tuesday next week" the one in next week."""
    match = _WEEKDAY.search(text)
    if match is None:
        return None
    modifier, name, next_week = match.groups()
    target = _WEEKDAYS.index(name)
    if next_week or re.search(r"\bnext\s+week\b", text):
        monday = today + timedelta(days=7 - today.weekday())
        return monday + timedelta(days=target)
    if modifier == "last":
        return today - timedelta(days=(today.weekday() - target - 1) % 7 + 1)
    return today + timedelta(days=(target - today.weekday() - 1) % 7 + 1)


def _ordinal_date(text: str, today: date) -> date | None:
    """A bare day of the month ("the 3rd", "the third"): its next occurrence after today."""
    match = _ORDINAL_DAY.search(text)
    if match is None:
        return None
    digits = match.group(1) or match.group(2)
    day = int(digits) if digits else _ORDINAL_WORDS[match.group(3)]
    year, month = today.year, today.month
    for _ in range(4):
        try:
            candidate = date(year, month, day)
        except ValueError:
            candidate = None
        if candidate is not None and candidate > today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _relative_date(text: str, today: date) -> date | None:
    """ "today", "tomorrow", "the day after tomorrow", "yesterday", "in 3 days", "in a week"."""
    if re.search(r"\bday after tomorrow\b", text):
        return today + timedelta(days=2)
    for word, offset in (("tomorrow", 1), ("today", 0), ("yesterday", -1)):
        if re.search(rf"\b{word}\b", text):
            return today + timedelta(days=offset)
    match = _IN_N.search(text)
    if match is not None:
        count_word, unit = match.groups()
        count = _NUMBER_WORDS.get(count_word) or (1 if count_word in ("a", "an") else None)
        n = count if count is not None else int(count_word)
        return today + timedelta(days=n * (7 if unit == "week" else 1))
    return None


def parse_date(text: str, today: date) -> date | None:
    """An appointment date, preferring the future: written dates ("December 3rd", "12/03"),
    then weekday phrases ("next Tuesday" = the first Tuesday after ``today``), "tomorrow",
    "the 3rd", "in two weeks", and finally dateparser on the whole utterance. Not validated."""
    norm = _norm(text)
    base = datetime(today.year, today.month, today.day)
    settings: dict[str, Any] = {
        "RELATIVE_BASE": base,
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "MDY",
        "REQUIRE_PARTS": ["day", "month"],
    }
    found = (
        _explicit_date(norm, settings)
        or _weekday_date(norm, today)
        or _relative_date(norm, today)
        or _ordinal_date(norm, today)
    )
    if found is not None:
        return found
    rest = " ".join(_FILLER.sub(" ", norm).split())
    if not rest or not any(ch.isalnum() for ch in rest):
        return None
    parsed = _dateparse(rest, {"RELATIVE_BASE": base, "PREFER_DATES_FROM": "future"})
    if parsed is None or parsed.time() != time(0, 0):  # a time of day ("10am") is not a date
        return None
    return parsed.date()


def parse_date_of_birth(text: str, today: date) -> date | None:
    """A date of birth with day, month and year ("March 3rd, 1980", "3 March 1980",
    "1980-03-03", "03/03/1980" read month/day/year), preferring the past. Not validated."""
    norm = _norm(text)
    settings: dict[str, Any] = {
        "RELATIVE_BASE": datetime(today.year, today.month, today.day),
        "PREFER_DATES_FROM": "past",
        "DATE_ORDER": "MDY",
        "REQUIRE_PARTS": ["day", "month", "year"],
    }
    found = _explicit_date(norm, settings)
    if found is not None:
        return found
    rest = re.sub(
        r"\b(?:my\s+)?(?:date\s+of\s+birth|dob|birthday)(?:\s+is)?\b|\bi\s+was\s+born(?:\s+on)?\b"
        r"|\bborn(?:\s+on)?\b|\bit's\b|\bit\s+is\b",
        " ",
        norm,
    ).strip(" ,.!?")
    if not rest or not any(ch.isdigit() for ch in rest):
        return None
    parsed = _dateparse(rest, settings)
    return None if parsed is None else parsed.date()


# ---------------------------------------------------------------- times

_H = r"([0-9]{1,2})"
_TIME_12H = re.compile(rf"\b{_H}(?:[:.]([0-9]{{2}}))?\s*([ap])\.?\s?m\b\.?")
_TIME_IN_THE = re.compile(
    rf"\b{_H}(?::([0-9]{{2}}))?\s*(?:o'?\s?clock\s*)?in\s+the\s+(morning|afternoon|evening)\b"
)
_TIME_HALF_PAST = re.compile(rf"\bhalf\s+past\s+{_H}\b")
_TIME_COLON = re.compile(rf"\b{_H}:([0-9]{{2}})\b")
_TIME_OCLOCK = re.compile(rf"\b{_H}\s*o'?\s?clock\b")
_TIME_BARE = re.compile(r"^[^0-9]*\b([0-9]{1,2})\b[^0-9]*$")


def _clinic_hour(hour: int) -> int:
    """An hour said without am/pm: 1-8 mean the afternoon (the clinic is closed at night)."""
    return hour + 12 if 1 <= hour <= 8 else hour


def _make_time(hour: int, minute: int) -> time | None:
    """``time(hour, minute)`` or ``None`` when out of range."""
    return time(hour, minute) if 0 <= hour <= 23 and 0 <= minute <= 59 else None


def _words_to_digits(text: str) -> str:
    """ "ten thirty am" -> "10:30 am": hour words to digits, spoken minutes to ":mm"."""
    for word, n in _NUMBER_WORDS.items():
        text = re.sub(rf"\b{word}\b", str(n), text)
    for word, minutes in (("thirty", "30"), ("fifteen", "15"), ("forty[- ]five", "45")):
        text = re.sub(rf"\b([0-9]{{1,2}})\s+{word}\b", rf"\1:{minutes}", text)
    return text


def parse_time(text: str, *, loose: bool = False) -> time | None:
    """A time of day: "10am", "10:30 am", "2 pm", "14:00", "noon", "3 o'clock", "half past 2",
    "10 in the morning", "morning" (09:00), "afternoon" (14:00). An hour without am/pm from 1
    to 8 is read as afternoon. With ``loose`` (when the question was the time) a lone number
    ("10", "at 2") is accepted too. Not validated against clinic hours."""
    norm = _words_to_digits(_norm(text))
    if re.search(r"\b(?:noon|midday)\b", norm):
        return time(12, 0)
    if m := _TIME_12H.search(norm):
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if not 1 <= hour <= 12:
            return None
        return _make_time(hour % 12 + (12 if m.group(3) == "p" else 0), minute)
    if m := _TIME_IN_THE.search(norm):
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if not 1 <= hour <= 12:
            return None
        return _make_time(hour % 12 + (0 if m.group(3) == "morning" else 12), minute)
    if m := _TIME_HALF_PAST.search(norm):
        return _make_time(_clinic_hour(int(m.group(1))), 30)
    if m := _TIME_COLON.search(norm):
        return _make_time(_clinic_hour(int(m.group(1))), int(m.group(2)))
    if m := _TIME_OCLOCK.search(norm):
        return _make_time(_clinic_hour(int(m.group(1))), 0)
    if re.search(r"(?<!good )\bmorning\b", norm):
        return time(9, 0)
    if re.search(r"(?<!good )\bafternoon\b", norm):
        return time(14, 0)
    if loose and (m := _TIME_BARE.match(norm)):
        return _make_time(_clinic_hour(int(m.group(1))), 0)
    return None


# ---------------------------------------------------------------- sites and answers

_SITE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (SITES[0], re.compile(r"\bmain\b")),
    (SITES[1], re.compile(r"\briver\s*side\b|\briver\b|\bpharmacy\b")),
    (SITES[2], re.compile(r"\beast\s*side\b|\beast\b|\bhealth\s+cent(?:er|re)\b")),
)
_SITE_ORDINALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (SITES[0], re.compile(r"\b(?:first|1st)\b")),
    (SITES[1], re.compile(r"\b(?:second|2nd|middle)\b")),
    (SITES[2], re.compile(r"\b(?:third|3rd|last)\b")),
)


def parse_site(text: str, *, loose: bool = False) -> str | None:
    """One of ``SITES`` named by a distinctive word ("main street", "riverside", "pharmacy",
    "eastside", "health center"), case-insensitively; ``None`` when none or several match.
    With ``loose`` (when the question was the site) "the first/second/last one" also counts."""
    norm = _norm(text)
    found = {site for site, pattern in _SITE_PATTERNS if pattern.search(norm)}
    if not found and loose:
        found = {site for site, pattern in _SITE_ORDINALS if pattern.search(norm)}
    return found.pop() if len(found) == 1 else None


_NO = re.compile(
    r"\b(?:no|nope|nah|not|don't|do not|wrong|incorrect|change|cancel|wait|different)\b"
)
_YES = re.compile(
    r"\b(?:yes|yeah|yep|yup|yes please|sure|correct|right|ok|okay|please do|book it|go ahead"
    r"|sounds good|perfect|great|confirm|absolutely|definitely|do it|that's it)\b"
)


def parse_yes_no(text: str) -> Literal["yes", "no"] | None:
    """ "yes" for agreement ("yes", "yeah", "correct", "please do", "book it"), "no" for
    refusal or a wish to change ("no", "change the time", "that's not right"; a negative
    wins over a positive word), ``None`` when neither is heard."""
    norm = _norm(text)
    if _NO.search(norm):
        return "no"
    if _YES.search(norm):
        return "yes"
    return None
