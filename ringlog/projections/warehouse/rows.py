"""Events → warehouse rows. Pure: no I/O, no clock, no randomness.

:func:`project` turns each event into operations for the store:

* a :class:`Row` for the append-style tables — ``CALL_EVENTS`` (every event), ``DIALOG_TURNS``
  (``dialog.turn``) and ``ABT_EVENTS`` (``abt.event``) — whose whole row the event determines;
* a :class:`Fold` for the folded tables — ``CALLS`` (every ``calls`` event, by call ref),
  ``SESSIONS`` (every ``sessions`` event, by session id) and ``TASKS`` (every ``tasks`` event,
  by task id) — whose row depends on the key's earlier events too.

Folds are applied by :mod:`.folds` (all events of one key sit on one partition, so the offset
orders them exactly and a replay folds nothing twice). Before anything else sees an event, its
phone numbers are passed through :mod:`.phones` (no clear number reaches the warehouse when
hashing is on) and, unless transcripts are kept, its names, dates of birth and utterances are
withheld by :mod:`.personal`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ringlog.projections.base import Event
from ringlog.projections.warehouse.personal import withhold
from ringlog.projections.warehouse.phones import INBOUND_KEY, Protect, redact
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
    DialogTurn,
    Envelope,
)


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


# -- events → operations ------------------------------------------------------------------------


def project(
    events: Sequence[Event], protect: Protect, *, transcripts: bool = False
) -> list[Operation]:
    """The operations of ``events``, in order (per event: see :func:`operations_for`)."""
    return [
        op for event in events for op in operations_for(event, protect, transcripts=transcripts)
    ]


def operations_for(event: Event, protect: Protect, *, transcripts: bool = False) -> list[Operation]:
    """What one event writes: its ``CALL_EVENTS`` row, plus its family's row or fold.

    Phone numbers go through ``protect``; names, dates of birth and utterances are withheld
    unless ``transcripts`` (:func:`.personal.withhold`).
    """
    envelope = redact(event.envelope, protect)
    if not transcripts:
        envelope = withhold(envelope)
    offset = event.offset
    p = envelope.payload
    ops: list[Operation] = [Row(CALL_EVENTS.name, call_event_row(event, envelope))]
    family = p.topic
    if family == "calls" and not envelope.key.startswith(INBOUND_KEY):
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
    """One ``DIALOG_TURNS`` row (``TEXT`` is ``NULL`` when utterances are withheld)."""
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


def latest_by_key(
    table_key: Sequence[str], rows: Iterable[Mapping[str, Any]], version: str = "VERSION"
) -> list[Mapping[str, Any]]:
    """One row per key: the one with the highest ``version`` column (the first of equals), in
    the order keys were first seen. Staged rows must be unique per key for the upsert."""
    return _one_per_key(table_key, rows, version, operator.gt)


def earliest_by_key(
    table_key: Sequence[str], rows: Iterable[Mapping[str, Any]], version: str = "VERSION"
) -> list[Mapping[str, Any]]:
    """One row per key: the one with the lowest ``version`` column (the first of equals), in
    the order keys were first seen (append-only tables, where the first copy stands)."""
    return _one_per_key(table_key, rows, version, operator.lt)


def _one_per_key(
    table_key: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    version: str,
    replaces: Callable[[Any, Any], bool],
) -> list[Mapping[str, Any]]:
    chosen: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        k = tuple(row[name] for name in table_key)
        seen = chosen.get(k)
        if seen is None or replaces(row[version], seen[version]):
            chosen[k] = row
    return list(chosen.values())
