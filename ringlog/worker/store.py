"""The worker's state store: call states, task effects owed, dispatch leases, checkpoints.

One SQL database (the CRM database: SQLite embedded, PostgreSQL in production) holds, per
deployment topic:

* ``worker_calls`` — each call's :class:`~ringlog.calls.state.CallState` (JSON) folded from
  ``calls`` and ``abt``, with indexed columns the loops query instead of scanning: the time a
  pending request becomes due (``due_ms``), whether it holds a concurrency slot (``live``),
  whether it owes effects (``owes``), and its task;
* ``worker_tasks`` — every task id the log mentions, and whether it was deleted (the task API's
  index);
* ``worker_task_events`` — reschedules and deletions by task, so a call requested for the task
  but folded later still gets their effects;
* ``worker_outbox`` — task effects (``call.rescheduled`` / ``call.cancelled``) owed to the log;
  a call with one is *held*: not placed until the effect is folded, which deletes the row;
* ``worker_leases`` — placements with Retell in flight, across every worker process;
* ``worker_checkpoints`` — the next offset per ``(topic, partition)`` consumed.

:meth:`WorkerStore.apply` is the runtime's :class:`~ringlog.projections.base.Target`: it loads
the states of the batch's calls (one query), folds the batch with the pure
:func:`~ringlog.calls.state.apply`, and writes states, task rows, outbox changes and the
checkpoint in **one transaction**. Memory is bounded by the batch, never by history.

Scans, per call: ``apply`` reads the batch's keys and the rows of the tasks it names; the
loops read due calls by the ``due_ms`` index, live calls and leases (bounded by Retell's cap),
owing calls and outbox rows of the owned partitions (bounded by live work).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    select,
    text,
    tuple_,
    update,
)

from ringlog.calls.dispatch import DispatchPolicy, due_at, free_slots
from ringlog.calls.state import CallState, apply
from ringlog.calls.tasks import task_effects
from ringlog.calls.tracking import abt_owed, record_owed
from ringlog.projections.base import Event
from ringlog.projections.checkpoint import (
    checkpoint_table,
    read_checkpoint,
    upsert_many,
    write_checkpoint,
)
from ringlog.projections.sql import create_tables, insert_for, sql_engine
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
from ringlog.streams.offsets import Position

#: The processor's name: its checkpoint rows, its consumer group suffix, dead-letter origin.
PROCESSOR = "call-lifecycle"

METADATA = MetaData()

CALLS = Table(
    "worker_calls",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("call_ref", String(128), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("due_ms", BigInteger),
    Column("live", Boolean, nullable=False),
    Column("owes", Boolean, nullable=False),
    Column("task_ref", String(200)),
    Index("worker_calls_due", "topic", "partition", "due_ms"),
    Index("worker_calls_live", "topic", "live"),
    Index("worker_calls_owes", "topic", "partition", "owes"),
    Index("worker_calls_task", "topic", "task_ref"),
)

TASKS = Table(
    "worker_tasks",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("task_id", String(200), primary_key=True),
    Column("deleted", Boolean, nullable=False),
)

TASK_EVENTS = Table(
    "worker_task_events",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("task_id", String(200), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("body", Text, nullable=False),
)

OUTBOX = Table(
    "worker_outbox",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("call_ref", String(128), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Index("worker_outbox_partition", "topic", "partition"),
)

LEASES = Table(
    "worker_leases",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("call_ref", String(128), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

CHECKPOINTS = checkpoint_table(METADATA, "worker_checkpoints")


def index_columns(state: CallState, policy: DispatchPolicy) -> dict[str, Any]:
    """The indexed columns of a call's row, derived from its state (pure)."""
    due = due_at(state, policy)
    return {
        "due_ms": None if due is None else to_ms(due),
        "live": state.live,
        "owes": bool(abt_owed(state)) or record_owed(state),
        "task_ref": state.request.task_ref if state.request else None,
    }


def to_ms(at: datetime) -> int:
    """Milliseconds since the epoch (how times are indexed, the same on every dialect)."""
    return int(at.timestamp() * 1000)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return to_ms(datetime.now(UTC))


@dataclass
class _Batch:
    """What one transaction folds: states by call ref, and the rows it changes."""

    states: dict[str, CallState] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    settled_effects: list[tuple[str, str]] = field(default_factory=list)
    settled_leases: set[str] = field(default_factory=set)


