"""The console's view models: built from view rows, numbers masked, nothing else touched."""

from __future__ import annotations

import datetime as dt

import msgspec
import orjson

from ringlog.calls.state import CallState
from ringlog.console.models.board import (
    ABT_ORDER,
    board,
    board_changes,
    call_row,
    call_status,
    duration_text,
    latest_refs,
)
from ringlog.console.models.events import activity, event_row, last_stage, masked_json, timeline
from ringlog.console.models.sessions import session_row, session_rows, turns
from ringlog.schemas import AbtEvent, CallRequested, DialogTurn, Envelope, EventModel, abt_id_for
from ringlog.schemas.codec import encode
from ringlog.sessions.state import SessionState
from ringlog.views.store import TimelineRow

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
PHONE = "+14155550123"
CLINIC = "+14155559876"
PREFIX = "t1."


def state(ref: str = "call_1", **fields: object) -> CallState:
    base: dict[str, object] = {
        "call_ref": ref,
        "direction": "outbound",
        "from_number": CLINIC,
        "to_number": PHONE,
        "dispatch": "dispatched",
        "phase": "ongoing",
        "started_at": T0,
    }
    return CallState.from_json(base | fields)


def row(
    payload: EventModel, *, offset: int = 0, at: dt.datetime = T0, topic: str = "calls"
) -> TimelineRow:
    envelope = Envelope.new(payload, source="test", occurred_at=at)
    envelope = msgspec.structs.replace(envelope, recorded_at=at)
    return TimelineRow(
        topic=f"{PREFIX}{topic}",
        partition=2,
        offset=offset,
        call_ref=envelope.key,
        recorded_at=at,
        event_id=str(envelope.event_id),
        event=encode(envelope).decode(),
    )


def turn(index: int, role: str, text: str, stage: str | None, ref: str = "call_1") -> TimelineRow:
    payload = DialogTurn(
        call_ref=ref, call_id="c1", turn_index=index, role=role, text=text, stage=stage
    )  # type: ignore[arg-type]
    return row(payload, offset=index, at=T0 + dt.timedelta(seconds=index), topic="dialog")


# -- calls --------------------------------------------------------------------------------------


def test_durations_read_as_minutes_and_hours() -> None:
    assert [duration_text(ms) for ms in (None, -1, 0, 59_999, 61_000, 3_723_000)] == [
        "-",
        "-",
        "0:00",
        "0:59",
        "1:01",
        "1:02:03",
    ]


def test_a_call_status_says_what_it_is_doing() -> None:
    assert call_status(state()) == ("in progress", "live")
    assert call_status(state(phase="registered")) == ("ringing", "live")
    assert call_status(state(phase="ended", recorded=True)) == ("ended, recorded", "ended")
    assert call_status(state(phase="not_connected")) == ("not connected", "failed")
    assert call_status(state(dispatch="pending", phase="unknown")) == ("pending", "pending")
    retrying = state(dispatch="pending", phase="unknown", last_failure="429")
    assert call_status(retrying) == ("pending, retrying", "pending")
    assert call_status(state(dispatch="cancelled", phase="unknown")) == ("cancelled", "ended")
    assert call_status(state(dispatch="failed", phase="unknown")) == ("dispatch failed", "failed")


def test_a_call_row_masks_both_numbers_and_lists_the_abt_in_order() -> None:
    shown = call_row(state(abt_emitted=frozenset({"call_started", "voice_call_initiated"})))
    assert (shown.from_number, shown.to_number) == ("+14*******76", "+14*******23")
    assert PHONE not in repr(shown) and CLINIC not in repr(shown)
    assert shown.abt == (
        ("voice_call_initiated", True),
        ("call_started", True),
        ("call_completed", False),
    )
    assert (
        shown.abt_count == 2
        and shown.in_progress
        and shown.started_ms == int(T0.timestamp() * 1000)
    )


def test_an_ended_call_gets_its_duration_from_its_times_when_retell_gave_none() -> None:
    ended = state(phase="ended", ended_at=T0 + dt.timedelta(seconds=75))
    assert call_row(ended).duration == "1:15" and not call_row(ended).in_progress


def test_the_latest_refs_are_those_with_the_newest_event() -> None:
    rows = [
        ("a", T0),
        ("b", T0 + dt.timedelta(seconds=5)),
        ("a", T0 + dt.timedelta(seconds=9)),
        ("c", T0 + dt.timedelta(seconds=1)),
    ]
    assert latest_refs(rows, 2) == [("a", T0 + dt.timedelta(seconds=9)), ("b", rows[1][1])]
    assert latest_refs([], 5) == []


def test_the_board_puts_calls_under_way_first_and_bounds_the_others() -> None:
    live = [state("out_live")]
    inbound = state("retell:in", direction="inbound", dispatch=None, phase="ongoing")
    ended = [state(f"done_{i}", phase="ended") for i in range(5)]
    recent = [("retell:in", T0, inbound), ("out_live", T0, live[0]), ("late", T0, None)]
    recent += [(s.call_ref, T0, s) for s in ended]
    shown = board(live, recent, limit=3)
    assert {r.call_ref for r in shown.in_progress} == {"out_live", "retell:in"}
    assert [r.call_ref for r in shown.recent] == ["late", "done_0", "done_1"]
    assert shown.recent[0].status == "not folded yet"


