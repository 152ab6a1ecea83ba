"""Which pending call requests to place now: a pure decision over call states.

A request is due when its time has come (``scheduled_at``, else at once), it is not being
placed already, and a retryable failure is not cooling down. Live calls (placed and not yet
ended) count against Retell's concurrency limit; due requests beyond the free slots wait, oldest
first. A request placed, failed for good or cancelled is never due again, so a restart or replay
that rebuilds the same states decides the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ringlog.calls.state import CallState


@dataclass(frozen=True)
class DispatchPolicy:
    """The dispatcher's limits (from the worker settings)."""

    max_live_calls: int
    cooldown: timedelta


def is_due(state: CallState, now: datetime, policy: DispatchPolicy) -> bool:
    """Whether this one request may be placed at ``now`` (ignoring the concurrency cap)."""
    if state.dispatch != "pending" or state.request is None:
        return False
    if state.request.due_at > now:
        return False
    cooling = state.last_failure_at is not None and state.last_failure_at + policy.cooldown > now
    return not cooling


def choose(
    states: Iterable[CallState],
    now: datetime,
    policy: DispatchPolicy,
    in_flight: frozenset[str] = frozenset(),
) -> list[CallState]:
    """The requests to place now, oldest due first, within the free concurrency slots.

    ``in_flight`` names requests being placed at this moment: they take a slot and are not
    chosen again.
    """
    live = 0
    due: list[CallState] = []
    for state in states:
        if state.live:
            live += 1
        elif state.call_ref not in in_flight and is_due(state, now, policy):
            due.append(state)
    free = policy.max_live_calls - live - len(in_flight)
    if free <= 0:
        return []
    due.sort(key=lambda s: (s.request.due_at if s.request else now, s.call_ref))
    return due[:free]


def next_due_at(states: Iterable[CallState], policy: DispatchPolicy) -> datetime | None:
    """The earliest time a pending request becomes due (for the dispatcher's sleep)."""
    times: list[datetime] = []
    for state in states:
        if state.dispatch != "pending" or state.request is None:
            continue
        at = state.request.due_at
        if state.last_failure_at is not None:
            at = max(at, state.last_failure_at + policy.cooldown)
        times.append(at)
    return min(times, default=None)