class WorkerViews:
    """What readers (the API, tests, tools) read from the worker's store: a call's state,
    whether a task exists or was deleted, and how far the store has folded the log."""

    def __init__(
        self, engine: Engine, *, calls_topic: str, tasks_topic: str, abt_topic: str
    ) -> None:
        self.engine = engine
        self.calls_topic = calls_topic
        self.tasks_topic = tasks_topic
        self.abt_topic = abt_topic

    @classmethod
    def open(cls, url: str, *, calls_topic: str, tasks_topic: str, abt_topic: str) -> WorkerViews:
        """Open the store at ``url`` for reading (its tables are created when missing)."""
        engine = sql_engine(url)
        create_tables(engine, METADATA)
        return cls(engine, calls_topic=calls_topic, tasks_topic=tasks_topic, abt_topic=abt_topic)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    async def load_checkpoint(self, projection: str = PROCESSOR) -> dict[Position, int]:
        """The next offset per ``(topic, partition)`` already folded for ``projection``."""
        return await asyncio.to_thread(self._load_checkpoint, projection)

    def _load_checkpoint(self, projection: str) -> dict[Position, int]:
        with self.engine.connect() as connection:
            return read_checkpoint(connection, CHECKPOINTS, projection)

    async def call(self, call_ref: str) -> CallState | None:
        """The folded state of ``call_ref``, if any of its events was folded."""
        return await asyncio.to_thread(self._call, call_ref)

    def _call(self, call_ref: str) -> CallState | None:
        with self.engine.connect() as connection:
            raw = connection.execute(
                select(CALLS.c.state).where(
                    CALLS.c.topic == self.calls_topic, CALLS.c.call_ref == call_ref
                )
            ).scalar_one_or_none()
        return None if raw is None else CallState.model_validate_json(raw)

    async def task_deleted(self, task_id: str) -> bool | None:
        """Whether ``task_id`` was deleted; ``None`` when the log never mentioned it."""
        return await asyncio.to_thread(self._task_deleted, task_id)

    def _task_deleted(self, task_id: str) -> bool | None:
        with self.engine.connect() as connection:
            found: bool | None = connection.execute(
                select(TASKS.c.deleted).where(
                    TASKS.c.topic == self.tasks_topic, TASKS.c.task_id == task_id
                )
            ).scalar_one_or_none()
        return found


