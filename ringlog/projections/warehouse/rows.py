"""Events → warehouse rows. Pure: no I/O, no clock, no randomness.

:func:`project` turns each event into operations for the store:

* a :class:`Row` for the append-style tables — ``CALL_EVENTS`` (every event), ``DIALOG_TURNS``
  (``dialog.turn``) and ``ABT_EVENTS`` (``abt.event``) — whose whole row the event determines;
* a :class:`Fold` for the folded tables — ``CALLS`` (every ``calls`` event, by call ref),
  ``SESSIONS`` (every ``sessions`` event, by session id) and ``TASKS`` (every ``tasks`` event,
  by task id) — whose row depends on the key's earlier events too.

The store reads the stored fold state of the keys a batch folds, and :func:`fold_rows` applies
the batch's events on top of it: only events whose offset is above the row's ``VERSION``, in
offset order. All events of one key sit on one partition (they share the Kafka key), so the
offset orders them exactly and a replay of any of them folds nothing twice. ``CALLS`` reuses
:func:`ringlog.calls.state.apply` and ``SESSIONS`` :func:`ringlog.sessions.state.apply`; the
state they resume from is kept in the row's ``FOLD_STATE`` column.

Phone numbers are protected before anything else sees them: :func:`redact` replaces every phone
number of an envelope (payload fields, and the key of ``sessions`` events) with
:func:`hash_phone` — HMAC-SHA256 under a secret key, hex — or leaves them clear when hashing is
off. The raw payload kept in ``CALL_EVENTS`` and the fold states are redacted the same way, so
no clear number reaches the warehouse when hashing is on.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ringlog.calls import state as call_fold
from ringlog.calls.record import call_record
from ringlog.calls.state import CallState
from ringlog.projections.runner import Event
from ringlog.projections.warehouse.schema import (
    ABT_EVENTS,
    CALL_EVENTS,
    CALLS,
    DIALOG_TURNS,
    SESSIONS,
    TASKS,
)
from ringlog.schemas import (
    AbtEvent,
    CallRequested,
    DialogTurn,
    Envelope,
    EventModel,
    RetellCallInbound,
    RetellWebhook,
    SessionCompleted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
)
from ringlog.sessions import state as session_fold
from ringlog.sessions.state import SessionState

#: Turns a phone number into what the warehouse stores (a hash, or the number itself).
Protect = Callable[[str], str]
#: A stored fold: the ``FOLD_STATE`` JSON (``None`` when the key is new) and its ``VERSION``.
Stored = tuple[Mapping[str, Any] | None, int]

_INBOUND_KEY = "inbound:"


@dataclass(frozen=True)
class Row:
    """A whole row of an append-style table; ``values["VERSION"]`` is the event's offset."""

    table: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Fold:
    """Fold ``envelope`` (already redacted) into the row ``key`` of a folded table."""

    table: str
    key: str
    version: int
    envelope: Envelope


Operation = Row | Fold


# -- phone numbers ------------------------------------------------------------------------------


def hash_phone(number: str, key: bytes) -> str:
    """HMAC-SHA256 of the number (surrounding spaces removed) under ``key``, as 64 hex digits.

    The same number and key always give the same hash, so analysts can join and count by it;
    without the key it cannot be reversed by trying every number.
    """
    return hmac.digest(key, number.strip().encode(), "sha256").hex()


def phone_protector(key: str, *, enabled: bool = True) -> Protect:
    """:func:`hash_phone` under ``key`` (memoised: numbers repeat), or the identity when
    hashing is off."""
    if not enabled:
        return lambda number: number
    secret = key.encode()

    @functools.lru_cache(maxsize=65_536)
    def protect(number: str) -> str:
        return hash_phone(number, secret)

    return protect


def _opt(protect: Protect, number: str | None) -> str | None:
    return protect(number) if number else number


def redact(envelope: Envelope, protect: Protect) -> Envelope:
    """The envelope with every phone number it carries passed through ``protect``.

    Covers ``call.requested`` (to/from), Retell webhooks (``call.from_number``, ``to_number``,
    ``transfer_destination``), ``retell.call_inbound``, every ``sessions`` event (``phone`` and
    the key) and ``task.incoming_call``. Copies are made without re-validation, since a hash is
    not an E.164 number.
    """
    p = envelope.payload
    payload: EventModel = p
    key = envelope.key
    if isinstance(p, CallRequested):
        payload = p.model_copy(
            update={"to_number": protect(p.to_number), "from_number": protect(p.from_number)}
        )
    elif isinstance(p, RetellWebhook):
        call = p.call
        changes = {
            name: protect(value)
            for name in ("from_number", "to_number", "transfer_destination")
            if (value := getattr(call, name))
        }
        if changes:
            payload = p.model_copy(update={"call": call.model_copy(update=changes)})
    elif isinstance(p, RetellCallInbound):
        inbound = p.call_inbound
        changes = {
            "from_number": protect(inbound.from_number),
            "to_number": protect(inbound.to_number),
        }
        payload = p.model_copy(update={"call_inbound": inbound.model_copy(update=changes)})
    elif isinstance(p, TaskIncomingCall):
        payload = p.model_copy(
            update={"from_number": protect(p.from_number), "to_number": protect(p.to_number)}
        )
    elif p.topic == "sessions" and isinstance(getattr(p, "phone", None), str):
        payload = p.model_copy(update={"phone": protect(p.phone)})  # type: ignore[attr-defined]
        key = protect(key)
    if key.startswith(_INBOUND_KEY):
        key = _INBOUND_KEY + protect(key.removeprefix(_INBOUND_KEY))
    if payload is p and key == envelope.key:
        return envelope
    return envelope.model_copy(update={"payload": payload, "key": key})


