"""The worker's state store: call states, task effects owed, dispatch leases, checkpoints.

The tables are declared in :mod:`ringlog.worker.schema` (one SQL database, the CRM database:
SQLite embedded, PostgreSQL in production). :class:`WorkerStore` is the one writer and what
the worker's loops read; readers that only look (the API, tools) use
:class:`~ringlog.worker.views.WorkerViews`.

:meth:`WorkerStore.apply` is the runtime's :class:`~ringlog.projections.base.Target`: it loads
the states of the batch's calls (one query), folds the batch with the pure
:func:`~ringlog.calls.state.apply`, and writes states, task rows, outbox changes and the
checkpoint in **one transaction** (the fold is :mod:`ringlog.worker.fold`). Memory is bounded
by the batch, never by history. On a rebuild's shadow (filled from empty) the tables are
ANALYZEd as they grow (:class:`~ringlog.projections.sql.GrowthAnalyze`), so the batch's key
lookup keeps using the primary key. The dispatcher's queries are :mod:`ringlog.worker.leases`.

Scans, per call: ``apply`` reads the batch's keys and the rows of the tasks it names; the
loops read due calls by the ``due_ms`` index, live calls and leases (bounded by Retell's cap),
owing calls and outbox rows of the owned partitions (bounded by live work).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import select

from ringlog.calls.dispatch import DispatchPolicy
from ringlog.calls.state import CallState
from ringlog.projections.base import Event
from ringlog.projections.checkpoint import unfolded, write_checkpoint
from ringlog.projections.shadow import writing
from ringlog.projections.sql import GrowthAnalyze, create_tables, sql_engine
from ringlog.schemas import Envelope, decode
from ringlog.streams.offsets import Position
from ringlog.worker import leases
from ringlog.worker.fold import BatchFold
from ringlog.worker.schema import CALLS, CHECKPOINTS, METADATA, OUTBOX, TASK_EVENTS, TASKS
from ringlog.worker.views import WorkerViews


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
        shadow: str | None = None,
    ) -> None:
        engine = sql_engine(url, shadow=shadow)
        create_tables(engine, METADATA)
        super().__init__(
            engine, calls_topic=calls_topic, tasks_topic=tasks_topic, abt_topic=abt_topic
        )
        self.policy = policy
        self._fold = BatchFold(calls_topic=calls_topic, tasks_topic=tasks_topic, policy=policy)
        #: a shadow is filled from empty by a rebuild: its tables get statistics as they grow
        self._analyze = None if shadow is None else GrowthAnalyze((CALLS, TASK_EVENTS, OUTBOX))

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
            # what the fold reads is what its writes land on, not a version a swap replaces
            writing(connection, (CALLS, OUTBOX, TASKS, TASK_EVENTS, CHECKPOINTS))
            fresh = unfolded(connection, CHECKPOINTS, projection, events)
            written = self._fold.fold(connection, fresh)
            if self._analyze is not None:
                self._analyze.wrote(connection, written)
            write_checkpoint(connection, CHECKPOINTS, projection, positions)

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
            return [CallState.decode(raw) for (raw,) in rows]

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
        with self.engine.begin() as connection:
            return leases.claim_due(
                connection,
                topic=self.calls_topic,
                policy=self.policy,
                partitions=partitions,
                owner=owner,
                lease_ms=lease_ms,
                limit=limit,
            )

    async def hold(self, call_ref: str, hold_ms: int) -> None:
        """Keep the lease of ``call_ref`` for ``hold_ms`` more: its outcome is on the log and
        the fold of it (which deletes the lease) may lag behind. Does nothing once folded."""
        await asyncio.to_thread(self._hold, call_ref, hold_ms)

    def _hold(self, call_ref: str, hold_ms: int) -> None:
        with self.engine.begin() as connection:
            leases.hold(connection, topic=self.calls_topic, call_ref=call_ref, hold_ms=hold_ms)

    async def release(self, call_ref: str) -> None:
        """Drop the lease of ``call_ref`` (its outcome could not be appended: place it again)."""
        await asyncio.to_thread(self._release, call_ref)

    def _release(self, call_ref: str) -> None:
        with self.engine.begin() as connection:
            leases.release(connection, topic=self.calls_topic, call_ref=call_ref)

    async def next_due_ms(self, partitions: Collection[int]) -> int | None:
        """The earliest time a pending call of ``partitions`` becomes due (epoch ms)."""
        return await asyncio.to_thread(self._next_due_ms, sorted(partitions))

    def _next_due_ms(self, partitions: list[int]) -> int | None:
        if not partitions:
            return None
        with self.engine.connect() as connection:
            return leases.next_due_ms(connection, topic=self.calls_topic, partitions=partitions)