class WorkerStore(WorkerViews):
    """The worker's tables for one deployment (its ``calls``, ``tasks`` and ``abt`` topics).

    Blocking database work runs in a thread. Safe to share between the runtime's loop and the
    dispatcher; several worker processes share one database.
    """

    def __init__(
        self,
        url: str,
        *,
        calls_topic: str,
        tasks_topic: str,
        abt_topic: str,
        policy: DispatchPolicy,
    ) -> None:
        engine = sql_engine(url)
        create_tables(engine, METADATA)
        super().__init__(
            engine, calls_topic=calls_topic, tasks_topic=tasks_topic, abt_topic=abt_topic
        )
        self.policy = policy

    # -- the runtime's target ---------------------------------------------------------------

    async def apply(
        self, projection: str, operations: Sequence[Event], positions: Mapping[Position, int]
    ) -> None:
        """Fold ``operations`` (the batch's events, in log order) and store the result with
        ``positions``, in one transaction."""
        await asyncio.to_thread(self._apply, projection, operations, positions)

    def _apply(
        self, projection: str, events: Sequence[Event], positions: Mapping[Position, int]
    ) -> None:
        with self.engine.begin() as connection:
            self._lock_tasks(connection, events)
            batch = _Batch(states=self._states(connection, self._call_refs(events)))
            for event in events:
                if event.topic == self.tasks_topic:
                    self._fold_task(connection, batch, event.envelope)
                else:
                    self._fold_call(connection, batch, event)
            self._write(connection, batch)
            write_checkpoint(connection, CHECKPOINTS, projection, positions)

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
        refs = list(refs)
        for start in range(0, len(refs), 500):
            rows = connection.execute(
                select(CALLS.c.state).where(
                    CALLS.c.topic == self.calls_topic,
                    CALLS.c.call_ref.in_(refs[start : start + 500]),
                )
            )
            for (raw,) in rows:
                state = CallState.model_validate_json(raw)
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
            state = CallState.model_validate_json(raw)
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

    def _write(self, connection: Connection, batch: _Batch) -> None:
        topic = self.calls_topic
        rows = [
            {
                "topic": topic,
                "call_ref": ref,
                "partition": batch.partitions.get(ref, 0),
                "version": state.events,
                "state": state.model_dump_json(),
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
        if batch.settled_leases:
            connection.execute(
                delete(LEASES).where(
                    LEASES.c.topic == topic, LEASES.c.call_ref.in_(sorted(batch.settled_leases))
                )
            )

    # -- what the loops read ----------------------------------------------------------------

    async def owing(self, partitions: Collection[int]) -> list[CallState]:
        """The calls of ``partitions`` that owe a call record or ABT events."""
        return await asyncio.to_thread(self._owing, sorted(partitions))

    def _owing(self, partitions: list[int]) -> list[CallState]:
        if not partitions:
            return []
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(CALLS.c.state).where(
                    CALLS.c.topic == self.calls_topic,
                    CALLS.c.partition.in_(partitions),
                    CALLS.c.owes.is_(True),
                )
            )
            return [CallState.model_validate_json(raw) for (raw,) in rows]

    async def outbox(self, partitions: Collection[int]) -> list[Envelope]:
        """Task effects owed to the log by the calls of ``partitions``."""
        return await asyncio.to_thread(self._outbox, sorted(partitions))

    def _outbox(self, partitions: list[int]) -> list[Envelope]:
        if not partitions:
            return []
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(OUTBOX.c.body).where(
                    OUTBOX.c.topic == self.calls_topic, OUTBOX.c.partition.in_(partitions)
                )
            )
            return [decode(raw.encode()) for (raw,) in rows]

    async def claim_due(
        self, partitions: Collection[int], *, owner: str, lease_ms: int, limit: int = 50
    ) -> list[CallState]:
        """Lease the due calls of ``partitions`` that may be placed now, oldest due first.

        One transaction, serialised across processes (an advisory lock on PostgreSQL, the
        write lock on SQLite): it counts live calls and unexpired leases of every worker,
        takes at most the free slots, and leases what it returns for ``lease_ms``. Held
        calls (a task effect owed) and calls leased by anyone are skipped.
        """
        return await asyncio.to_thread(self._claim_due, sorted(partitions), owner, lease_ms, limit)

    def _claim_due(
        self, partitions: list[int], owner: str, lease_ms: int, limit: int
    ) -> list[CallState]:
        if not partitions:
            return []
        topic = self.calls_topic
        now = now_ms()
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                lock = zlib.crc32(f"ringlog-dispatch:{topic}".encode())
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            else:  # take SQLite's write lock first, so the count below cannot go stale
                connection.execute(delete(LEASES).where(LEASES.c.expires_ms < 0))
            live = connection.execute(
                select(func.count()).where(CALLS.c.topic == topic, CALLS.c.live.is_(True))
            ).scalar_one()
            leased = connection.execute(
                select(func.count()).where(LEASES.c.topic == topic, LEASES.c.expires_ms > now)
            ).scalar_one()
            free = free_slots(self.policy, live=live, in_flight=leased)
            if free <= 0:
                return []
            held = exists().where(
                and_(OUTBOX.c.topic == topic, OUTBOX.c.call_ref == CALLS.c.call_ref)
            )
            busy = exists().where(
                and_(
                    LEASES.c.topic == topic,
                    LEASES.c.call_ref == CALLS.c.call_ref,
                    LEASES.c.expires_ms > now,
                )
            )
            rows = connection.execute(
                select(CALLS.c.state)
                .where(
                    CALLS.c.topic == topic,
                    CALLS.c.partition.in_(partitions),
                    CALLS.c.due_ms <= now,
                    ~held,
                    ~busy,
                )
                .order_by(CALLS.c.due_ms, CALLS.c.call_ref)
                .limit(min(free, limit))
            )
            states = [CallState.model_validate_json(raw) for (raw,) in rows]
            if states:
                insert = insert_for(connection)(LEASES)
                connection.execute(
                    insert.on_conflict_do_update(
                        index_elements=[LEASES.c.topic, LEASES.c.call_ref],
                        set_={
                            "owner": insert.excluded.owner,
                            "expires_ms": insert.excluded.expires_ms,
                        },
                    ),
                    [
                        {
                            "topic": topic,
                            "call_ref": s.call_ref,
                            "owner": owner,
                            "expires_ms": now + lease_ms,
                        }
                        for s in states
                    ],
                )
            return states

    async def hold(self, call_ref: str, hold_ms: int) -> None:
        """Keep the lease of ``call_ref`` for ``hold_ms`` more: its outcome is on the log and
        the fold of it (which deletes the lease) may lag behind. Does nothing once folded."""
        await asyncio.to_thread(self._hold, call_ref, hold_ms)

    def _hold(self, call_ref: str, hold_ms: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(LEASES)
                .where(LEASES.c.topic == self.calls_topic, LEASES.c.call_ref == call_ref)
                .values(expires_ms=now_ms() + hold_ms)
            )

    async def release(self, call_ref: str) -> None:
        """Drop the lease of ``call_ref`` (its outcome could not be appended: place it again)."""
        await asyncio.to_thread(self._release, call_ref)

    def _release(self, call_ref: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(LEASES).where(
                    LEASES.c.topic == self.calls_topic, LEASES.c.call_ref == call_ref
                )
            )

    async def next_due_ms(self, partitions: Collection[int]) -> int | None:
        """The earliest time a pending call of ``partitions`` becomes due (epoch ms)."""
        return await asyncio.to_thread(self._next_due_ms, sorted(partitions))

    def _next_due_ms(self, partitions: list[int]) -> int | None:
        if not partitions:
            return None
        with self.engine.connect() as connection:
            found: int | None = connection.execute(
                select(func.min(CALLS.c.due_ms)).where(
                    CALLS.c.topic == self.calls_topic, CALLS.c.partition.in_(partitions)
                )
            ).scalar_one()
            return found
