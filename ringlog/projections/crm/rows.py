"""Session, dialog and task events → CRM row upserts. Pure: no I/O, no clock.

Each event becomes zero or more :class:`Upsert`\\ s. An upsert inserts its whole row when the
key is new; otherwise it overwrites only the columns the event owns (``update``, plus
``version``), and only when its ``version`` is higher than the stored one. The version is the
event's log offset: every event that touches one entity comes from one partition (session
events are keyed by phone, dialog turns by call ref), so offsets order them exactly, and a
replay of older events — or of the same ones — changes nothing. Task events are keyed by task
id on ``tasks``, so the same holds for tasks.

| event | rows |
|---|---|
| ``session.started`` / ``session.resumed`` | interaction of its call: in progress |
| ``session.progressed`` | interaction: stage reached |
| ``session.dropped`` | interaction: dropped, ended at, stage reached |
| ``session.completed`` | patient, appointment, interaction of its call: completed |
| ``dialog.turn`` | one turn of its call |
| ``task.field_writeback`` | task: last event; one task-field row per field written |
| ``task.rescheduled`` | task: scheduled at, the call moved |
| ``task.deleted`` | task: deleted (a tombstone: kept, never un-deleted), when, why |
| ``task.incoming_call`` | task: caller, number called, notes, patient ref |
| anything else | nothing |

Transcripts are not built here: turns and session events arrive on different topics in any
order, so the store keeps turns in their own table and recomputes an interaction's
``transcript`` and ``turns`` from it (:func:`transcript`) in the transaction that touched either.
Task fields work the same way: each field is its own row with its own version, so a later
writeback wins per field, and the store recomputes a task's ``fields`` (a JSON object, keys
sorted: :func:`fields_json`) from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import orjson

from ringlog.projections.base import Event
from ringlog.schemas import (
    DialogTurn,
    Envelope,
    SessionCompleted,
    SessionDropped,
    SessionExpired,
    SessionIdentityFailed,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
)
from ringlog.schemas.base import RINGLOG_NAMESPACE
from ringlog.schemas.retell import is_inbound_ref

TableName = Literal["patients", "appointments", "interactions", "turns", "tasks", "task_fields"]
Outcome = Literal["in_progress", "dropped", "completed"]

#: Namespace of the CRM's derived ids (UUIDv5). Never change it: rebuilds must derive the same.
CRM_NAMESPACE = uuid.uuid5(RINGLOG_NAMESPACE, "crm")

#: Event types the CRM projection reads; records of other types are skipped.
HANDLED: frozenset[str] = frozenset(
    model.event_type
    for model in (
        SessionStarted,
        SessionProgressed,
        SessionDropped,
        SessionResumed,
        SessionIdentityFailed,
        SessionCompleted,
        SessionExpired,
        DialogTurn,
        TaskFieldWriteback,
        TaskRescheduled,
        TaskDeleted,
        TaskIncomingCall,
    )
)


class Upsert(NamedTuple):
    """Insert ``values`` (a whole row, ``version`` included) into ``table``; on a key conflict
    overwrite the ``update`` columns and ``version`` if ``values["version"]`` is newer."""

    table: TableName
    values: Mapping[str, Any]
    update: tuple[str, ...]

    @property
    def version(self) -> int:
        """The version this upsert writes (the event's log offset)."""
        return int(self.values["version"])


def patient_id(phone: str, date_of_birth: Any) -> str:
    """The patient's id: UUIDv5 of phone and date of birth (ISO), stable across rebuilds."""
    return str(uuid.uuid5(CRM_NAMESPACE, f"patient\x1f{phone}\x1f{date_of_birth.isoformat()}"))


def appointment_id(session_id: str) -> str:
    """The appointment's id: UUIDv5 of the session that booked it."""
    return str(uuid.uuid5(CRM_NAMESPACE, f"appointment\x1f{session_id}"))


def direction(call_ref: str) -> str:
    """``inbound`` for refs given to calls the patient placed, else ``outbound``
    (:func:`ringlog.schemas.retell.is_inbound_ref`)."""
    return "inbound" if is_inbound_ref(call_ref) else "outbound"


def transcript(turns: Iterable[tuple[int, str, str]]) -> str:
    """``"role: text"`` lines of ``(turn_index, role, text)`` turns, in turn order."""
    return "\n".join(f"{role}: {text}" for _, role, text in sorted(turns, key=lambda t: t[0]))


def fields_json(values: Iterable[tuple[str, str]]) -> str:
    """The ``fields`` column of a task from its ``(name, value as JSON)`` field rows: a JSON
    object with sorted keys, the same bytes whatever the input order."""
    found = {name: orjson.loads(value) for name, value in values}
    return orjson.dumps(found, option=orjson.OPT_SORT_KEYS).decode()


def project(events: Sequence[Event]) -> list[Upsert]:
    """The upserts of ``events``, in order; each event's version is its log offset."""
    return [row for event in events for row in rows_for(event.envelope, event.offset)]


def rows_for(envelope: Envelope, version: int) -> list[Upsert]:
    """The upserts one event causes (``[]`` for events the CRM does not keep)."""
    p = envelope.payload
    at = envelope.occurred_at
    if isinstance(p, SessionStarted | SessionResumed):
        return [
            _interaction(
                p.call_ref,
                p.session_id,
                p.phone,
                version,
                {"started_at": at, "outcome": "in_progress", "stage_reached": p.stage},
                owns=("session_id", "phone", "direction", "started_at", "outcome"),
            )
        ]
    if isinstance(p, SessionProgressed):
        return [
            _interaction(p.call_ref, p.session_id, p.phone, version, {"stage_reached": p.stage})
        ]
    if isinstance(p, SessionDropped):
        changes = {"outcome": "dropped", "ended_at": at, "stage_reached": p.stage}
        return [_interaction(p.call_ref, p.session_id, p.phone, version, changes)]
    if isinstance(p, SessionCompleted):
        return _completed(p, at, version)
    if isinstance(p, DialogTurn):
        row = {
            "call_ref": p.call_ref,
            "turn_index": p.turn_index,
            "role": p.role,
            "text": p.text,
            "version": version,
        }
        return [Upsert("turns", row, ("role", "text"))]
    if isinstance(p, TaskFieldWriteback | TaskRescheduled | TaskDeleted | TaskIncomingCall):
        return _task_rows(p, envelope.type, at, version)
    return []


def _task_rows(
    p: TaskFieldWriteback | TaskRescheduled | TaskDeleted | TaskIncomingCall,
    event_type: str,
    at: Any,
    version: int,
) -> list[Upsert]:
    """The task row (owning only what the event says) and, for a writeback, its field rows."""
    changes: dict[str, Any]
    fields: list[Upsert] = []
    if isinstance(p, TaskFieldWriteback):
        changes = {}
        fields = [
            Upsert(
                "task_fields",
                {
                    "task_id": p.task_id,
                    "name": name,
                    "value": orjson.dumps(p.fields[name]).decode(),
                    "version": version,
                },
                ("value",),
            )
            for name in sorted(p.fields)
        ]
    elif isinstance(p, TaskRescheduled):
        changes = {"scheduled_at": p.scheduled_at, "scheduled_call_ref": p.call_ref}
    elif isinstance(p, TaskDeleted):
        changes = {"deleted": True, "deleted_at": at, "deleted_reason": p.reason}
    else:
        changes = {
            "incoming_from": p.from_number,
            "incoming_to": p.to_number,
            "incoming_notes": p.notes,
            "patient_ref": p.patient_ref,
        }
    row: dict[str, Any] = {
        "task_id": p.task_id,
        "fields": "{}",
        "scheduled_at": None,
        "scheduled_call_ref": None,
        "deleted": False,
        "deleted_at": None,
        "deleted_reason": None,
        "incoming_from": None,
        "incoming_to": None,
        "incoming_notes": None,
        "patient_ref": None,
        "last_event_type": event_type,
        "updated_at": at,
        "version": version,
    }
    row.update(changes)
    return [Upsert("tasks", row, ("last_event_type", "updated_at", *changes)), *fields]


def _completed(p: SessionCompleted, at: Any, version: int) -> list[Upsert]:
    patient = patient_id(p.phone, p.patient.date_of_birth)
    a = p.appointment
    changes = {"outcome": "completed", "ended_at": at, "stage_reached": "completed"}
    return [
        Upsert(
            "patients",
            {
                "patient_id": patient,
                "name": p.patient.name,
                "date_of_birth": p.patient.date_of_birth,
                "phone": p.phone,
                "updated_at": at,
                "version": version,
            },
            ("name", "date_of_birth", "phone", "updated_at"),
        ),
        Upsert(
            "appointments",
            {
                "appointment_id": appointment_id(p.session_id),
                "patient_id": patient,
                "kind": a.kind,
                "date": a.date,
                "time": a.time,
                "site": a.site,
                "session_id": p.session_id,
                "booked_at": at,
                "version": version,
            },
            ("patient_id", "kind", "date", "time", "site", "session_id", "booked_at"),
        ),
        _interaction(p.call_ref, p.session_id, p.phone, version, changes),
    ]


def _interaction(
    call_ref: str,
    session_id: str,
    phone: str,
    version: int,
    changes: Mapping[str, Any],
    *,
    owns: tuple[str, ...] = (),
) -> Upsert:
    """An interaction upsert that owns ``changes`` (and ``owns``) on conflict.

    When the row is new (its start event was lost or not yet seen) the other columns get
    neutral defaults; ``turns``/``transcript`` are filled in by the store.
    """
    row: dict[str, Any] = {
        "call_ref": call_ref,
        "session_id": session_id,
        "phone": phone,
        "direction": direction(call_ref),
        "started_at": None,
        "ended_at": None,
        "outcome": "in_progress",
        "stage_reached": None,
        "turns": 0,
        "transcript": "",
        "version": version,
    }
    row.update(changes)
    update = tuple(dict.fromkeys((*owns, *changes)))
    return Upsert("interactions", row, update)
