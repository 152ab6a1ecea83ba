"""What a business task event does to its calls (pure).

``task.rescheduled`` moves the task's pending calls (or the one it names) to the new time;
``task.deleted`` cancels them. Calls already dispatched, failed or cancelled are left alone, and
so are calls requested after the task event (a rebuild folds ``calls`` before ``tasks``, so the
times decide, not the reading order). Each effect is a ``calls`` event that names its cause, so
it is derived once: a replay or a restarted worker finds the cause folded and derives nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from ringlog.calls.state import CallState
from ringlog.schemas import Envelope
from ringlog.schemas.calls import CallCancelled, CallRescheduled
from ringlog.schemas.tasks import TaskDeleted, TaskRescheduled


def task_effects(
    states: Iterable[CallState], envelope: Envelope
) -> list[CallCancelled | CallRescheduled]:
    """The call events a task event causes, given every call's state."""
    task = envelope.payload
    if not isinstance(task, TaskRescheduled | TaskDeleted):
        return []
    cause = str(envelope.event_id)
    effects: list[CallCancelled | CallRescheduled] = []
    for state in states:
        request = state.request
        if request is None or request.task_ref != task.task_id:
            continue
        if state.dispatch != "pending" or cause in state.causes:
            continue
        if request.requested_at > envelope.occurred_at:
            continue
        if isinstance(task, TaskRescheduled):
            if task.call_ref is not None and task.call_ref != state.call_ref:
                continue
            effects.append(
                CallRescheduled(
                    call_ref=state.call_ref,
                    scheduled_at=task.scheduled_at,
                    task_ref=task.task_id,
                    cause_event_id=cause,
                )
            )
        else:
            effects.append(
                CallCancelled(
                    call_ref=state.call_ref,
                    reason="task deleted",
                    task_ref=task.task_id,
                    cause_event_id=cause,
                )
            )
    return effects
