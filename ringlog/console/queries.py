"""The console's read side: bounded, indexed queries on the views the runtime keeps.

Nothing here reads the log. Everything comes from tables in the CRM database that the
runtime writes with its checkpoints (the worker's ``worker_calls`` and ``worker_checkpoints``,
the projector's ``view_timeline``, ``view_sessions`` and ``view_checkpoints``); this module
only reads them, and each query is bounded and served by an index:

* **how far the views are** (:meth:`ConsoleReader.marks`): the two checkpoint tables, by
  their primary key (projection, topic, partition): a few rows. The live stream polls this.
* **the latest N calls** (:meth:`ConsoleReader.board_rows`): a page of the newest timeline
  rows of each partition of ``calls`` (3N rows at least 32, read backwards along the primary
  key ``(topic, partition, offset)``, every partition in one ``UNION ALL`` statement); the
  page before only for a partition whose page was full and does not reach back past the
  N-th call's latest event (at most :data:`MAX_PAGES` pages); then those calls' states by
  the worker's primary key ``(topic, call_ref)``, and the live calls by its
  ``(topic, live)`` index (bounded by Retell's concurrency cap; :data:`LIVE_MAX` at most).
* **new events** (:meth:`ConsoleReader.latest_between`, :meth:`ConsoleReader.rows_between`):
  the timeline rows between two checkpoints, per partition by the primary key, at most
  ``per_partition`` each; for the feed, their places and times first, then the bodies of
  the newest few only.
* **a call** (:meth:`ConsoleReader.call_rows`, :meth:`ConsoleReader.call`): the timeline's
  ``call_ref`` index and the worker's primary key.
* **sessions** (:meth:`ConsoleReader.open_sessions`): the open ones (active or dropped),
  at most ``limit``, by the ``view_sessions (topic, open)`` index; a session's dialog by the
  timeline's ``call_ref`` index, for its calls only.

Blocking database work runs in a thread (one connection per call).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Select,
    TextClause,
    and_,
    func,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.exc import SQLAlchemyError

from ringlog.calls.state import CallState
from ringlog.config import Settings
from ringlog.console.models import latest_refs
from ringlog.projections.checkpoint import read_checkpoint
from ringlog.sessions.state import SessionState
from ringlog.views.store import CHECKPOINTS as VIEW_CHECKPOINTS
from ringlog.views.store import SESSIONS, TIMELINE, TIMELINE_VIEW, TimelineRow
from ringlog.worker.schema import CALLS as WORKER_CALLS
from ringlog.worker.schema import CHECKPOINTS as WORKER_CHECKPOINTS
from ringlog.worker.schema import PROCESSOR

log = structlog.get_logger("ringlog.console")

#: A partition: ``(topic, partition)``; a record's place: ``(topic, partition, offset)``.
Position = tuple[str, int]
Place = tuple[str, int, int]
#: The most live calls listed (Retell's cap is far below).
LIVE_MAX = 500
#: The most pages of timeline rows read per partition for the latest calls.
MAX_PAGES = 4
#: The fewest rows in one such page.
MIN_PAGE = 32


@dataclass(frozen=True)
class ConsoleTopics:
    """The deployment's topics the console reads about (their full names)."""

    prefix: str
    calls: str
    dialog: str
    abt: str
    sessions: str
    deadletter: str
    quarantine: str

    @classmethod
    def of(cls, settings: Settings) -> ConsoleTopics:
        """The topics of ``settings``' deployment."""
        return cls(
            prefix=settings.kafka.topic_prefix,
            calls=settings.topic("calls"),
            dialog=settings.topic("dialog"),
            abt=settings.topic("abt"),
            sessions=settings.topic("sessions"),
            deadletter=settings.topic("deadletter"),
            quarantine=settings.topic("quarantine"),
        )

    @property
    def timeline(self) -> tuple[str, str, str, str]:
        """The topics the timeline view holds: ``calls``, ``dialog``, ``abt``, ``sessions``."""
        return (self.calls, self.dialog, self.abt, self.sessions)


