"""SQL engines and dialect-specific inserts for the stores ringlog keeps (SQLite, PostgreSQL).

Every store opens its database through :func:`sql_engine`, so SQLite files get their folder,
write-ahead logging (readers in other processes never block the writer) and a busy timeout
(several processes — worker, projector, API — share one file on the embedded stack).

The dialects' ``INSERT … ON CONFLICT`` constructs are chosen in one place, :func:`insert_for`;
:func:`upsert` builds the usual primary-key upsert on it (overwrite some columns, optionally
only when the row is newer). :class:`GrowthAnalyze` gives the planner statistics on tables a
bulk load fills from empty (a rebuild's shadow), and :func:`create_tables` makes a shadow's
tables cheap to fill on PostgreSQL (unlogged; only the indexes the fold itself reads).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateIndex, CreateTable

#: The dialects' ``INSERT`` constructs that know ``ON CONFLICT … DO UPDATE / DO NOTHING``.
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

#: ``Index(…, info={FOLD_READS: True})``: an index the projection's own fold queries. A
#: rebuild's shadow is created with these alone; the others serve the live tables' readers
#: (the swap copies the rows into the live tables, which keep every index).
FOLD_READS = "fold_reads"

#: Seconds a SQLite connection waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0


def sql_engine(url: str, *, shadow: str | None = None) -> Engine:
    """An engine for ``url``; for a SQLite file, the folder is created and WAL switched on.

    With ``shadow``, the engine works on a *shadow* of the database: the same tables, empty
    until written, beside the live ones, where a rebuild builds a projection's next version
    (:mod:`ringlog.projections.shadow`). Every table without a schema is rendered as
    ``shadow.<table>``: on PostgreSQL a schema of that name (created when missing), on SQLite
    a database file beside the main one (``<file>.<shadow>``) attached as ``shadow`` to every
    connection, which also sees the main (live) tables as ``main.<table>``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True)
        if shadow is not None:
            with engine.begin() as connection:
                prep = connection.dialect.identifier_preparer
                connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {prep.quote(shadow)}"))
        return _translated(engine, shadow)
    if parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if shadow is not None:
            cursor.execute(f'ATTACH DATABASE ? AS "{shadow}"', (shadow_file(url, shadow),))
        cursor.close()

    return _translated(engine, shadow)


def shadow_file(url: str, shadow: str) -> str:
    """The file a SQLite database's ``shadow`` is kept in: beside the main file."""
    database = make_url(url).database
    if database in (None, "", ":memory:"):
        raise ValueError("a shadow needs a SQLite database in a file, not in memory")
    return f"{database}.{shadow}"


def _shadow_of(engine: Engine) -> str | None:
    """The shadow ``engine`` renders tables into (``None`` for the live tables)."""
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    shadow: str | None = translate.get(None)
    return shadow


def _create_shadow_tables(engine: Engine, metadata: MetaData) -> None:
    """``metadata``'s missing tables in a PostgreSQL shadow: unlogged, with the indexes the
    fold reads (see :func:`create_tables`)."""
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            name = table_name(connection, table)
            if connection.execute(text("SELECT to_regclass(:t)"), {"t": name}).scalar():
                continue
            connection.execute(CreateTable(table))
            connection.execute(text(f"ALTER TABLE {name} SET UNLOGGED"))
            for index in table.indexes:
                if index.info.get(FOLD_READS):
                    connection.execute(CreateIndex(index))


def _translated(engine: Engine, shadow: str | None) -> Engine:
    """``engine`` rendering tables without a schema in ``shadow`` (itself when ``None``)."""
    if shadow is None:
        return engine
    return engine.execution_options(schema_translate_map={None: shadow})


def table_name(connection: Connection, table: Table) -> str:
    """``table``'s quoted name as Core statements on ``connection`` render it, in the schema
    a shadow translates it to (for SQL written as text)."""
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    prep = connection.dialect.identifier_preparer
    name = prep.quote(table.name)
    return name if schema is None else f"{prep.quote_schema(schema)}.{name}"


