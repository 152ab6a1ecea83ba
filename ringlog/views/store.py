"""The read views the API answers from: each call's timeline and each number's session.

Both live in the CRM database (SQLite embedded, PostgreSQL in production), each written with
its checkpoint — the next offset per ``(topic, partition)`` folded — in **one transaction**:

* ``view_timeline`` — one row per event on ``calls``, ``dialog``, ``abt`` and ``sessions``,
  keyed by its position on the log and indexed by call ref (the record's key; for a session
  event, keyed by number, the call it happened in); the row holds the event as recorded. Rows
  never change, so applying a record twice is a no-op.
* ``view_sessions`` — each number's current session (a
  :class:`~ringlog.sessions.state.SessionState` as JSON) folded from ``sessions``, keyed by
  topic and number, with the offset of the last event folded as its version: a write never
  replaces a newer one (a member that lost the partition cannot undo its successor's work);
  indexed by ``(topic, open)`` for the console's list of open sessions.

Scans: applying a batch of sessions reads the checkpoint and the stored sessions of the
batch's numbers (one query each) and writes the batch's rows; a read is one indexed lookup.
Nothing grows with history but the tables themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from ringlog.projections.base import Event
from ringlog.projections.checkpoint import (
    checkpoint_table,
    read_checkpoint,
    unfolded,
    upsert_many,
    write_checkpoint,
)
from ringlog.projections.shadow import writing
from ringlog.projections.sql import (
    GrowthAnalyze,
    among,
    create_tables,
    insert_for,
    sql_engine,
)
from ringlog.schemas import Envelope
from ringlog.schemas.codec import encode
from ringlog.sessions.state import SessionState, apply_all
from ringlog.streams.offsets import Position

METADATA = MetaData()

TIMELINE = Table(
    "view_timeline",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("call_ref", String(255), nullable=False, index=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event", Text, nullable=False),
)

SESSIONS = Table(
    "view_sessions",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("phone", String(32), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("open", Boolean, nullable=False),
    Column("state", Text, nullable=False),
    Index("view_sessions_open", "topic", "open"),
)

CHECKPOINTS = checkpoint_table(METADATA, "view_checkpoints")

#: The views' names in the checkpoint table and in metrics.
TIMELINE_VIEW = "timeline"
SESSIONS_VIEW = "sessions"


@dataclass(frozen=True)
class TimelineRow:
    """One event of a call's timeline, where it sits on the log and as it was recorded."""

    topic: str
    partition: int
    offset: int
    call_ref: str
    recorded_at: datetime
    event_id: str
    event: str


def timeline_rows(events: Sequence[Event]) -> list[TimelineRow]:
    """The timeline rows of ``events`` (pure): one per event, under its call (see
    :func:`timeline_call_ref`; an event of no call has none)."""
    return [
        TimelineRow(
            topic=e.topic,
            partition=e.partition,
            offset=e.offset,
            call_ref=ref,
            recorded_at=e.envelope.recorded_at,
            event_id=str(e.envelope.event_id),
            event=encode(e.envelope).decode(),
        )
        for e in events
        if (ref := timeline_call_ref(e.envelope)) is not None
    ]


def timeline_call_ref(envelope: Envelope) -> str | None:
    """The call an event belongs to on the timeline: the record's key, except for a session
    event (keyed by the number): the call it happened in, or ``None`` for one that happened
    in none (an expiry)."""
    payload = envelope.payload
    if getattr(type(payload), "topic", None) != "sessions":
        return envelope.key
    ref = getattr(payload, "call_ref", None)
    return ref if isinstance(ref, str) else None


def sessions_folded(
    stored: Mapping[str, SessionState], events: Sequence[Event]
) -> dict[str, tuple[SessionState, Event]]:
    """Fold ``events`` (log order) into the ``stored`` sessions of their numbers (pure).

    Returns, per number whose session changed, its new state and the last event folded.
    Each number's events are folded at once (:func:`~ringlog.sessions.state.apply_all`)."""
    by_phone: dict[str, list[Event]] = {}
    for event in events:
        by_phone.setdefault(event.envelope.key, []).append(event)
    changed: dict[str, tuple[SessionState, Event]] = {}
    for phone, mine in by_phone.items():
        folded = apply_all(stored.get(phone), [e.envelope for e in mine])
        if folded is not None:  # once a number has a session it keeps one
            changed[phone] = (folded, mine[-1])
    return changed


