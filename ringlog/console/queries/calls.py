"""Reads of calls: the live list's rows and one call's state.

* **the latest N calls** (:meth:`CallReads.board_rows`): a page of the newest timeline rows of
  each partition of ``calls`` (3N rows at least :data:`MIN_PAGE`, read backwards along the
  primary key ``(topic, partition, offset)``, every partition in one ``UNION ALL``
  statement); the page before only for a partition whose page was full and does not reach
  back past the N-th call's latest event (at most :data:`MAX_PAGES` pages); then those
  calls' states by the worker's primary key ``(topic, call_ref)`` (:func:`call_states`), and
  the live calls by its ``(topic, live)`` index (bounded by Retell's concurrency cap;
  :data:`LIVE_MAX` at most).
* **a call's state** (:meth:`CallReads.call`): the worker's primary key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from ringlog.calls.state import CallState
from ringlog.console.models.board import latest_refs
from ringlog.console.queries.checkpoints import read_marks
from ringlog.console.queries.timeline import pages
from ringlog.console.queries.topics import ConsoleTopics
from ringlog.views.store import TIMELINE
from ringlog.worker.schema import CALLS as WORKER_CALLS

#: The most live calls listed (Retell's cap is far below).
LIVE_MAX = 500
#: The most pages of timeline rows read per partition for the latest calls.
MAX_PAGES = 4
#: The fewest rows in one such page.
MIN_PAGE = 32


@dataclass(frozen=True)
class BoardRows:
    """What the live list is built from: the worker's live calls, and the latest calls by
    their latest event (``call_ref``, its time, its state when folded), newest first."""

    live: tuple[CallState, ...]
    recent: tuple[tuple[str, datetime, CallState | None], ...]


def call_states(connection: Connection, topic: str, refs: Sequence[str]) -> dict[str, CallState]:
    """The worker's states of the calls ``refs`` on ``topic`` (those it folded), by ref."""
    if not refs:
        return {}
    c = WORKER_CALLS.c
    rows = connection.execute(
        select(c.call_ref, c.state).where(c.topic == topic, c.call_ref.in_(refs))
    )
    return {ref: CallState.decode(raw) for ref, raw in rows}


class CallReads:
    """The reads of calls of :class:`~ringlog.console.queries.reader.ConsoleReader`."""

    engine: Engine
    topics: ConsoleTopics

    async def board_rows(self, limit: int) -> BoardRows:
        """The live calls and the ``limit`` calls with the latest events (see the module)."""
        return await asyncio.to_thread(self._board_rows, limit)

    def _board_rows(self, limit: int) -> BoardRows:
        with self.engine.connect() as connection:
            marks = read_marks(connection, self.topics)
            partitions = sorted(p for t, p in marks.timeline if t == self.topics.calls)
            newest = latest_refs(self._recent(connection, partitions, limit), limit)
            states = call_states(connection, self.topics.calls, [ref for ref, _ in newest])
            live = self._live(connection)
        return BoardRows(
            live=tuple(live),
            recent=tuple((ref, at, states.get(ref)) for ref, at in newest),
        )

    def _recent(
        self, connection: Connection, partitions: Sequence[int], want: int
    ) -> list[tuple[str, datetime]]:
        """``(call_ref, recorded_at)`` of the newest timeline rows of each partition of
        ``calls``, enough to hold the ``want`` calls with the latest events: a page of each
        partition (one statement), then, for the partitions whose page was full and reaches
        no further back than the ``want``-th call's latest event, the page before (at most
        :data:`MAX_PAGES` pages)."""
        t = TIMELINE.c
        page = max(MIN_PAGE, want * 3)
        found: list[tuple[str, datetime]] = []
        ranges: dict[int, int | None] = dict.fromkeys(partitions)
        for _ in range(MAX_PAGES):
            rows = pages(
                connection,
                (t.partition, t.offset, t.call_ref, t.recorded_at),
                [(self.topics.calls, p, None, below) for p, below in ranges.items()],
                page,
            )
            found.extend((ref, at) for _, _, ref, at in rows)
            oldest: dict[int, tuple[int, datetime]] = {}
            counts: dict[int, int] = {}
            for partition, offset, _, at in rows:
                counts[partition] = counts.get(partition, 0) + 1
                if partition not in oldest or offset < oldest[partition][0]:
                    oldest[partition] = (offset, at)
            newest = latest_refs(found, want)
            cutoff = newest[-1][1] if len(newest) >= want else None
            ranges = {
                p: offset
                for p, (offset, at) in oldest.items()
                if counts[p] >= page and (cutoff is None or at >= cutoff)
            }
            if not ranges:
                break
        return found

    def _live(self, connection: Connection) -> list[CallState]:
        c = WORKER_CALLS.c
        rows = connection.execute(
            select(c.state).where(c.topic == self.topics.calls, c.live.is_(True)).limit(LIVE_MAX)
        )
        return [CallState.decode(raw) for (raw,) in rows]

    async def call(self, call_ref: str) -> CallState | None:
        """The call's state in the worker's view, if folded."""
        return await asyncio.to_thread(self._call, call_ref)

    def _call(self, call_ref: str) -> CallState | None:
        with self.engine.connect() as connection:
            return call_states(connection, self.topics.calls, [call_ref]).get(call_ref)


__all__ = ["LIVE_MAX", "BoardRows", "CallReads", "call_states"]
