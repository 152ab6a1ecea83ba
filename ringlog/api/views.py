"""The views the API reads, opened once per app: the worker's store, the read views (timeline,
sessions) and the log's head.

Reads never scan the log: they wait, bounded, until the view has folded the key's partitions
as far as the read asks (:class:`~ringlog.streams.head.ReadAfter`: this process's own writes
and the positions the reader names, or the log's end), then answer from the view, saying which
position the answer reflects (:class:`Coverage`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError

from ringlog.calls.state import CallState
from ringlog.config import Settings
from ringlog.projections.base import Event
from ringlog.projections.retrying import failure_type, is_transient
from ringlog.projections.sql import create_tables, sql_engine
from ringlog.sessions.state import SessionState
from ringlog.streams.head import Coverage, LogHead, ReadAfter, wait_covered
from ringlog.streams.offsets import Position
from ringlog.streams.producer import LogProducer
from ringlog.tasks.index import TaskIndex
from ringlog.views.history import (
    call_state_at,
    check_instant,
    log_start,
    timeline_events,
    timeline_order,
)
from ringlog.views.store import METADATA as VIEW_TABLES
from ringlog.views.store import SESSIONS_VIEW, TIMELINE_VIEW, ViewStore
from ringlog.worker.schema import METADATA as WORKER_TABLES
from ringlog.worker.views import WorkerViews

log = structlog.get_logger(__name__)

#: How long a read waits for a view to reach the log's end before answering from behind.
READ_WAIT_S = 2.0


@dataclass(frozen=True)
class Views:
    """The worker's views, the read views and the head of the log, for the API's reads."""

    settings: Settings
    worker: WorkerViews
    store: ViewStore
    head: LogHead
    tasks: TaskIndex
    #: where the log of some topics starts (its first record), once known: it never moves
    starts: dict[tuple[str, ...], datetime] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, producer: LogProducer | None = None) -> Views:
        """Open the views in ``settings.crm.url``, creating their missing tables. With the
        database unreachable the API starts all the same (ingest needs only the broker): its
        reads answer 503 until the database is back, and whoever writes the views creates
        their tables then."""
        engine = sql_engine(settings.crm.url)
        try:
            create_tables(engine, WORKER_TABLES)
            create_tables(engine, VIEW_TABLES)
        except SQLAlchemyError as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "views database unavailable at start; reads answer 503 until it is back",
                error=failure_type(exc),
            )
        worker = WorkerViews(
            engine,
            calls_topic=settings.topic("calls"),
            tasks_topic=settings.topic("tasks"),
            abt_topic=settings.topic("abt"),
        )
        head = LogHead(settings.kafka, producer)
        return cls(settings, worker, ViewStore(engine), head, TaskIndex(worker, head))

    async def call(self, call_ref: str, after: ReadAfter) -> tuple[CallState | None, Coverage]:
        """The call's state once the worker folded its partition of ``calls`` and ``abt``
        as far as ``after`` asks."""
        worker = self.worker
        coverage = await self._covered(
            worker.load_checkpoint, call_ref, (worker.calls_topic, worker.abt_topic), after
        )
        return await worker.call(call_ref), coverage

    async def call_at(
        self,
        call_ref: str,
        at: datetime,
        after: ReadAfter,
        *,
        now: datetime | None = None,
    ) -> tuple[CallState | None, Coverage]:
        """The call's state at the instant ``at``: its events on ``calls`` and ``abt``
        recorded by then, from the timeline view, folded as the worker folds them
        (:mod:`ringlog.views.history`). Refuses (:class:`~ringlog.views.history.InstantRefused`)
        an instant before the log's start or after ``now``."""
        calls, abt = self.worker.calls_topic, self.worker.abt_topic
        check_instant(at, start=await self.start_of((calls,)), now=now or datetime.now(UTC))
        coverage = await self._covered(
            self._checkpoint(TIMELINE_VIEW), call_ref, (calls, abt), after
        )
        rows = await self.store.call_rows(call_ref, (calls, abt))
        return call_state_at(timeline_events(rows), at, topics=(calls, abt)), coverage

    async def start_of(self, topics: tuple[str, ...]) -> datetime | None:
        """Where the log of ``topics`` starts (read once, then remembered)."""
        if topics not in self.starts:
            start = await log_start(self.settings.kafka, topics)
            if start is None:
                return None  # nothing yet: asked again next time
            self.starts[topics] = start
        return self.starts[topics]

    async def timeline_events(
        self, call_ref: str, after: ReadAfter
    ) -> tuple[list[Event], Coverage]:
        """The call's events on ``calls``, ``dialog`` and ``abt`` at their positions on the
        log, in the order recorded (as :meth:`timeline` lists them)."""
        topics = tuple(self.settings.topic(t) for t in ("calls", "dialog", "abt"))
        coverage = await self._covered(self._checkpoint(TIMELINE_VIEW), call_ref, topics, after)
        rows = await self.store.call_rows(call_ref, topics)
        return timeline_order(timeline_events(rows)), coverage

    async def timeline(
        self, call_ref: str, after: ReadAfter
    ) -> tuple[list[dict[str, Any]], Coverage]:
        """The call's events on ``calls``, ``dialog`` and ``abt``, in the order recorded."""
        topics = tuple(self.settings.topic(t) for t in ("calls", "dialog", "abt"))
        coverage = await self._covered(self._checkpoint(TIMELINE_VIEW), call_ref, topics, after)
        return await self.store.timeline(call_ref, topics), coverage

    async def session(
        self, phone: str, after: ReadAfter, *, timeout_s: float = READ_WAIT_S
    ) -> tuple[SessionState | None, Coverage]:
        """The number's current session (open or not) from the sessions view."""
        coverage = await self._covered(
            self._checkpoint(SESSIONS_VIEW),
            phone,
            (self.settings.topic("sessions"),),
            after,
            timeout_s=timeout_s,
        )
        return await self.store.session(phone, self.settings.topic("sessions")), coverage

    def _checkpoint(self, view: str) -> Callable[[], Awaitable[Mapping[Position, int]]]:
        async def load() -> Mapping[Position, int]:
            return await self.store.load_checkpoint(view)

        return load

    async def _covered(
        self,
        checkpoint: Callable[[], Awaitable[Mapping[Position, int]]],
        key: str,
        topics: tuple[str, ...],
        after: ReadAfter,
        *,
        timeout_s: float = READ_WAIT_S,
    ) -> Coverage:
        """Wait until ``checkpoint`` covers the key's partition of each topic as far as
        ``after`` asks, at most ``timeout_s``."""
        positions = [(topic, await self.head.partition_of(topic, key)) for topic in topics]
        targets = await self.head.targets(positions, after)
        return await wait_covered(checkpoint, targets, timeout_s=timeout_s)

    async def close(self) -> None:
        """Close the log client and the database pool."""
        await self.head.stop()
        self.worker.close()  # the store shares its engine


def views_of(request: Request) -> Views:
    """The app's :class:`Views` (opened at start-up, closed with the app)."""
    views: Views = request.app.state.views
    return views
