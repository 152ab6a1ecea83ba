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
    sql = _Sql(connection, table, columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql.create_stage())
        with cursor.copy(sql.copy()) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        cursor.execute(sql.apply(update=update, version=version))
        cursor.execute(f"TRUNCATE {sql.stage}")
    finally:
        cursor.close()


class _Sql:
    """The statements for one table and column set, identifiers quoted by the dialect."""

    def __init__(self, connection: Connection, table: Table, columns: Sequence[str]) -> None:
        prep = connection.dialect.identifier_preparer
        digest = hashlib.sha1("\x1f".join(columns).encode(), usedforsecurity=False).hexdigest()
        self.table = prep.format_table(table)
        #: the session's staging table for these columns (temporary tables need no schema)
        self.stage = prep.quote(f"_stage_{table.name}_{digest[:10]}")
        self.names = ", ".join(prep.quote(c) for c in columns)
        self.key = ", ".join(prep.quote(c.name) for c in table.primary_key.columns)
        self._quote = prep.quote

    def create_stage(self) -> str:
        """The staging table: these columns of the table (same types, no constraints)."""
        return (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {self.names} FROM {self.table} WITH NO DATA"
        )

    def copy(self) -> str:
        """``COPY`` into the staging table, these columns in this order."""
        return f"COPY {self.stage} ({self.names}) FROM STDIN"

    def apply(self, *, update: Collection[str], version: str) -> str:
        """Insert the staged rows; overwrite ``update`` of stored rows whose ``version`` is
        lower."""
        q = self._quote
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update)
        return (
            f"INSERT INTO {self.table} ({self.names}) SELECT {self.names} FROM {self.stage} "
            f"ON CONFLICT ({self.key}) DO UPDATE SET {sets} "
            f"WHERE {self.table}.{q(version)} < EXCLUDED.{q(version)}"
        )