class ViewStore:
    """The views' database: the runtime's targets (:meth:`timeline_target`,
    :meth:`sessions_target`) and the API's reads (:meth:`timeline`, :meth:`session`)."""

    def __init__(self, engine: Engine, *, shadow: bool = False) -> None:
        self.engine = engine
        #: a rebuild's shadow, filled from empty (its tables get statistics as they grow)
        self.shadow = shadow

    @classmethod
    def open(cls, url: str, *, shadow: str | None = None) -> ViewStore:
        """Open the views at ``url``, or its ``shadow`` (see
        :func:`~ringlog.projections.sql.sql_engine`); their tables are created when missing."""
        engine = sql_engine(url, shadow=shadow)
        create_tables(engine, METADATA)
        return cls(engine, shadow=shadow is not None)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def reset(self, view: str, topics: Sequence[str]) -> None:
        """Empty one view of ``topics`` and its checkpoint (the start of a rebuild)."""
        table = TIMELINE if view == TIMELINE_VIEW else SESSIONS
        with self.engine.begin() as connection:
            connection.execute(table.delete().where(table.c.topic.in_(topics)))
            connection.execute(CHECKPOINTS.delete().where(CHECKPOINTS.c.projection == view))

    # -- reads --------------------------------------------------------------------------------

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        """The next offset per ``(topic, partition)`` already folded into view ``projection``."""
        return await asyncio.to_thread(self._load_checkpoint, projection)

    async def timeline(self, call_ref: str, topics: Sequence[str]) -> list[dict[str, Any]]:
        """The call's events on ``topics`` (JSON objects as recorded), in the order recorded."""
        return await asyncio.to_thread(self._timeline, call_ref, topics)

    async def call_rows(self, call_ref: str, topics: Sequence[str]) -> list[TimelineRow]:
        """The call's rows on ``topics`` with their positions, in log order per partition
        (time travel folds them: :mod:`ringlog.views.history`)."""
        return await asyncio.to_thread(self._call_rows, call_ref, topics)

    async def session(self, phone: str, topic: str) -> SessionState | None:
        """The number's current session folded from ``topic`` (open or not), or None if it
        never had one."""
        return await asyncio.to_thread(self._session, phone, topic)

    def _load_checkpoint(self, projection: str) -> dict[Position, int]:
        with self.engine.connect() as connection:
            return read_checkpoint(connection, CHECKPOINTS, projection)

    def _timeline(self, call_ref: str, topics: Sequence[str]) -> list[dict[str, Any]]:
        query = (
            select(TIMELINE.c.event)
            .where(TIMELINE.c.call_ref == call_ref, TIMELINE.c.topic.in_(topics))
            .order_by(TIMELINE.c.recorded_at, TIMELINE.c.event_id)
        )
        with self.engine.connect() as connection:
            return [orjson.loads(event) for (event,) in connection.execute(query)]

    def _call_rows(self, call_ref: str, topics: Sequence[str]) -> list[TimelineRow]:
        t = TIMELINE.c
        query = (
            select(t.topic, t.partition, t.offset, t.call_ref, t.recorded_at, t.event_id, t.event)
            .where(t.call_ref == call_ref, t.topic.in_(topics))
            .order_by(t.topic, t.partition, t.offset)
        )
        with self.engine.connect() as connection:
            return [TimelineRow(*row) for row in connection.execute(query)]

    def _session(self, phone: str, topic: str) -> SessionState | None:
        with self.engine.connect() as connection:
            raw = connection.execute(
                select(SESSIONS.c.state).where(SESSIONS.c.topic == topic, SESSIONS.c.phone == phone)
            ).scalar()
        return None if raw is None else SessionState.from_json(orjson.loads(raw))

    # -- writes (the runtime's targets) ---------------------------------------------------------

    def timeline_target(self) -> TimelineTarget:
        """The timeline view as a projection target."""
        return TimelineTarget(self)

    def sessions_target(self) -> SessionsTarget:
        """The sessions view as a projection target."""
        return SessionsTarget(self)


