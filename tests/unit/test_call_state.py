"""The call fold and what a call owes: ABT order, records, duplicates, reordering, dial failure."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ringlog.calls.dispatch import DispatchPolicy, due_at, free_slots, is_due
from ringlog.calls.record import call_record
from ringlog.calls.state import CallState, apply
from ringlog.calls.tracking import ABT_ORDER, abt_owed, record_owed
from ringlog.schemas import Envelope
from ringlog.schemas.abt import abt_id_for
from ringlog.schemas.base import EventModel
from ringlog.schemas.calls import (
    CallCancelled,
    CallDispatched,
    CallDispatchFailed,
    CallRecorded,
    CallRequested,
)
from ringlog.schemas.registry import REGISTRY
from ringlog.schemas.retell import RetellWebhook
from tests.support.examples import CLINIC, PHONE, REF, RETELL_ID, retell_call

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def env(payload: EventModel, at: datetime = T0) -> Envelope:
    return Envelope.new(payload, source="test", correlation_id=REF, occurred_at=at)


def requested(ref: str = REF, scheduled_at: datetime | None = None) -> Envelope:
    return env(
        CallRequested(
            call_ref=ref,
            to_number=PHONE,
            from_number=CLINIC,
            agent_id="agent",
            scheduled_at=scheduled_at,
            task_ref="task-1",
        )
    )


def dispatched(ref: str = REF) -> Envelope:
    return env(CallDispatched(call_ref=ref, retell_call_id=RETELL_ID, agent_id="agent"))


def webhook(event: str, **changes: object) -> Envelope:
    body = {"event": event, "call": retell_call(event) | changes}
    model = REGISTRY.model_for(f"retell.{event}", 2)
    payload = model.from_body(body)
    assert isinstance(payload, RetellWebhook)
    return env(payload)


def recorded() -> Envelope:
    return env(CallRecorded(call_ref=REF, retell_call_id=RETELL_ID, store="call_records"))


def drive(events: list[Envelope]) -> tuple[CallState, list[str]]:
    """Fold like the worker: pay owed effects after each event; a record write appends
    ``call.recorded`` behind the events already queued (as the log would)."""
    queue = deque(events)
    state: CallState | None = None
    emitted: list[str] = []
    recording = False
    while queue:
        state = apply(state, queue.popleft())
        if record_owed(state) and not recording:
            recording = True
            queue.append(recorded())
        for abt in abt_owed(state):
            emitted.append(abt.name)
            state = state.with_abt(abt.name)
    assert state is not None
    return state, emitted


def test_the_happy_path_owes_the_three_abt_events_in_order() -> None:
    state, emitted = drive(
        [
            requested(),
            dispatched(),
            webhook("call_started"),
            webhook("call_ended"),
            webhook("call_analyzed"),
        ]
    )
    assert emitted == list(ABT_ORDER)
    assert state.phase == "ended" and state.recorded and state.connected
    assert call_record(state).summary == "Patient booked a flu shot."
    assert call_record(state).cost == 12.5


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["call_started", "call_ended", "call_analyzed"]))
)
def test_any_webhook_order_with_duplicates_still_emits_each_abt_once_in_order(
    order: tuple[str, ...],
) -> None:
    hooks = [webhook(name) for name in order]
    # the dispatch outcome may land after Retell's first webhook (a race on the same partition)
    events = [requested(), hooks[0], dispatched(), *hooks[1:], *hooks, hooks[0]]
    state, emitted = drive(events)
    assert emitted == list(ABT_ORDER)
    assert state.phase == "ended"


def test_dial_failure_emits_initiated_only_and_ends_not_connected() -> None:
    failed = {"call_status": "not_connected", "disconnection_reason": "dial_failed"}
    state, emitted = drive(
        [
            requested(),
            dispatched(),
            webhook("call_ended", **failed),
            webhook("call_analyzed", **failed),
        ]
    )
    assert emitted == ["voice_call_initiated"]
    assert state.phase == "not_connected" and not state.connected
    assert state.recorded, "the failed call's record is still stored"
    assert call_record(state).disconnection_reason == "dial_failed"


def test_a_late_call_started_does_not_move_an_ended_call_backwards() -> None:
    state, _ = drive([requested(), dispatched(), webhook("call_ended"), webhook("call_started")])
    assert state.phase == "ended" and state.connected


def test_calls_ringlog_did_not_place_get_records_but_no_abt() -> None:
    state, emitted = drive([webhook("call_started"), webhook("call_analyzed")])
    assert emitted == [] and state.recorded and state.request is None


def test_a_replayed_state_that_knows_its_abt_owes_nothing() -> None:
    state, _ = drive([requested(), dispatched(), webhook("call_started")])
    assert abt_owed(state) == []
    fresh = apply(apply(apply(None, requested()), dispatched()), webhook("call_started"))
    owed = abt_owed(fresh)
    assert [a.name for a in owed] == ["voice_call_initiated", "call_started"]
    assert [a.abt_id for a in owed] == [abt_id_for(REF, a.name) for a in owed], "deterministic"


def test_a_second_request_with_the_same_ref_does_not_replace_the_first() -> None:
    state = apply(apply(None, requested()), requested(scheduled_at=T0 + timedelta(hours=1)))
    assert state.request is not None and state.request.scheduled_at is None


POLICY = DispatchPolicy(max_live_calls=2, cooldown=timedelta(seconds=30))


def test_dispatch_respects_schedule_cooldown_and_final_outcomes() -> None:
    later = T0 + timedelta(minutes=5)
    scheduled = apply(None, requested("s", scheduled_at=later))
    assert not is_due(scheduled, T0, POLICY) and is_due(scheduled, later, POLICY)
    assert due_at(scheduled, POLICY) == later

    failing = apply(
        apply(None, requested("f")),
        env(CallDispatchFailed(call_ref="f", reason="429", permanent=False, attempts=4)),
    )
    assert failing.dispatch == "pending"
    assert not is_due(failing, T0 + timedelta(seconds=29), POLICY)
    assert is_due(failing, T0 + timedelta(seconds=30), POLICY)

    refused = apply(
        apply(None, requested("r")),
        env(CallDispatchFailed(call_ref="r", reason="422", permanent=True, attempts=1)),
    )
    cancelled = apply(apply(None, requested("c")), env(CallCancelled(call_ref="c", reason="x")))
    placed = apply(apply(None, requested("p")), dispatched("p"))
    for state in (refused, cancelled, placed):
        assert not is_due(state, later, POLICY), state.dispatch


def test_free_slots_count_live_calls_and_placements_in_flight() -> None:
    assert free_slots(POLICY, live=0, in_flight=0) == 2
    assert free_slots(POLICY, live=1, in_flight=0) == 1
    assert free_slots(POLICY, live=1, in_flight=1) == 0
    assert free_slots(POLICY, live=3, in_flight=0) == 0, "never negative"


def test_a_folded_abt_event_marks_the_activity_emitted() -> None:
    state = apply(apply(None, requested()), dispatched())
    assert [a.name for a in abt_owed(state)] == ["voice_call_initiated"]
    (owed,) = abt_owed(state)
    folded = apply(state, env(owed))
    assert "voice_call_initiated" in folded.abt_emitted and abt_owed(folded) == []


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["call_started", "call_ended", "call_analyzed"]))
)
def test_the_stored_form_is_the_json_of_to_json_with_sets_sorted_and_reads_back(
    order: tuple[str, ...],
) -> None:
    """``encode`` writes exactly the JSON of ``to_json`` (fields in declaration order, sets
    as sorted lists, the analysis as Retell sent it), whatever order built the sets, and
    ``decode`` gives the same state back."""
    state, _ = drive([requested(), dispatched(), *(webhook(name) for name in order)])
    stored = state.encode()
    assert stored == orjson.dumps(state.to_json())
    assert orjson.loads(stored)["seen"] == sorted(state.seen) and len(state.seen) == 3
    assert orjson.loads(stored)["abt_emitted"] == sorted(state.abt_emitted)
    assert state.analysis and CallState.decode(stored) == state
