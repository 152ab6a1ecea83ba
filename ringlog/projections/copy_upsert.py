"""PostgreSQL: many guarded upserts as one ``COPY`` and one set-based statement.

``executemany`` of ``INSERT … ON CONFLICT`` costs Python work per row in SQLAlchemy and the
driver. For a batch of rows with distinct keys the same effect comes cheaper:

1. ``COPY`` the rows into a temporary staging table holding just their columns (created once
   per connection, ``ON COMMIT DELETE ROWS``);
2. one ``INSERT INTO t (…) SELECT … FROM stage ON CONFLICT (key) DO UPDATE SET … WHERE
   t.version < EXCLUDED.version``: new keys are inserted, stored rows with a lower version
   overwritten, others left alone, exactly as the per-row upserts would;
3. empty the staging table, so the next use in the same transaction starts clean.

One statement cannot update a row twice, so rows must have distinct keys
(:func:`distinct_keys`); callers fall back to per-row upserts otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table


def distinct_keys(table: Table, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether no two of ``rows`` share ``table``'s primary key."""
    key = [c.name for c in table.primary_key.columns]
    return len({tuple(row[k] for k in key) for row in rows}) == len(rows)


def copy_upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Collection[str],
    version: str,
) -> None:
    """Upsert ``rows`` (same columns, distinct keys) into ``table`` on PostgreSQL, apply-if-newer.

    Runs inside the caller's transaction, on its connection.
    """
    columns = list(rows[0])
    stage = _stage_name(table, columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(create_stage_sql(table, columns, stage))
        with cursor.copy(copy_sql(columns, stage)) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        cursor.execute(apply_sql(table, columns, stage, update=update, version=version))
        cursor.execute(f"TRUNCATE {_q(stage)}")
    finally:
        cursor.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stage_name(table: Table, columns: Sequence[str]) -> str:
    digest = hashlib.sha1("\x1f".join(columns).encode(), usedforsecurity=False).hexdigest()[:10]
    return f"_stage_{table.name}_{digest}"


def create_stage_sql(table: Table, columns: Sequence[str], stage: str) -> str:
    """The session's staging table for these columns of ``table`` (same types, no constraints)."""
    names = ", ".join(_q(c) for c in columns)
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_q(stage)} ON COMMIT DELETE ROWS AS "
        f"SELECT {names} FROM {_q(table.name)} WITH NO DATA"
    )


def copy_sql(columns: Sequence[str], stage: str) -> str:
    """``COPY`` into the staging table, these columns in this order."""
    return f"COPY {_q(stage)} ({', '.join(_q(c) for c in columns)}) FROM STDIN"


def apply_sql(
    table: Table, columns: Sequence[str], stage: str, *, update: Collection[str], version: str
) -> str:
    """Insert the staged rows; overwrite ``update`` of stored rows whose ``version`` is lower."""
    names = ", ".join(_q(c) for c in columns)
    key = ", ".join(_q(c.name) for c in table.primary_key.columns)
    sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in update)
    t = _q(table.name)
    return (
        f"INSERT INTO {t} ({names}) SELECT {names} FROM {_q(stage)} "
        f"ON CONFLICT ({key}) DO UPDATE SET {sets} "
        f"WHERE {t}.{_q(version)} < EXCLUDED.{_q(version)}"
    )