def insert_for(connection: Connection) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_update``/``_do_nothing``)."""
    insert = _INSERTS.get(connection.dialect.name)
    if insert is None:
        raise NotImplementedError(
            f"no upsert for the {connection.dialect.name} dialect (SQLite, PostgreSQL only)"
        )
    return insert


def upsert(
    connection: Connection, table: Table, *, update: Collection[str], version: str | None = None
) -> Any:
    """``INSERT INTO table … ON CONFLICT (primary key) DO UPDATE SET`` each ``update`` column
    to the new row's value; with ``version``, only when the stored ``version`` column is lower
    than the new row's (apply-if-newer: an equal version is left alone). Execute it with the
    rows as parameters (one dict, or a list for ``executemany``)."""
    new = insert_for(connection)(table)
    return new.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: new.excluded[name] for name in update},
        where=None if version is None else table.c[version] < new.excluded[version],
    )


#: Keys per ``IN (…)`` where they cannot be bound as one array (SQLite).
IN_CHUNK = 500


def among(connection: Connection, column: Any, keys: Sequence[str]) -> list[Any]:
    """Conditions ``column`` is one of ``keys``, one per query to run: on PostgreSQL one,
    the keys bound as a single JSON array (``= ANY(ARRAY(SELECT json_array_elements_text
    (…)))``: serialised by orjson in C, where an array parameter costs the driver Python work
    per key; an index on ``column`` used as for ``IN``); elsewhere ``IN`` of
    :data:`IN_CHUNK` keys each. None for no keys."""
    if not keys:
        return []
    if connection.dialect.name == "postgresql":
        document = bindparam("keys", orjson.dumps(list(keys)).decode(), String, unique=True)
        listed = text("(ARRAY(SELECT json_array_elements_text(CAST(:keys AS json))))")
        return [column == any_(listed.bindparams(document))]
    return [column.in_(keys[i : i + IN_CHUNK]) for i in range(0, len(keys), IN_CHUNK)]


class GrowthAnalyze:
    """Planner statistics for tables one bulk writer fills from empty (a rebuild's shadow).

    A table created empty has no statistics until autovacuum (or nobody, where it is off)
    analyzes it; meanwhile PostgreSQL may plan a batch's key lookup (``key IN (…)``) as a
    scan of every row for the topic, so each lookup costs more as the table grows. Call
    :meth:`wrote` with the rows each transaction wrote: once the count passes
    ``first_rows``, then each time it has grown ``factor``-fold, it runs ``ANALYZE`` on
    ``tables`` in that transaction (a handful of times over a load, each sampling a bounded
    number of rows). SQLite's ``ANALYZE`` is run the same way. A count, nothing per row.
    """

    def __init__(self, tables: Sequence[Table], *, first_rows: int = 5_000, factor: int = 4):
        self.tables = tuple(tables)
        self.written = 0
        self.next_at = first_rows
        self._factor = factor

    def wrote(self, connection: Connection, rows: int) -> bool:
        """Count ``rows`` more written through ``connection``; analyze when due (in its
        transaction). Whether it analyzed."""
        self.written += rows
        if self.written < self.next_at:
            return False
        while self.next_at <= self.written:
            self.next_at *= self._factor
        for table in self.tables:
            connection.execute(text(f"ANALYZE {table_name(connection, table)}"))
        return True


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """Create ``metadata``'s missing tables, and the missing indexes of tables that exist
    (an index added to the schema reaches databases made before it). Several processes
    opening one new database at once (the embedded stack starts them together) may race to
    create a table: the loser's "already exists" is taken as done, and the check is run
    again.

    A shadow on PostgreSQL (a rebuild's, made fresh for it and read by nobody but the
    rebuild) gets its tables ``UNLOGGED`` (no write-ahead log while the log is folded into
    them: a crash empties them, and a rerun starts a fresh shadow anyway) with only the
    :data:`FOLD_READS` indexes beside their primary keys."""
    if engine.dialect.name == "postgresql" and _shadow_of(engine) is not None:
        _create_shadow_tables(engine, metadata)
        return
    for attempt in range(3):
        try:
            metadata.create_all(engine)
            with engine.begin() as connection:
                for table in metadata.sorted_tables:
                    for index in table.indexes:
                        index.create(connection, checkfirst=True)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if "already exists" not in str(exc) and "duplicate key" not in str(exc):
                raise
            if attempt == 2:
                raise
