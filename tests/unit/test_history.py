"""Time travel's pure parts: reading an instant, refusing one, and the folds at an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from ringlog.calls.state import apply
from ringlog.projections.base import Event
from ringlog.schemas import AbtEvent, CallDispatched, CallRequested, DialogTurn, Envelope
from ringlog.schemas.abt import abt_id_for
from ringlog.schemas.base import EventModel
from ringlog.schemas.codec import encode
from ringlog.schemas.sessions import SessionProgressed, SessionStarted
from ringlog.views.history import (
    InstantRefused,
    call_state_at,
    check_instant,
    parse_instant,
    session_state_at,
    shown,
    timeline_events,
    timeline_order,
)
from ringlog.views.store import TimelineRow
from tests.support.examples import CLINIC, PHONE, REF, RETELL_ID

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CALLS, DIALOG, ABT = "t.calls", "t.dialog", "t.abt"


def recorded(payload: EventModel, minutes: int) -> Envelope:
    """``payload`` recorded ``minutes`` after T0, having occurred a day earlier."""
    at = T0 + timedelta(minutes=minutes)
    envelope = Envelope.new(payload, source="test", occurred_at=at - timedelta(days=1))
    return msgspec.structs.replace(envelope, recorded_at=at)


# -- instants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T11:00:00+01:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),  # no offset: UTC
        (" 2026-12-01 10:00:00.250Z ", datetime(2026, 12, 1, 10, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_an_instant_is_iso_8601_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01T00:00:00Z", "1700000000", "x" * 500])
def test_anything_else_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(InstantRefused) as refused:
        parse_instant(text)
    message = str(refused.value)
    assert "is not an ISO-8601 datetime" in message and "\n" not in message
    assert len(message) < 120


def test_an_instant_before_the_start_or_after_now_is_refused() -> None:
    start, now = T0, T0 + timedelta(days=1)
    check_instant(start, start=start, now=now)
    check_instant(now, start=start, now=now)
    with pytest.raises(
        InstantRefused,
        match=r"^2026-11-23T08:59:59.000Z is before the log's start \(2026-11-23T09:00:00.000Z",
    ):
        check_instant(start - timedelta(seconds=1), start=start, now=now)
    with pytest.raises(
        InstantRefused, match=r"is in the future \(now is 2026-11-24T09:00:00.000Z\)"
    ):
        check_instant(now + timedelta(milliseconds=1), start=start, now=now)
    with pytest.raises(InstantRefused, match="nothing is on the log yet"):
        check_instant(start, start=None, now=now)


def test_an_instant_is_shown_in_utc() -> None:
    assert shown(datetime(2026, 12, 1, 11, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-12-01T10:00:00.000Z"
    )


# -- the folds --------------------------------------------------------------------------------


def call_events() -> list[Event]:
    asked = CallRequested(call_ref=REF, to_number=PHONE, from_number=CLINIC, agent_id="a")
    placed = CallDispatched(call_ref=REF, retell_call_id=RETELL_ID, agent_id="a")
    said = DialogTurn(call_ref=REF, call_id=RETELL_ID, turn_index=0, role="agent", text="Hi")
    abt = AbtEvent(abt_id=abt_id_for(REF, "call_started"), call_ref=REF, name="call_started")
    return [
        Event(ABT, 2, 0, recorded(abt, 3)),  # listed first: the fold orders by topic, offset
        Event(CALLS, 2, 7, recorded(placed, 2)),
        Event(CALLS, 2, 5, recorded(asked, 1)),
        Event(DIALOG, 4, 0, recorded(said, 2)),
    ]


def test_a_call_at_an_instant_folds_what_was_recorded_by_then() -> None:
    events = call_events()
    topics = (CALLS, ABT)
    assert call_state_at(events, T0, topics=topics) is None
    first = call_state_at(events, T0 + timedelta(minutes=1), topics=topics)
    assert first is not None and (first.dispatch, first.events) == ("pending", 1)
    second = call_state_at(events, T0 + timedelta(minutes=2, seconds=59), topics=topics)
    assert second is not None and (second.dispatch, second.events) == ("dispatched", 2)
    assert second.abt_emitted == frozenset()
    last = call_state_at(events, T0 + timedelta(hours=1), topics=topics)
    assert last is not None and last.abt_emitted == {"call_started"} and last.events == 3
    # the live fold, in log order, ends in the same state; dialog turns are not the worker's
    live = None
    for envelope in (events[2].envelope, events[1].envelope, events[0].envelope):
        live = apply(live, envelope)
    assert last == live


def test_a_session_at_an_instant_is_the_live_fold_of_its_number() -> None:
    s = {"session_id": "s1", "phone": PHONE, "call_ref": REF}
    mine = [
        recorded(SessionStarted(**s, stage="identity"), 1),
        recorded(SessionProgressed(**s, stage="date"), 2),
    ]
    other = recorded(SessionStarted(session_id="s2", phone=CLINIC, call_ref="c2", stage="x"), 1)
    assert session_state_at([], PHONE) is None
    assert session_state_at([other], PHONE) is None
    first = session_state_at([mine[0], other], PHONE)
    assert first is not None and first.stage == "identity"
    later = session_state_at([mine[0], other, mine[1]], PHONE)
    assert later is not None and (later.stage, later.version, later.session_id) == ("date", 2, "s1")


def test_timeline_rows_become_events_in_the_order_recorded() -> None:
    events = call_events()
    rows = [
        TimelineRow(
            e.topic,
            e.partition,
            e.offset,
            REF,
            e.envelope.recorded_at,
            str(e.envelope.event_id),
            encode(e.envelope).decode(),
        )
        for e in events
    ]
    back = timeline_events(rows)
    assert back == events
    # recorded at 1, 2, 2 and 3 minutes; a tie goes by event id (UUIDv7: created first, first)
    assert [e.envelope.type for e in timeline_order(back)] == [
        "call.requested",
        "call.dispatched",
        "dialog.turn",
        "abt.event",
    ]