class _ViewTarget:
    """A view as a projection target: its checkpoint is read from the view's store."""

    def __init__(self, store: ViewStore) -> None:
        self._store = store

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        """See :meth:`ViewStore.load_checkpoint`."""
        return await self._store.load_checkpoint(projection)


class TimelineTarget(_ViewTarget):
    """Writes timeline rows and the checkpoint in one transaction (a :class:`Target`)."""

    async def apply(
        self,
        projection: str,
        operations: Sequence[TimelineRow],
        positions: Mapping[Position, int],
    ) -> None:
        """Insert the rows not stored yet, and store ``positions``."""
        await asyncio.to_thread(self._apply, projection, operations, positions)

    def _apply(
        self,
        projection: str,
        rows: Sequence[TimelineRow],
        positions: Mapping[Position, int],
    ) -> None:
        with self._store.engine.begin() as connection:
            if rows:
                insert = insert_for(connection)(TIMELINE).on_conflict_do_nothing()
                connection.execute(insert, [row.__dict__ for row in rows])
            write_checkpoint(connection, CHECKPOINTS, projection, positions)


class SessionsTarget(_ViewTarget):
    """Folds ``sessions`` events into stored sessions, with the checkpoint, in one transaction
    (a :class:`Target` whose operations are the events themselves). Events below the stored
    checkpoint are folded already and skipped; the transaction holds off a blue/green swap
    before it reads (:func:`~ringlog.projections.shadow.writing`). In a shadow, the table
    is ANALYZEd as it grows (:class:`~ringlog.projections.sql.GrowthAnalyze`)."""

    def __init__(self, store: ViewStore) -> None:
        super().__init__(store)
        self._analyze = GrowthAnalyze((SESSIONS,)) if store.shadow else None

    async def apply(
        self, projection: str, operations: Sequence[Event], positions: Mapping[Position, int]
    ) -> None:
        """Fold the events into their numbers' sessions, and store ``positions``."""
        await asyncio.to_thread(self._apply, projection, operations, positions)

    def _apply(
        self, projection: str, events: Sequence[Event], positions: Mapping[Position, int]
    ) -> None:
        with self._store.engine.begin() as connection:
            # what is read below is what the writes land on, not a version a swap replaces
            writing(connection, (SESSIONS, CHECKPOINTS))
            events = unfolded(connection, CHECKPOINTS, projection, events)
            if events:
                changed: dict[tuple[str, str], tuple[SessionState, Event]] = {}
                for topic in sorted({e.topic for e in events}):
                    on_topic = [e for e in events if e.topic == topic]
                    stored = _stored_sessions(connection, topic, {e.envelope.key for e in on_topic})
                    for phone, folded in sessions_folded(stored, on_topic).items():
                        changed[(topic, phone)] = folded
                upsert_many(
                    connection,
                    SESSIONS,
                    [
                        {
                            "topic": topic,
                            "phone": phone,
                            "partition": event.partition,
                            "version": event.offset,
                            "open": state.open,
                            "state": orjson.dumps(state.to_json()).decode(),
                        }
                        for (topic, phone), (state, event) in sorted(changed.items())
                    ],
                    update=("partition", "version", "open", "state"),
                    version="version",
                )
                if self._analyze is not None:
                    self._analyze.wrote(connection, len(changed))
            write_checkpoint(connection, CHECKPOINTS, projection, positions)


def _stored_sessions(
    connection: Connection, topic: str, phones: set[str]
) -> dict[str, SessionState]:
    """The stored sessions of ``phones`` (one query on PostgreSQL: see
    :func:`~ringlog.projections.sql.among`)."""
    found: dict[str, SessionState] = {}
    for chunk in among(connection, SESSIONS.c.phone, sorted(phones)):
        rows = connection.execute(
            select(SESSIONS.c.phone, SESSIONS.c.state).where(SESSIONS.c.topic == topic, chunk)
        )
        found.update((phone, SessionState.from_json(orjson.loads(raw))) for phone, raw in rows)
    return found


__all__ = [
    "SESSIONS_VIEW",
    "TIMELINE_VIEW",
    "SessionsTarget",
    "TimelineRow",
    "TimelineTarget",
    "ViewStore",
    "sessions_folded",
    "timeline_call_ref",
    "timeline_rows",
]