@dataclass(frozen=True)
class Marks:
    """How far the views have folded the log: the timeline view's checkpoint on
    ``calls``/``dialog``/``abt`` and the worker's on ``calls``/``abt`` (next offsets)."""

    timeline: Mapping[Position, int]
    worker: Mapping[Position, int]


@dataclass(frozen=True)
class BoardRows:
    """What the live list is built from: the worker's live calls, and the latest calls by
    their latest event (``call_ref``, its time, its state when folded), newest first."""

    live: tuple[CallState, ...]
    recent: tuple[tuple[str, datetime, CallState | None], ...]


class ConsoleReader:
    """Reads the views in one SQL database (the CRM database, where the worker's store and
    the projector's views both live) for one deployment's topics."""

    def __init__(self, engine: Engine, topics: ConsoleTopics) -> None:
        self.engine = engine
        self.topics = topics

    # -- what the live stream polls --------------------------------------------------------

    async def marks(self) -> Marks:
        """Both checkpoints, on this deployment's topics only."""
        return await asyncio.to_thread(self._marks)

    def _marks(self) -> Marks:
        with self.engine.connect() as connection:
            return self._marks_on(connection)

    def _marks_on(self, connection: Connection) -> Marks:
        timeline = set(self.topics.timeline)
        worker = {self.topics.calls, self.topics.abt}
        tl = read_checkpoint(connection, VIEW_CHECKPOINTS, TIMELINE_VIEW)
        wk = read_checkpoint(connection, WORKER_CHECKPOINTS, PROCESSOR)
        return Marks(
            timeline={p: n for p, n in tl.items() if p[0] in timeline},
            worker={p: n for p, n in wk.items() if p[0] in worker},
        )

    async def board_rows(self, limit: int) -> BoardRows:
        """The live calls and the ``limit`` calls with the latest events (see the module)."""
        return await asyncio.to_thread(self._board_rows, limit)

    def _board_rows(self, limit: int) -> BoardRows:
        with self.engine.connect() as connection:
            marks = self._marks_on(connection)
            partitions = sorted(p for t, p in marks.timeline if t == self.topics.calls)
            newest = latest_refs(self._recent(connection, partitions, limit), limit)
            states = self._states(connection, [ref for ref, _ in newest])
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
            rows = _pages(
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

    def _states(self, connection: Connection, refs: Sequence[str]) -> dict[str, CallState]:
        if not refs:
            return {}
        c = WORKER_CALLS.c
        rows = connection.execute(
            select(c.call_ref, c.state).where(c.topic == self.topics.calls, c.call_ref.in_(refs))
        )
        return {ref: CallState.model_validate_json(raw) for ref, raw in rows}

    def _live(self, connection: Connection) -> list[CallState]:
        c = WORKER_CALLS.c
        rows = connection.execute(
            select(c.state).where(c.topic == self.topics.calls, c.live.is_(True)).limit(LIVE_MAX)
        )
        return [CallState.model_validate_json(raw) for (raw,) in rows]

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
        return await asyncio.to_thread(self._rows_between, before, after, per_partition, call_ref)

    def _rows_between(
        self,
        before: Mapping[Position, int],
        after: Mapping[Position, int],
        per_partition: int,
        call_ref: str | None,
    ) -> list[TimelineRow]:
        t = TIMELINE.c
        found: list[TimelineRow] = []
        with self.engine.connect() as connection:
            for (topic, partition), upto in sorted(after.items()):
                start = max(before.get((topic, partition), 0), upto - per_partition)
                if upto <= start:
                    continue
                query = _row_select().where(
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
        ranges = [
            (topic, partition, max(before.get((topic, partition), 0), upto - per_partition), upto)
            for (topic, partition), upto in sorted(after.items())
            if upto > before.get((topic, partition), 0)
        ]
        with self.engine.connect() as connection:
            rows = _pages(
                connection,
                (t.recorded_at, t.event_id, t.topic, t.partition, t.offset),
                ranges,
                limit,
            )
            chosen = [(topic, p, o) for *_, topic, p, o in sorted(rows, reverse=True)[:limit]]
            return self._rows_at_on(connection, chosen) if chosen else []

    # -- one call ------------------------------------------------------------------------------

    async def call(self, call_ref: str) -> CallState | None:
        """The call's state in the worker's view, if folded."""
        return await asyncio.to_thread(self._call, call_ref)

    def _call(self, call_ref: str) -> CallState | None:
        with self.engine.connect() as connection:
            return self._states(connection, [call_ref]).get(call_ref)

    async def call_rows(self, call_ref: str) -> list[TimelineRow]:
        """Every timeline row of the call (``calls``, ``dialog``, ``abt``)."""
        return await asyncio.to_thread(self._call_rows, call_ref)

    def _call_rows(self, call_ref: str) -> list[TimelineRow]:
        t = TIMELINE.c
        query = _row_select().where(t.call_ref == call_ref, t.topic.in_(self.topics.timeline))
        with self.engine.connect() as connection:
            return [TimelineRow(*row) for row in connection.execute(query)]

    async def call_places(self, call_ref: str) -> set[Place]:
        """Where the call's timeline rows are (their positions only, no event bodies)."""
        return await asyncio.to_thread(self._call_places, call_ref)

    def _call_places(self, call_ref: str) -> set[Place]:
        t = TIMELINE.c
        query = select(t.topic, t.partition, t.offset).where(
            t.call_ref == call_ref, t.topic.in_(self.topics.timeline)
        )
        with self.engine.connect() as connection:
            return {(topic, p, o) for topic, p, o in connection.execute(query)}

    async def rows_at(self, places: Iterable[Place]) -> list[TimelineRow]:
        """The timeline rows at ``places`` (by primary key)."""
        wanted = sorted(places)
        if not wanted:
            return []
        return await asyncio.to_thread(self._rows_at, wanted)

    def _rows_at(self, places: Sequence[Place]) -> list[TimelineRow]:
        with self.engine.connect() as connection:
            return self._rows_at_on(connection, places)

    def _rows_at_on(self, connection: Connection, places: Sequence[Place]) -> list[TimelineRow]:
        """The rows at ``places``: per partition, ``topic = … AND partition = … AND offset
        IN (…)`` (SQLite scans the table for a row-value ``IN``; this it finds by key)."""
        t = TIMELINE.c
        offsets: dict[Position, list[int]] = {}
        for topic, partition, offset in places:
            offsets.setdefault((topic, partition), []).append(offset)
        query = _row_select().where(
            or_(
                *(
                    and_(t.topic == topic, t.partition == partition, t.offset.in_(sorted(found)))
                    for (topic, partition), found in sorted(offsets.items())
                )
            )
        )
        return [TimelineRow(*row) for row in connection.execute(query)]

    # -- sessions ---------------------------------------------------------------------------

    async def open_sessions(self, limit: int) -> tuple[list[SessionState], int]:
        """Up to ``limit`` open sessions (active or dropped) and how many are open."""
        return await asyncio.to_thread(self._open_sessions, limit)

    def _open_sessions(self, limit: int) -> tuple[list[SessionState], int]:
        s = SESSIONS.c
        where = (s.topic == self.topics.sessions, s.open == true())
        with self.engine.connect() as connection:
            rows = connection.execute(select(s.state).where(*where).limit(limit))
            states = [SessionState.from_json(orjson.loads(raw)) for (raw,) in rows]
            total = len(states)
            if total >= limit:
                counted = select(func.count()).select_from(SESSIONS).where(*where)
                total = int(connection.execute(counted).scalar_one())
        return states, total

    async def session_of(self, call_ref: str) -> tuple[CallState | None, SessionState | None]:
        """The call's state and the session it belongs to: the session of one of its numbers
        (the patient's: ``to`` for an outbound call, ``from`` for an inbound one) that
        names the call."""
        return await asyncio.to_thread(self._session_of, call_ref)

    def _session_of(self, call_ref: str) -> tuple[CallState | None, SessionState | None]:
        s = SESSIONS.c
        with self.engine.connect() as connection:
            state = self._states(connection, [call_ref]).get(call_ref)
            if state is None:
                return None, None
            numbers = [n for n in (state.to_number, state.from_number) if n]
            if not numbers:
                return state, None
            rows = connection.execute(
                select(s.state).where(s.topic == self.topics.sessions, s.phone.in_(numbers))
            )
            sessions = [SessionState.from_json(orjson.loads(raw)) for (raw,) in rows]
        for session in sessions:
            if call_ref in session.call_refs:
                return state, session
        return state, None

    async def dialog_rows(self, call_refs: Sequence[str]) -> list[TimelineRow]:
        """The ``dialog`` rows of ``call_refs`` (a session's calls)."""
        if not call_refs:
            return []
        return await asyncio.to_thread(self._dialog_rows, list(call_refs))

    def _dialog_rows(self, call_refs: list[str]) -> list[TimelineRow]:
        t = TIMELINE.c
        query = _row_select().where(t.call_ref.in_(call_refs), t.topic == self.topics.dialog)
        with self.engine.connect() as connection:
            return [TimelineRow(*row) for row in connection.execute(query)]

    # -- the database itself ------------------------------------------------------------------

    async def answers(self) -> bool:
        """Whether the database answers ``SELECT 1``."""
        return await asyncio.to_thread(self._answers)

    def _answers(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True


def _pages(
    connection: Connection,
    columns: Sequence[Column[Any]],
    ranges: Sequence[tuple[str, int, int | None, int | None]],
    limit: int,
) -> list[Any]:
    """For each ``(topic, partition, from, below)``: the timeline rows of that partition with
    ``from <= offset < below`` (``None``: unbounded), the highest offsets first, at most
    ``limit`` — ``columns`` of them, every range in one statement (``UNION ALL``), each read
    backwards along the primary key. The statement's text is made once per shape (SQLAlchemy's
    own cache key of an 18-part union costs more than the query)."""
    if not ranges:
        return []
    shape = tuple((start is not None, below is not None) for _, _, start, below in ranges)
    names = tuple(column.name for column in columns)
    statement = _pages_statement(connection.dialect.name, names, shape).columns(*columns)
    params: dict[str, Any] = {"limit": limit}
    for i, (topic, partition, start, below) in enumerate(ranges):
        params |= {f"t{i}": topic, f"p{i}": partition, f"s{i}": start, f"b{i}": below}
    return [tuple(row) for row in connection.execute(statement, params)]


@functools.lru_cache(maxsize=256)
def _pages_statement(
    dialect: str, names: tuple[str, ...], shape: tuple[tuple[bool, bool], ...]
) -> TextClause:
    """The text of :func:`_pages` for one shape of ranges (``dialect``: only a cache key)."""

    def q(name: str) -> str:
        return f'"{name}"'

    selected = ", ".join(q(name) for name in names)
    parts = []
    for i, (start, below) in enumerate(shape):
        where = [f"{q('topic')} = :t{i}", f"{q('partition')} = :p{i}"]
        if start:
            where.append(f"{q('offset')} >= :s{i}")
        if below:
            where.append(f"{q('offset')} < :b{i}")
        parts.append(
            f"SELECT * FROM (SELECT {selected} FROM {q(TIMELINE.name)} "
            f"WHERE {' AND '.join(where)} ORDER BY {q('offset')} DESC LIMIT :limit) AS r{i}"
        )
    return text(" UNION ALL ".join(parts))


def _row_select() -> Select[Any]:
    """The columns of a :class:`TimelineRow`, in its order."""
    t = TIMELINE.c
    return select(t.topic, t.partition, t.offset, t.call_ref, t.recorded_at, t.event_id, t.event)


__all__ = [
    "LIVE_MAX",
    "BoardRows",
    "ConsoleReader",
    "ConsoleTopics",
    "Marks",
]
