"""What rescheduled and deleted tasks do to their calls (pure)."""

from __future__ import annotations

import datetime as dt

from ringlog.calls.state import CallState, apply
from ringlog.calls.tasks import task_effects
from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.calls import CallCancelled, CallDispatched, CallRequested, CallRescheduled
from ringlog.schemas.tasks import TaskDeleted, TaskFieldWriteback, TaskRescheduled

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(days=1)


def at(event: EventModel, when: dt.datetime) -> Envelope:
    return Envelope.new(event, source="test", occurred_at=when)


def requested(ref: str, task: str = "t-1", when: dt.datetime = T0) -> CallState:
    request = CallRequested(
        call_ref=ref,
        to_number="+14155550123",
        from_number="+14155559876",
        agent_id="a",
        scheduled_at=T0 + dt.timedelta(hours=1),
        task_ref=task,
    )
    return apply(None, at(request, when))


def fold_effects(state: CallState, task: Envelope) -> CallState:
    for effect in task_effects([state], task):
        state = apply(state, at(effect, task.occurred_at))
    return state


def test_a_reschedule_moves_every_pending_call_of_the_task() -> None:
    calls = [requested("c1"), requested("c2"), requested("c3", task="other")]
    task = at(TaskRescheduled(task_id="t-1", scheduled_at=LATER), T0 + dt.timedelta(minutes=5))
    effects = task_effects(calls, task)
    assert [e.call_ref for e in effects] == ["c1", "c2"]
    assert all(isinstance(e, CallRescheduled) and e.scheduled_at == LATER for e in effects)
    moved = fold_effects(calls[0], task)
    assert moved.request is not None and moved.request.due_at == LATER


def test_a_reschedule_naming_a_call_moves_only_that_one() -> None:
    calls = [requested("c1"), requested("c2")]
    task = at(TaskRescheduled(task_id="t-1", call_ref="c2", scheduled_at=LATER), T0)
    assert [e.call_ref for e in task_effects(calls, task)] == ["c2"]


def test_a_deletion_cancels_pending_calls_only() -> None:
    pending = requested("c1")
    placed = apply(
        requested("c2"), at(CallDispatched(call_ref="c2", retell_call_id="r", agent_id="a"), T0)
    )
    task = at(TaskDeleted(task_id="t-1"), T0 + dt.timedelta(minutes=5))
    effects = task_effects([pending, placed], task)
    assert [(type(e), e.call_ref) for e in effects] == [(CallCancelled, "c1")]
    assert fold_effects(pending, task).dispatch == "cancelled"


def test_effects_are_derived_once_per_task_event() -> None:
    state = requested("c1")
    task = at(TaskRescheduled(task_id="t-1", scheduled_at=LATER), T0 + dt.timedelta(minutes=1))
    once = fold_effects(state, task)
    assert task_effects([once], task) == [], "the cause is folded: nothing more to derive"
    effect = task_effects([state], task)[0]
    again = apply(once, at(effect, T0))
    assert again.request == once.request and again.causes == once.causes


def test_calls_requested_after_the_task_event_are_not_touched() -> None:
    task = at(TaskDeleted(task_id="t-1"), T0)
    assert task_effects([requested("c1", when=T0 + dt.timedelta(seconds=1))], task) == []


def test_other_task_events_have_no_call_effects() -> None:
    task = at(TaskFieldWriteback(task_id="t-1", fields={"status": "open"}), T0)
    assert task_effects([requested("c1")], task) == []
