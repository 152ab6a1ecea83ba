"""Checkpoints and guarded upserts for SQL projection targets (SQLAlchemy 2 Core).

A SQL target keeps, in one table, the next offset to read for every ``(topic, partition)`` a
projection consumed, and writes it in the same transaction as the rows it derived from those
records. A checkpoint never moves backwards, and a row upsert never replaces a newer version,
so writing the same records twice changes nothing. SQLite and PostgreSQL are supported (both
have ``INSERT … ON CONFLICT DO UPDATE … WHERE``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, select

from ringlog.projections.base import Event
from ringlog.projections.bulk_upsert import bulk_upsert, distinct_keys
from ringlog.projections.sql import upsert
from ringlog.streams.offsets import Position

#: From this many rows with distinct keys, PostgreSQL upserts go as one JSON-bound statement
#: (:mod:`.bulk_upsert`); a single row is as cheap through ``executemany``.
BULK_MIN_ROWS = 2


def checkpoint_table(metadata: MetaData, name: str) -> Table:
    """Declare the checkpoint table ``name``: the next offset per projection, topic, partition."""
    return Table(
        name,
        metadata,
        Column("projection", String(128), primary_key=True),
        Column("topic", String(255), primary_key=True),
        Column("partition", Integer, primary_key=True, autoincrement=False),
        Column("next_offset", BigInteger, nullable=False),
    )


def read_checkpoint(connection: Connection, table: Table, projection: str) -> dict[Position, int]:
    """Return ``{(topic, partition): next_offset}`` stored for ``projection`` (``{}`` if none)."""
    rows = connection.execute(
        select(table.c.topic, table.c.partition, table.c.next_offset).where(
            table.c.projection == projection
        )
    )
    return {(topic, partition): offset for topic, partition, offset in rows}


def unfolded(
    connection: Connection, table: Table, projection: str, events: Sequence[Event]
) -> list[Event]:
    """``events`` at or past ``projection``'s stored checkpoint, in order. A record below it
    is folded into the stored state already (by a rebuild swapped in past the caller, or by
    a member that held the partition before): folding it again would count it twice, so the
    store, not the caller, is the judge. Reads the checkpoint rows, nothing else."""
    done = read_checkpoint(connection, table, projection)
    return [e for e in events if e.offset >= done.get((e.topic, e.partition), 0)]


def write_checkpoint(
    connection: Connection, table: Table, projection: str, positions: Mapping[Position, int]
) -> None:
    """Store ``positions`` (next offsets) for ``projection``; an older offset never wins."""
    upsert_many(
        connection,
        table,
        [
            {"projection": projection, "topic": topic, "partition": partition, "next_offset": n}
            for (topic, partition), n in sorted(positions.items())
        ],
        update=("next_offset",),
        version="next_offset",
    )


def upsert_many(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Collection[str],
    version: str,
) -> None:
    """Insert ``rows`` (same columns), in order; on a primary-key conflict overwrite the
    ``update`` columns, but only when the stored ``version`` column is lower than the new one
    (apply-if-newer). An equal version is left alone, so applying a row twice is a no-op.

    One ``executemany`` of :func:`ringlog.projections.sql.upsert`, or on PostgreSQL, for
    :data:`BULK_MIN_ROWS` or more rows with distinct keys, one set-based upsert of the rows
    bound as JSON, ``Text`` columns as binary arrays (:mod:`.bulk_upsert`), which ends the same."""
    if not rows:
        return
    dialect = connection.dialect.name
    if dialect == "postgresql" and len(rows) >= BULK_MIN_ROWS and distinct_keys(table, rows):
        bulk_upsert(connection, table, rows, update=update, version=version)
        return
    statement = upsert(connection, table, update=update, version=version)
    connection.execute(statement, [dict(row) for row in rows])
