"""The read side of the worker's store: what the API, tests and tools read from its tables.

:class:`WorkerViews` answers a call's folded state, whether a task exists or was deleted, and
how far the store has folded the log (its checkpoint). The tables are in
:mod:`ringlog.worker.schema`; the writer is :class:`~ringlog.worker.store.WorkerStore`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, select

from ringlog.calls.state import CallState
from ringlog.projections.checkpoint import read_checkpoint
from ringlog.projections.sql import create_tables, sql_engine
from ringlog.streams.offsets import Position
from ringlog.worker.schema import CALLS, CHECKPOINTS, METADATA, PROCESSOR, TASKS


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
        return None if raw is None else CallState.decode(raw)

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
