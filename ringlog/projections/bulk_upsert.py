"""PostgreSQL: many guarded upserts as one statement, the rows bound as one JSON array.

``executemany`` of ``INSERT … ON CONFLICT`` costs Python work per row in SQLAlchemy and the
driver. For a batch of rows with distinct keys the same effect comes cheaper: the rows are
serialised once (orjson, in C) and bound as a single ``json`` parameter, which the server
expands into rows of the table's own type::

    INSERT INTO t (…) SELECT … FROM json_populate_recordset(NULL::t, $1::json)
    ON CONFLICT (key) DO UPDATE SET … WHERE t.version < EXCLUDED.version

New keys are inserted, stored rows with a lower version overwritten, others left alone,
exactly as the per-row upserts would. Each value reaches its column through the column type's
text input, as a ``COPY`` would: dates and times as ISO 8601 (orjson's format), text as text.
No staging table, no temporary DDL, one round trip.

One statement cannot update a row twice, so rows must have distinct keys
(:func:`distinct_keys`); callers fall back to per-row upserts otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Table

from ringlog.projections.sql import table_name


def distinct_keys(table: Table, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether no two of ``rows`` share ``table``'s primary key."""
    key = [c.name for c in table.primary_key.columns]
    return len({tuple(row[k] for k in key) for row in rows}) == len(rows)


def bulk_upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Collection[str],
    version: str,
) -> None:
    """Upsert ``rows`` (same columns, distinct keys) into ``table`` on PostgreSQL, apply-if-newer.

    Runs inside the caller's transaction, on its connection. Rows must be dicts (or lists
    and tuples of them) whose values orjson serialises: str, int, bool, None, date, datetime
    and the like. Anything else raises ``TypeError`` before the statement is sent.
    """
    statement = upsert_sql(connection, table, list(rows[0]), update=update, version=version)
    document = orjson.dumps(rows).decode()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement, (document,))
    finally:
        cursor.close()


def upsert_sql(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    *,
    update: Collection[str],
    version: str,
) -> str:
    """The statement: insert ``columns`` of the bound rows; on a key conflict overwrite
    ``update`` of a stored row whose ``version`` is lower. Identifiers quoted by the dialect;
    one ``%s`` placeholder (psycopg's) for the JSON array."""
    prep = connection.dialect.identifier_preparer
    q = prep.quote
    target = table_name(connection, table)
    names = ", ".join(q(c) for c in columns)
    key = ", ".join(q(c.name) for c in table.primary_key.columns)
    sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update)
    return (
        f"INSERT INTO {target} ({names}) SELECT {names} "
        f"FROM json_populate_recordset(NULL::{target}, %s::json) "
        f"ON CONFLICT ({key}) DO UPDATE SET {sets} "
        f"WHERE {target}.{q(version)} < EXCLUDED.{q(version)}"
    )