# -- events → operations ------------------------------------------------------------------------


def project(events: Sequence[Event], protect: Protect) -> list[Operation]:
    """The operations of ``events``, in order (per event: see :func:`operations_for`)."""
    return [op for event in events for op in operations_for(event, protect)]


def operations_for(event: Event, protect: Protect) -> list[Operation]:
    """What one event writes: its ``CALL_EVENTS`` row, plus its family's row or fold."""
    envelope = redact(event.envelope, protect)
    offset = event.offset
    p = envelope.payload
    ops: list[Operation] = [Row(CALL_EVENTS.name, call_event_row(event, envelope))]
    family = p.topic
    if family == "calls" and not envelope.key.startswith(_INBOUND_KEY):
        ops.append(Fold(CALLS.name, envelope.key, offset, envelope))
    elif family == "sessions" and isinstance(session_id := getattr(p, "session_id", None), str):
        ops.append(Fold(SESSIONS.name, session_id, offset, envelope))
    elif family == "tasks" and isinstance(task_id := getattr(p, "task_id", None), str):
        ops.append(Fold(TASKS.name, task_id, offset, envelope))
    elif isinstance(p, DialogTurn):
        ops.append(Row(DIALOG_TURNS.name, dialog_turn_row(envelope, p, offset)))
    elif isinstance(p, AbtEvent):
        ops.append(Row(ABT_EVENTS.name, abt_row(envelope, p, offset)))
    return ops


def call_event_row(event: Event, envelope: Envelope) -> dict[str, Any]:
    """The raw event (``envelope`` is the redacted one) with its Kafka position.

    ``RECORD_METADATA`` mirrors the Snowflake Kafka connector's column: topic, partition,
    offset, key, plus ringlog's type and version and the envelope's times (and ``CreateTime``,
    the record's Kafka timestamp, when the runner provides it).
    """
    metadata: dict[str, Any] = {
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "key": envelope.key,
        "type": envelope.type,
        "schema_version": envelope.schema_version,
        "event_id": str(envelope.event_id),
        "occurred_at": envelope.occurred_at,
        "recorded_at": envelope.recorded_at,
    }
    created = getattr(event, "timestamp_ms", None)
    if isinstance(created, int):
        metadata["CreateTime"] = created
    return {
        "EVENT_ID": str(envelope.event_id),
        "TYPE": envelope.type,
        "SCHEMA_VERSION": envelope.schema_version,
        "KEY": envelope.key,
        "SOURCE": envelope.source,
        "CORRELATION_ID": envelope.correlation_id,
        "CAUSATION_ID": str(envelope.causation_id) if envelope.causation_id else None,
        "OCCURRED_AT": envelope.occurred_at,
        "RECORDED_AT": envelope.recorded_at,
        "TOPIC": event.topic,
        "PAYLOAD": envelope.payload.to_wire(),
        "RECORD_METADATA": metadata,
        "VERSION": event.offset,
    }


def dialog_turn_row(envelope: Envelope, turn: DialogTurn, version: int) -> dict[str, Any]:
    """One ``DIALOG_TURNS`` row."""
    return {
        "CALL_REF": turn.call_ref,
        "TURN_INDEX": turn.turn_index,
        "RETELL_CALL_ID": turn.call_id,
        "SESSION_ID": turn.session_id,
        "ROLE": turn.role,
        "TEXT": turn.text,
        "RESPONSE_ID": turn.response_id,
        "STAGE": turn.stage,
        "LATENCY_MS": turn.latency_ms,
        "OCCURRED_AT": envelope.occurred_at,
        "EVENT_ID": str(envelope.event_id),
        "VERSION": version,
    }


def abt_row(envelope: Envelope, abt: AbtEvent, version: int) -> dict[str, Any]:
    """One ``ABT_EVENTS`` row."""
    return {
        "ABT_ID": str(abt.abt_id),
        "NAME": abt.name,
        "CALL_REF": abt.call_ref,
        "RETELL_CALL_ID": abt.retell_call_id,
        "ATTRIBUTES": dict(abt.attributes),
        "OCCURRED_AT": envelope.occurred_at,
        "RECORDED_AT": envelope.recorded_at,
        "EVENT_ID": str(envelope.event_id),
        "VERSION": version,
    }


# -- folded tables ------------------------------------------------------------------------------


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
    state = CallState.model_validate(state_json) if state_json else None
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
        "FOLD_STATE": call_state_json(state),
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


def call_state_json(state: CallState) -> dict[str, Any]:
    """The call state as JSON, sets as sorted lists (the same text in every process)."""
    data = state.model_dump(mode="json")
    for name, value in state:
        if isinstance(value, frozenset):
            data[name] = sorted(data[name], key=str)
    return data


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


def latest_by_key(
    table_key: Sequence[str], rows: Iterable[Mapping[str, Any]], version: str = "VERSION"
) -> list[Mapping[str, Any]]:
    """One row per key: the one with the highest ``version`` column (the first of equals), in
    the order keys were first seen. Staged rows must be unique per key for the upsert."""
    chosen: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        k = tuple(row[name] for name in table_key)
        seen = chosen.get(k)
        if seen is None or row[version] > seen[version]:
            chosen[k] = row
    return list(chosen.values())


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None
