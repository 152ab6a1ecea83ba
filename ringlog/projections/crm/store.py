"""The CRM database as a projection target: upserts, derived columns and checkpoint, one
transaction.

SQLite (the default, a file under ``.ringlog/``) and PostgreSQL are supported. Tables are
created on start when missing. Blocking database work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    TextClause,
    bindparam,
    select,
    text,
    update,
)

from ringlog.projections.checkpoint import read_checkpoint, upsert_many, write_checkpoint
from ringlog.projections.crm.batches import batches
from ringlog.projections.crm.rows import Upsert, fields_json, transcript
from ringlog.projections.crm.schema import (
    CHECKPOINTS,
    INTERACTIONS,
    METADATA,
    TABLES,
    TASK_FIELDS,
    TASKS,
    TURNS,
)
from ringlog.projections.sql import create_tables, sql_engine, table_name
from ringlog.streams.offsets import Position

_CHUNK = 500


class CrmStore:
    """Applies CRM upserts and the consumed positions atomically (a :class:`Target`)."""

    def __init__(self, url: str, *, shadow: str | None = None) -> None:
        """Open the CRM database at ``url`` (or its ``shadow``, see
        :func:`~ringlog.projections.sql.sql_engine`); missing tables are created."""
        self.engine: Engine = sql_engine(url, shadow=shadow)
        create_tables(self.engine, METADATA)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def reset(self) -> None:
        """Drop every CRM table (rows and checkpoint) and create them empty: the start of a
        rebuild from the log."""
        METADATA.drop_all(self.engine)
        create_tables(self.engine, METADATA)

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        """The next offset per ``(topic, partition)`` already applied for ``projection``."""
        return await asyncio.to_thread(self._load_checkpoint, projection)

    async def apply(
        self, projection: str, operations: Sequence[Upsert], positions: Mapping[Position, int]
    ) -> None:
        """Apply ``operations`` in order, refresh touched transcripts and task fields, store
        ``positions``."""
        await asyncio.to_thread(self._apply, projection, operations, positions)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every CRM table, ordered by primary key (for comparisons and audits)."""
        with self.engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in METADATA.sorted_tables
            }

    def _load_checkpoint(self, projection: str) -> dict[Position, int]:
        with self.engine.connect() as connection:
            return read_checkpoint(connection, CHECKPOINTS, projection)

    def _apply(
        self, projection: str, operations: Sequence[Upsert], positions: Mapping[Position, int]
    ) -> None:
        with self.engine.begin() as connection:
            for (table, _columns, update_columns), run in batches(operations):
                upsert_many(
                    connection,
                    TABLES[table],
                    [op.values for op in run],
                    update=(*update_columns, "version"),
                    version="version",
                )
            touched = {
                str(op.values["call_ref"])
                for op in operations
                if op.table in ("interactions", "turns")
            }
            refresh_transcripts(connection, touched)
            tasks = {
                str(op.values["task_id"])
                for op in operations
                if op.table in ("tasks", "task_fields")
            }
            refresh_task_fields(connection, tasks)
            write_checkpoint(connection, CHECKPOINTS, projection, positions)


def refresh_transcripts(connection: Connection, call_refs: Iterable[str]) -> None:
    """Set ``turns`` and ``transcript`` of these calls' interactions from their stored turns.

    On PostgreSQL the server builds them in one statement (``string_agg`` in turn order, the
    same text as :func:`~ringlog.projections.crm.rows.transcript`); elsewhere Python does.
    """
    refs = sorted(set(call_refs))
    if connection.dialect.name == "postgresql":
        if refs:
            connection.execute(_pg_transcripts(connection), {"refs": refs})
        return
    statement = (
        update(INTERACTIONS)
        .where(INTERACTIONS.c.call_ref == bindparam("ref"))
        .values(turns=bindparam("n"), transcript=bindparam("text"))
    )
    for start in range(0, len(refs), _CHUNK):
        chunk = refs[start : start + _CHUNK]
        turns: dict[str, list[tuple[int, str, str]]] = {ref: [] for ref in chunk}
        rows = connection.execute(
            select(TURNS.c.call_ref, TURNS.c.turn_index, TURNS.c.role, TURNS.c.text).where(
                TURNS.c.call_ref.in_(chunk)
            )
        )
        for ref, index, role, said in rows:
            turns[ref].append((index, role, said))
        connection.execute(
            statement,
            [
                {"ref": ref, "n": len(found), "text": transcript(found)}
                for ref, found in turns.items()
            ],
        )


def _pg_transcripts(connection: Connection) -> TextClause:
    interactions, turns = table_name(connection, INTERACTIONS), table_name(connection, TURNS)
    return text(
        f"UPDATE {interactions} SET turns = t.n, transcript = t.body FROM ("
        "SELECT r.ref, count(u.turn_index) AS n, "
        "COALESCE(string_agg(u.role || ': ' || u.text, E'\\n' ORDER BY u.turn_index), '') AS body "
        f"FROM unnest(CAST(:refs AS text[])) AS r(ref) LEFT JOIN {turns} AS u "
        "ON u.call_ref = r.ref GROUP BY r.ref) AS t "
        f"WHERE {interactions}.call_ref = t.ref"
    )


def refresh_task_fields(connection: Connection, task_ids: Iterable[str]) -> None:
    """Set ``fields`` of these tasks from their stored field rows (see :func:`fields_json`)."""
    ids = sorted(set(task_ids))
    statement = (
        update(TASKS).where(TASKS.c.task_id == bindparam("id")).values(fields=bindparam("json"))
    )
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        values: dict[str, list[tuple[str, str]]] = {task_id: [] for task_id in chunk}
        rows = connection.execute(
            select(TASK_FIELDS.c.task_id, TASK_FIELDS.c.name, TASK_FIELDS.c.value).where(
                TASK_FIELDS.c.task_id.in_(chunk)
            )
        )
        for task_id, name, value in rows:
            values[task_id].append((name, value))
        connection.execute(
            statement,
            [{"id": task_id, "json": fields_json(found)} for task_id, found in values.items()],
        )
