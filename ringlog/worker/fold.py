"""The fold side of the worker's store: one batch of events into its tables.

:class:`BatchFold` runs inside the transaction :meth:`WorkerStore.apply
<ringlog.worker.store.WorkerStore.apply>` opens (which adds the checkpoint): it loads the
states of the batch's calls (one query), folds the batch with the pure
:func:`~ringlog.calls.state.apply`, and writes states, task rows and outbox changes, and drops
the leases the batch settles. Memory is bounded by the batch, never by history.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select, tuple_

from ringlog.calls.dispatch import DispatchPolicy
from ringlog.calls.state import CallState, apply
from ringlog.calls.tasks import task_effects
from ringlog.projections.base import Event
from ringlog.projections.checkpoint import upsert_many
from ringlog.projections.sql import among, insert_for
from ringlog.schemas import (
    CallCancelled,
    CallDispatched,
    CallDispatchFailed,
    CallRequested,
    CallRescheduled,
    Envelope,
    TaskDeleted,
    TaskRescheduled,
    decode,
    derived_event_id,
)
from ringlog.schemas.codec import encode
from ringlog.worker.schema import (
    CALLS,
    LEASES,
    OUTBOX,
    PROCESSOR,
    TASK_EVENTS,
    TASKS,
    index_columns,
)


@dataclass
class _Batch:
    """What one transaction folds: states by call ref, and the rows it changes."""

    states: dict[str, CallState] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    settled_effects: list[tuple[str, str]] = field(default_factory=list)
    settled_leases: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class BatchFold:
    """Folds batches of one deployment's ``calls``, ``abt`` and ``tasks`` events into the
    worker's tables, in the caller's transaction."""

    calls_topic: str
    tasks_topic: str
    policy: DispatchPolicy

    def fold(self, connection: Connection, events: Sequence[Event]) -> int:
        """Fold ``events`` (a batch, in log order) and write what changed through
        ``connection``; the caller commits (with the checkpoint). Returns the call rows
        written."""
        self._lock_tasks(connection, events)
        batch = _Batch(states=self._states(connection, self._call_refs(events)))
        for event in events:
            if event.topic == self.tasks_topic:
                self._fold_task(connection, batch, event.envelope)
            else:
                self._fold_call(connection, batch, event)
        return self._write(connection, batch)

    def _call_refs(self, events: Iterable[Event]) -> list[str]:
        return sorted({e.envelope.key for e in events if e.topic != self.tasks_topic})

    def _lock_tasks(self, connection: Connection, events: Sequence[Event]) -> None:
        """Record every task the batch names (deleted once a ``task.deleted`` is seen), in a
        fixed order. The row locks this takes make a task event and a request for the same
        task, folded at once by two processes, see each other: the later transaction waits
        for the earlier one and then reads what it wrote."""
        deleted: dict[str, bool] = {}
        for event in events:
            payload = event.envelope.payload
            if event.topic == self.tasks_topic:
                gone = isinstance(payload, TaskDeleted)
                deleted[event.envelope.key] = deleted.get(event.envelope.key, False) or gone
            elif isinstance(payload, CallRequested) and payload.task_ref:
                deleted.setdefault(payload.task_ref, False)
        if not deleted:
            return
        insert = insert_for(connection)(TASKS)
        statement = insert.on_conflict_do_update(
            index_elements=[TASKS.c.topic, TASKS.c.task_id],
            set_={"deleted": TASKS.c.deleted | insert.excluded.deleted},
        )
        connection.execute(
            statement,
            [
                {"topic": self.tasks_topic, "task_id": task_id, "deleted": gone}
                for task_id, gone in sorted(deleted.items())
            ],
        )

    def _states(self, connection: Connection, refs: Collection[str]) -> dict[str, CallState]:
        states: dict[str, CallState] = {}
        for chunk in among(connection, CALLS.c.call_ref, list(refs)):
            rows = connection.execute(
                select(CALLS.c.state).where(CALLS.c.topic == self.calls_topic, chunk)
            )
            for (raw,) in rows:
                state = CallState.decode(raw)
                states[state.call_ref] = state
        return states

    def _fold_call(self, connection: Connection, batch: _Batch, event: Event) -> None:
        envelope = event.envelope
        ref = envelope.key
        state = apply(batch.states.get(ref), envelope)
        batch.states[ref] = state
        batch.partitions[ref] = event.partition  # calls and abt are co-partitioned
        payload = envelope.payload
        if isinstance(payload, CallDispatched | CallDispatchFailed):
            batch.settled_leases.add(ref)
        elif isinstance(payload, CallRescheduled | CallCancelled):
            batch.settled_effects.append((ref, str(envelope.event_id)))
        elif isinstance(payload, CallRequested) and payload.task_ref:
            for task in self._task_events(connection, payload.task_ref):
                self._derive(batch, task, [state])

    def _fold_task(self, connection: Connection, batch: _Batch, task: Envelope) -> None:
        if not isinstance(task.payload, TaskRescheduled | TaskDeleted):
            return
        insert = insert_for(connection)(TASK_EVENTS)
        connection.execute(
            insert.on_conflict_do_nothing(),
            {
                "topic": self.tasks_topic,
                "task_id": task.key,
                "event_id": str(task.event_id),
                "body": encode(task).decode(),
            },
        )
        stored = connection.execute(
            select(CALLS.c.state, CALLS.c.partition).where(
                CALLS.c.topic == self.calls_topic, CALLS.c.task_ref == task.key
            )
        )
        candidates: dict[str, CallState] = {}
        for raw, partition in stored:
            state = CallState.decode(raw)
            candidates[state.call_ref] = state
            batch.partitions.setdefault(state.call_ref, partition)
        for ref, state in batch.states.items():  # folded in this batch, newer than stored
            if state.request is not None and state.request.task_ref == task.key:
                candidates[ref] = state
        self._derive(batch, task, list(candidates.values()))

    def _task_events(self, connection: Connection, task_id: str) -> list[Envelope]:
        rows = connection.execute(
            select(TASK_EVENTS.c.body).where(
                TASK_EVENTS.c.topic == self.tasks_topic, TASK_EVENTS.c.task_id == task_id
            )
        )
        tasks = [decode(raw.encode()) for (raw,) in rows]
        return sorted(tasks, key=lambda e: (e.occurred_at, str(e.event_id)))

    def _derive(self, batch: _Batch, task: Envelope, states: list[CallState]) -> None:
        """Owe the effects of ``task`` on ``states`` to the log (outbox rows, same transaction)."""
        for effect in task_effects(states, task):
            ref = effect.call_ref
            envelope = Envelope.new(
                effect,
                source=PROCESSOR,
                correlation_id=ref,
                causation_id=task.event_id,
                event_id=derived_event_id(str(task.event_id), ref),
            )
            batch.outbox.append(
                {
                    "topic": self.calls_topic,
                    "call_ref": ref,
                    "event_id": str(envelope.event_id),
                    "partition": batch.partitions.get(ref, 0),
                    "body": encode(envelope).decode(),
                }
            )

    def _write(self, connection: Connection, batch: _Batch) -> int:
        topic = self.calls_topic
        rows = [
            {
                "topic": topic,
                "call_ref": ref,
                "partition": batch.partitions.get(ref, 0),
                "version": state.events,
                "state": state.encode().decode(),
                **index_columns(state, self.policy),
            }
            for ref, state in batch.states.items()
            if ref in batch.partitions
        ]
        upsert_many(
            connection,
            CALLS,
            rows,
            update=("partition", "version", "state", "due_ms", "live", "owes", "task_ref"),
            version="version",
        )
        if batch.outbox:
            insert = insert_for(connection)(OUTBOX)
            connection.execute(insert.on_conflict_do_nothing(), batch.outbox)
        if batch.settled_effects:
            connection.execute(
                delete(OUTBOX).where(
                    OUTBOX.c.topic == topic,
                    tuple_(OUTBOX.c.call_ref, OUTBOX.c.event_id).in_(batch.settled_effects),
                )
            )
        for chunk in among(connection, LEASES.c.call_ref, sorted(batch.settled_leases)):
            connection.execute(delete(LEASES).where(LEASES.c.topic == topic, chunk))
        return len(rows)
