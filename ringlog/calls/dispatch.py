"""When a pending call request may be placed, and how many may be placed now (pure).

A request is due when its time has come (``scheduled_at``, else at once) and a retryable
failure is not cooling down. :func:`due_at` gives that time for a call's state; the worker's
state store keeps it as an indexed column, so the dispatcher finds due calls through the index
(oldest due first) and never scans pending calls. Live calls (placed and not yet ended) and
placements in flight count against Retell's concurrency limit (:func:`free_slots`). A request
placed, failed for good or cancelled is never due again, so a restart or replay that rebuilds
the same states decides the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ringlog.calls.state import CallState


@dataclass(frozen=True)
class DispatchPolicy:
    """The dispatcher's limits (from the worker settings)."""

    max_live_calls: int
    cooldown: timedelta


def due_at(state: CallState, policy: DispatchPolicy) -> datetime | None:
    """When this request may be placed (``None``: it is not pending, so never)."""
    if state.dispatch != "pending" or state.request is None:
        return None
    at = state.request.due_at
    if state.last_failure_at is not None:
        at = max(at, state.last_failure_at + policy.cooldown)
    return at


def is_due(state: CallState, now: datetime, policy: DispatchPolicy) -> bool:
    """Whether this one request may be placed at ``now`` (ignoring the concurrency cap)."""
    at = due_at(state, policy)
    return at is not None and at <= now


def free_slots(policy: DispatchPolicy, *, live: int, in_flight: int) -> int:
    """How many more calls may be placed now, given the live calls and placements in flight
    across every worker."""
    return max(0, policy.max_live_calls - live - in_flight)
