"""Reads of timeline rows (a call's events): between two checkpoints, and of one call.

* **new events** (:meth:`EventReads.rows_between`, :meth:`EventReads.latest_between`): the
  timeline rows between two checkpoints, per partition by the primary key, at most
  ``per_partition`` each (:func:`~ringlog.console.queries.timeline.offset_ranges`); for the
  live list's feed, their places and times first, then the bodies of the newest few only.
* **a call's events** (:meth:`EventReads.call_rows`): the timeline's ``call_ref`` index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine

from ringlog.console.queries.timeline import (
    OffsetRange,
    offset_ranges,
    pages,
    row_select,
    rows_at,
)
from ringlog.console.queries.topics import ConsoleTopics, Position
from ringlog.views.store import TIMELINE, TimelineRow


class EventReads:
    """The reads of timeline rows of :class:`~ringlog.console.queries.reader.ConsoleReader`."""

    engine: Engine
    topics: ConsoleTopics

    async def rows_between(
        self,
        before: Mapping[Position, int],
        after: Mapping[Position, int],
        per_partition: int,
        *,
        call_ref: str | None = None,
    ) -> list[TimelineRow]:
        """The timeline rows from ``before`` up to ``after`` (checkpoints; a partition not in
        ``before`` from its start), of ``call_ref`` only when given; per partition, the rows
        of its last ``per_partition`` offsets at most."""
        ranges = offset_ranges(before, after, per_partition)
        return await asyncio.to_thread(self._rows_in, ranges, call_ref)

    def _rows_in(self, ranges: Sequence[OffsetRange], call_ref: str | None) -> list[TimelineRow]:
        """The rows in ``ranges``, of ``call_ref`` only when given, partition by partition."""
        t = TIMELINE.c
        found: list[TimelineRow] = []
        with self.engine.connect() as connection:
            for topic, partition, start, upto in ranges:
                query = row_select().where(
                    t.topic == topic,
                    t.partition == partition,
                    t.offset >= start,
                    t.offset < upto,
                )
                if call_ref is not None:
                    query = query.where(t.call_ref == call_ref)
                found.extend(
                    TimelineRow(*row) for row in connection.execute(query.order_by(t.offset))
                )
        return found

    async def latest_between(
        self,
        before: Mapping[Position, int],
        after: Mapping[Position, int],
        per_partition: int,
        limit: int,
    ) -> list[TimelineRow]:
        """The ``limit`` most recently recorded timeline rows from ``before`` up to ``after``
        (as :meth:`rows_between` bounds them): their places and times first, then only the
        chosen rows' bodies (an event can be large: a long call's ``call_ended``)."""
        return await asyncio.to_thread(self._latest_between, before, after, per_partition, limit)

    def _latest_between(
        self,
        before: Mapping[Position, int],
        after: Mapping[Position, int],
        per_partition: int,
        limit: int,
    ) -> list[TimelineRow]:
        t = TIMELINE.c
        with self.engine.connect() as connection:
            rows = pages(
                connection,
                (t.recorded_at, t.event_id, t.topic, t.partition, t.offset),
                offset_ranges(before, after, per_partition),
                limit,
            )
            chosen = [(topic, p, o) for *_, topic, p, o in sorted(rows, reverse=True)[:limit]]
            return rows_at(connection, chosen) if chosen else []

    async def call_rows(self, call_ref: str) -> list[TimelineRow]:
        """Every timeline row of the call (``calls``, ``dialog``, ``abt``)."""
        return await asyncio.to_thread(self._call_rows, call_ref)

    def _call_rows(self, call_ref: str) -> list[TimelineRow]:
        t = TIMELINE.c
        query = row_select().where(t.call_ref == call_ref, t.topic.in_(self.topics.timeline))
        with self.engine.connect() as connection:
            return [TimelineRow(*row) for row in connection.execute(query)]


__all__ = ["EventReads"]