def test_board_changes_name_new_changed_and_gone_rows() -> None:
    first = board([state("a")], [("b", T0, state("b", phase="ended"))], limit=5)
    before = {r.call_ref: r for r in first.rows()}
    later = board(
        [], [("a", T0, state("a", phase="ended")), ("c", T0, state("c", phase="ended"))], limit=5
    )
    changes = board_changes(before, later)
    assert [r.call_ref for r in changes.upsert] == ["a", "c"]
    assert changes.remove == ("b",)
    assert (changes.in_progress, changes.recent) == ((), ("a", "c"))
    assert not board_changes({r.call_ref: r for r in later.rows()}, later)


# -- events -------------------------------------------------------------------------------------


def test_an_event_row_shows_its_payload_with_the_numbers_masked() -> None:
    requested = CallRequested(call_ref="call_1", to_number=PHONE, from_number=CLINIC, agent_id="a")
    shown = event_row(row(requested, offset=7), prefix=PREFIX)
    assert (shown.topic, shown.position, shown.type, shown.source) == (
        "calls",
        "calls/2:7",
        "call.requested",
        "test",
    )
    assert PHONE not in shown.payload and "+14*******23" in shown.payload
    assert PHONE not in shown.summary and "to_number=+14*******23" in shown.summary
    assert orjson.loads(shown.payload)["agent_id"] == "a"


def test_an_abt_event_names_its_activity() -> None:
    abt = AbtEvent(
        abt_id=abt_id_for("call_1", "call_started"), name="call_started", call_ref="call_1"
    )
    shown = event_row(row(abt, topic="abt"), prefix=PREFIX)
    assert shown.abt == "call_started" and shown.summary.startswith("name=call_started")


def test_a_timeline_is_in_recorded_order_and_marks_each_stage_change() -> None:
    rows = [
        turn(2, "user", "Jane, call me on +1 415 555 0123", "date_of_birth"),
        turn(0, "agent", "Hello! Your full name?", "name"),
        turn(1, "agent", "Again?", "name"),
    ]
    shown = timeline(rows, prefix=PREFIX)
    assert [e.position for e in shown] == ["dialog/2:0", "dialog/2:1", "dialog/2:2"]
    assert [e.stage_change for e in shown] == ["name", None, "date_of_birth"]
    assert shown[2].summary == "user: Jane, call me on +14*******23"
    assert last_stage(shown) == "date_of_birth"
    assert timeline(rows[1:2], prefix=PREFIX, stage="name")[0].stage_change is None


def test_the_feed_shows_no_payload_and_the_newest_first() -> None:
    rows = [turn(i, "user", f"said {PHONE}", "name") for i in range(4)]
    feed = activity(rows, prefix=PREFIX, limit=2)
    assert [e.position for e in feed] == ["dialog/2:3", "dialog/2:2"]
    assert all(e.payload == "" and e.summary == "" for e in feed)


def test_a_long_payload_is_cut_after_masking() -> None:
    text = masked_json({"to": PHONE, "blob": "x" * 100}, limit=40)
    assert PHONE not in text and text.endswith("more characters)")


# -- sessions -----------------------------------------------------------------------------------


def session(phone: str, status: str, minutes: int, refs: tuple[str, ...] = ("c1",)) -> SessionState:
    return SessionState(
        session_id=f"ses_{phone[-2:]}",
        phone=phone,
        task="flu_shot_booking",
        status=status,  # type: ignore[arg-type]
        stage="date",
        started_at=T0,
        updated_at=T0 + dt.timedelta(minutes=minutes),
        slots={"name": "Jane Doe", "callback": PHONE},
        call_refs=refs,
    )


def test_sessions_are_listed_latest_change_first_with_numbers_masked() -> None:
    rows = session_rows(
        [session(PHONE, "dropped", 1, ("c1", "c2")), session("+14155550142", "active", 5)]
    )
    assert [r.phone for r in rows] == ["+14*******42", "+14*******23"]
    first = session_row(session(PHONE, "dropped", 1, ("c1", "c2")))
    assert first.call_ref == "c2" and first.calls == 2
    assert dict(first.slots) == {"callback": "+14*******23", "name": "Jane Doe"}


def test_a_session_dialog_runs_call_by_call_turn_by_turn() -> None:
    rows = [
        turn(1, "user", "second call", "date", ref="c2"),
        turn(1, "user", f"I am on {PHONE}", "name", ref="c1"),
        turn(0, "agent", "Welcome back", "date", ref="c2"),
        turn(0, "agent", "Hello", "name", ref="c1"),
    ]
    said = turns(rows, ["c1", "c2"])
    assert [(t.call_ref, t.index) for t in said] == [("c1", 0), ("c1", 1), ("c2", 0), ("c2", 1)]
    assert said[1].text == "I am on +14*******23"


def test_abt_order_is_the_order_they_happen() -> None:
    assert ABT_ORDER == ("voice_call_initiated", "call_started", "call_completed")
