"""The folded warehouse tables — ``CALLS``, ``SESSIONS``, ``TASKS`` — as pure folds.

The store reads the stored fold state of the keys a batch folds, and :func:`fold_rows` applies
the batch's events on top of it: only events whose offset is above the row's ``VERSION``, in
offset order. ``CALLS`` reuses :func:`ringlog.calls.state.apply` and ``SESSIONS``
:func:`ringlog.sessions.state.apply`; ``TASKS`` has its own small fold (:func:`apply_task`).
The state each resumes from is kept in the row's ``FOLD_STATE`` column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ringlog.calls import state as call_fold
from ringlog.calls.record import call_record
from ringlog.calls.state import CallState
from ringlog.projections.warehouse.rows import Fold
from ringlog.projections.warehouse.schema import (
    CALLS,
    SESSIONS,
    TASKS,
)
from ringlog.schemas import (
    Envelope,
    SessionCompleted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
)
from ringlog.sessions import state as session_fold
from ringlog.sessions.state import SessionState

#: A stored fold: the ``FOLD_STATE`` JSON (``None`` when the key is new) and its ``VERSION``.
Stored = tuple[Mapping[str, Any] | None, int]


def fold_rows(
    table: str, stored: Mapping[str, Stored], folds: Iterable[Fold]
) -> list[dict[str, Any]]:
    """The new rows of ``table`` after folding ``folds`` onto the ``stored`` states.

    Per key, events at or below the stored version are skipped (already folded) and the rest
    are folded in offset order. Keys where nothing new was folded, or whose fold yields no row
    (a session event before its ``session.started``), produce nothing.
    """
    folder = _FOLDERS[table]
    by_key: dict[str, list[Fold]] = {}
    for f in folds:
        by_key.setdefault(f.key, []).append(f)
    rows = []
    for key, pending in by_key.items():
        state_json, version = stored.get(key, (None, -1))
        fresh = sorted((f for f in pending if f.version > version), key=lambda f: f.version)
        if not fresh:
            continue
        row = folder(key, state_json, fresh)
        if row is not None:
            rows.append(row)
    return rows


def _fold_call(
    key: str, state_json: Mapping[str, Any] | None, folds: Sequence[Fold]
) -> dict[str, Any] | None:
    state = CallState.from_json(state_json) if state_json else None
    for f in folds:
        state = call_fold.apply(state, f.envelope)
    assert state is not None  # at least one event was folded
    return calls_row(state, folds[-1].version)


def calls_row(state: CallState, version: int) -> dict[str, Any]:
    """The ``CALLS`` row of a (redacted) call state at ``version``."""
    record = call_record(state)
    request = state.request
    return {
        "CALL_REF": state.call_ref,
        "RETELL_CALL_ID": state.retell_call_id,
        "DIRECTION": state.direction,
        "STATUS": call_status(state),
        "CONNECTED": state.connected,
        "FROM_NUMBER_HASH": state.from_number,
        "TO_NUMBER_HASH": state.to_number,
        "AGENT_ID": state.agent_id,
        "TASK_REF": record.task_ref,
        "PATIENT_REF": record.patient_ref,
        "REQUESTED_AT": request.requested_at if request else None,
        "SCHEDULED_AT": request.scheduled_at if request else None,
        "DISPATCHED_AT": state.dispatched_at,
        "STARTED_AT": state.started_at,
        "ENDED_AT": state.ended_at,
        "DURATION_MS": state.duration_ms,
        "DISCONNECTION_REASON": state.disconnection_reason,
        "SUMMARY": record.summary,
        "SENTIMENT": record.sentiment,
        "SUCCESSFUL": record.successful,
        "COST": record.cost,
        "DISPATCH_ATTEMPTS": state.dispatch_attempts,
        "LAST_FAILURE": state.last_failure,
        "RECORDED": state.recorded,
        "EVENTS": state.events,
        "FOLD_STATE": state.to_json(),  # sets as sorted lists: the same text in every process
        "VERSION": version,
    }


def call_status(state: CallState) -> str:
    """One word for where the call is.

    Retell's final phase when it has one (``ended``, ``not_connected``, ``error``), ``ongoing``
    while connected, else the dispatch outcome (``failed``, ``cancelled``, ``dispatched``,
    ``pending``), else Retell's phase (``registered``, ``unknown``) for calls ringlog did not
    request (inbound).
    """
    if state.phase in ("ended", "not_connected", "error", "ongoing"):
        return state.phase
    if state.dispatch is not None:
        return state.dispatch
    return state.phase


def _fold_session(
    key: str, state_json: Mapping[str, Any] | None, folds: Sequence[Fold]
) -> dict[str, Any] | None:
    state = SessionState.from_json(state_json) if state_json else None
    completed_at = _time(state_json.get("completed_at")) if state_json else None
    for f in folds:
        state = session_fold.apply(state, f.envelope)
        if state is not None and isinstance(f.envelope.payload, SessionCompleted):
            completed_at = f.envelope.occurred_at
    if state is None:
        return None
    return sessions_row(state, completed_at, folds[-1].version)


def sessions_row(
    state: SessionState, completed_at: dt.datetime | None, version: int
) -> dict[str, Any]:
    """The ``SESSIONS`` row of a (redacted) session state at ``version``.

    The booking slots are not kept (they hold personal details and no column needs them).
    """
    stored = replace(state, slots=MappingProxyType({}))
    fold_state = stored.to_json() | {
        "completed_at": completed_at.isoformat() if completed_at else None
    }
    return {
        "SESSION_ID": state.session_id,
        "PHONE_HASH": state.phone,
        "TASK": state.task,
        "STATUS": state.status,
        "STAGE": state.stage,
        "STARTED_AT": state.started_at,
        "UPDATED_AT": state.updated_at,
        "CALLS": len(state.call_refs),
        "CALL_REFS": list(state.call_refs),
        "COMPLETED_AT": completed_at,
        "RESUMED": len(state.call_refs) > 1,
        "EXPIRES_AT": state.expires_at,
        "FOLD_STATE": fold_state,
        "VERSION": version,
    }


@dataclass(frozen=True)
class TaskState:
    """What the warehouse knows of one business task (the fold of its ``tasks`` events)."""

    task_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    scheduled_at: dt.datetime | None = None
    call_ref: str | None = None
    deleted: bool = False
    deleted_at: dt.datetime | None = None
    delete_reason: str | None = None
    incoming_from: str | None = None
    incoming_to: str | None = None
    patient_ref: str | None = None
    last_event_type: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO text)."""
        return {
            "task_id": self.task_id,
            "fields": dict(self.fields),
            "scheduled_at": _iso(self.scheduled_at),
            "call_ref": self.call_ref,
            "deleted": self.deleted,
            "deleted_at": _iso(self.deleted_at),
            "delete_reason": self.delete_reason,
            "incoming_from": self.incoming_from,
            "incoming_to": self.incoming_to,
            "patient_ref": self.patient_ref,
            "last_event_type": self.last_event_type,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskState:
        """The inverse of :meth:`to_json`."""
        return cls(
            task_id=data["task_id"],
            fields=dict(data.get("fields") or {}),
            scheduled_at=_time(data.get("scheduled_at")),
            call_ref=data.get("call_ref"),
            deleted=bool(data.get("deleted")),
            deleted_at=_time(data.get("deleted_at")),
            delete_reason=data.get("delete_reason"),
            incoming_from=data.get("incoming_from"),
            incoming_to=data.get("incoming_to"),
            patient_ref=data.get("patient_ref"),
            last_event_type=data.get("last_event_type"),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
        )


def apply_task(state: TaskState | None, envelope: Envelope) -> TaskState:
    """Fold one ``tasks`` event (redacted). Deletion is final: it is a tombstone, never undone;
    later events still update ``LAST_EVENT_TYPE`` and ``UPDATED_AT`` but revive nothing."""
    p = envelope.payload
    at = envelope.occurred_at
    current = state or TaskState(task_id=envelope.key, created_at=at)
    updated = current.updated_at
    common: dict[str, Any] = {
        "last_event_type": envelope.type,
        "updated_at": at if updated is None else max(at, updated),
    }
    if isinstance(p, TaskFieldWriteback):
        common["fields"] = {**current.fields, **p.fields}
    elif isinstance(p, TaskRescheduled):
        common["scheduled_at"] = p.scheduled_at
        common["call_ref"] = p.call_ref or current.call_ref
    elif isinstance(p, TaskDeleted):
        if not current.deleted:
            common.update(deleted=True, deleted_at=at, delete_reason=p.reason)
    elif isinstance(p, TaskIncomingCall):
        common.update(
            incoming_from=p.from_number,
            incoming_to=p.to_number,
            patient_ref=p.patient_ref or current.patient_ref,
        )
    return replace(current, **common)


def _fold_task(
    key: str, state_json: Mapping[str, Any] | None, folds: Sequence[Fold]
) -> dict[str, Any] | None:
    state = TaskState.from_json(state_json) if state_json else None
    for f in folds:
        state = apply_task(state, f.envelope)
    assert state is not None
    return tasks_row(state, folds[-1].version)


def tasks_row(state: TaskState, version: int) -> dict[str, Any]:
    """The ``TASKS`` row of a task state at ``version``."""
    return {
        "TASK_ID": state.task_id,
        "FIELDS": dict(state.fields),
        "SCHEDULED_AT": state.scheduled_at,
        "CALL_REF": state.call_ref,
        "DELETED": state.deleted,
        "DELETED_AT": state.deleted_at,
        "DELETE_REASON": state.delete_reason,
        "INCOMING_FROM_HASH": state.incoming_from,
        "INCOMING_TO_HASH": state.incoming_to,
        "PATIENT_REF": state.patient_ref,
        "LAST_EVENT_TYPE": state.last_event_type,
        "CREATED_AT": state.created_at,
        "UPDATED_AT": state.updated_at,
        "FOLD_STATE": state.to_json(),
        "VERSION": version,
    }


_FOLDERS: dict[
    str, Callable[[str, Mapping[str, Any] | None, Sequence[Fold]], dict[str, Any] | None]
] = {
    CALLS.name: _fold_call,
    SESSIONS.name: _fold_session,
    TASKS.name: _fold_task,
}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None
