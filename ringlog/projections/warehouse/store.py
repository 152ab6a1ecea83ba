"""The warehouse as a projection target, through ``snowflake-connector-python``.

One connection (Snowflake, or the fakesnow server locally). On connect the tables are created
when missing, and the session's temporary staging tables (``<TABLE>_STAGE``) are created. Each
batch is **one transaction**:

0. a projector's store (:meth:`WarehouseStore.hold`) first passes the projection's fence
   (:mod:`.holds`): while a rebuild holds the projection the batch is rolled back having
   written nothing and tried again every :data:`HELD_POLL_S` (after :data:`HELD_WAIT_S` the
   runner gets :class:`WarehouseHeld` and retries it with backoff);
1. read the stored ``FOLD_STATE``/``VERSION`` of the keys the batch folds (``CALLS``,
   ``SESSIONS``, ``TASKS``) and fold the batch onto them (:func:`.folds.fold_rows`, pure);
2. per table with rows: empty its staging table, stage every row with **one** INSERT (the
   rows are bound as one JSON array and exploded with ``FLATTEN``), then one set-based
   ``UPDATE … FROM stage`` for keys whose staged ``VERSION`` is newer and one
   ``INSERT … SELECT … WHERE NOT EXISTS`` for new keys (see :mod:`.schema` for why not MERGE).
   Append-only tables (``CALL_EVENTS``, ``ABT_EVENTS``: immutable facts, the first copy of a
   key stands) skip the stage: one ``INSERT`` of the bound rows whose key is not stored yet;
3. ``PROJECTION_CHECKPOINTS`` (a next offset never moves backwards), a row per partition, with
   no stage: one ``UPDATE … FROM`` the bound rows and one ``INSERT`` of the new keys;
4. ``COMMIT``.

A store made the projector's (:meth:`WarehouseStore.hold`) ends, on every connection it
opens, the session a killed predecessor left open, records its own (:mod:`.fencing`) and
creates the projection's row of ``PROJECTION_HOLDS``.

Any failure rolls back, drops the connection (the next attempt reconnects and recreates the
session's staging tables) and raises :class:`WarehouseError` (retried with backoff) or, for
refused data, :class:`WarehouseDataError` (the runner dead-letters the record at fault).
Blocking connector calls run in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import orjson
import snowflake.connector
from snowflake.connector.errors import Error as SnowflakeError

from ringlog.config import WarehouseSettings
from ringlog.errors import PermanentError, RetryableError
from ringlog.projections.retrying import describe, is_transient
from ringlog.projections.warehouse import fencing, holds, schema
from ringlog.projections.warehouse.folds import Stored, fold_rows
from ringlog.projections.warehouse.rows import (
    Fold,
    Operation,
    Row,
    earliest_by_key,
    latest_by_key,
)
from ringlog.projections.warehouse.schema import (
    ALL_TABLES,
    CHECKPOINTS,
    FOLDED,
    HOLDS,
    PROJECTOR_SESSIONS,
    Table,
)
from ringlog.streams.offsets import Position

P = ParamSpec("P")
T = TypeVar("T")


class WarehouseError(RetryableError):
    """The warehouse could not be reached, or a statement failed for a reason that may pass
    (connection, timeout, conflict); the batch was rolled back."""


class WarehouseHeld(WarehouseError):
    """A rebuild holds the projection (:mod:`.holds`): the batch was rolled back having
    written nothing, and is to be tried again."""


#: How often a held batch is tried again, and for how long before :meth:`WarehouseStore.apply`
#: raises :class:`WarehouseHeld` (the runner then retries it with backoff, and can stop).
HELD_POLL_S = 0.2
HELD_WAIT_S = 5.0


class WarehouseDataError(PermanentError):
    """The warehouse refused the batch's data (a data or constraint SQLSTATE); the batch was
    rolled back, and the runner isolates the record at fault."""


def connect_kwargs(
    settings: WarehouseSettings,
    *,
    login_timeout: float = 30.0,
    network_timeout: float = 60.0,
    socket_timeout: float = 30.0,
) -> dict[str, Any]:
    """``snowflake.connector.connect`` arguments for ``settings``.

    ``host``/``port``/``protocol`` are passed only when set (fakesnow, private links); the
    ``qmark`` paramstyle makes the connector send parameters as bindings, not inline text.
    The timeouts bound how long one attempt may hang when the warehouse is unreachable.
    """
    kwargs: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "password": settings.password.get_secret_value(),
        "database": settings.database,
        "schema": settings.schema_name,
        "protocol": settings.protocol,
        "paramstyle": "qmark",
        "autocommit": True,
        "login_timeout": login_timeout,
        "network_timeout": network_timeout,
        "socket_timeout": socket_timeout,
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    }
    for name in ("host", "port", "warehouse", "role"):
        value = getattr(settings, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


class WarehouseStore:
    """Applies warehouse operations and the consumed positions atomically (a ``Target``)."""

    def __init__(self, connect: Mapping[str, Any]) -> None:
        self._connect_kwargs = dict(connect)
        self._conn: Any = None
        self._lock = threading.Lock()
        #: The projection this store holds the warehouse for (set by :meth:`hold`).
        self._holds: str | None = None
        self._claimed = False

    # -- the Target protocol --------------------------------------------------------------------

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        """The next offset per ``(topic, partition)`` already applied for ``projection``."""
        return await asyncio.to_thread(self._locked, self._load_checkpoint, projection)

    async def apply(
        self, projection: str, operations: Sequence[Operation], positions: Mapping[Position, int]
    ) -> None:
        """Write ``operations`` and ``positions`` in one transaction (see the module doc);
        while the projection is held, try again every :data:`HELD_POLL_S`, and raise
        :class:`WarehouseHeld` once it has been held for :data:`HELD_WAIT_S`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HELD_WAIT_S
        while True:
            try:
                await asyncio.to_thread(
                    self._locked, self._apply, projection, operations, positions
                )
                return
            except WarehouseHeld:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(HELD_POLL_S)

    def hold(self, projection: str) -> None:
        """Make this the store ``projection``'s projector writes through: from its next
        statement on, each connection it opens first ends the session the projection's
        previous holder left open and records its own (:mod:`.fencing`)."""
        with self._lock:
            if self._holds != projection:
                self._holds, self._claimed = projection, False

    # -- helpers for operators and tests --------------------------------------------------------

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table ordered by key, variants as JSON text (for comparisons)."""
        return self._locked(self._snapshot)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders) and return its rows."""
        return self._locked(self._query, sql, params)

    def changed(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one DML statement (``?`` placeholders) and return how many rows it changed."""
        return self._locked(self._changed, sql, params)

    def forget_checkpoint(self, projection: str) -> None:
        """Delete ``projection``'s checkpoint: its next run re-reads the log from the start
        (rows are unchanged by the replay, since none carries a newer version)."""
        sql = f"DELETE FROM {schema.q(CHECKPOINTS.name)} WHERE {schema.q('PROJECTION')} = ?"
        self._locked(self._query, sql, (projection,))

    def ensure_tables(self) -> None:
        """Connect (creating missing tables and the staging tables) now rather than lazily."""
        self._locked(self._connection)

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        with self._lock:
            self._discard()

    # -- blocking internals (called with the lock held, in a worker thread) ---------------------

    def _locked(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except SnowflakeError as exc:
                self._discard()
                if is_transient(exc):
                    raise WarehouseError(f"warehouse: {describe(exc)}") from exc
                raise WarehouseDataError(f"warehouse refused the batch: {describe(exc)}") from exc

    def _connection(self) -> Any:
        if self._conn is None:
            conn = snowflake.connector.connect(**self._connect_kwargs)
            try:
                cursor = conn.cursor()
                for table in (*ALL_TABLES, PROJECTOR_SESSIONS, HOLDS):
                    cursor.execute(schema.create_table_sql(table))
                for table in ALL_TABLES:
                    if table.writes == "staged":
                        cursor.execute(schema.create_stage_sql(table))
            except BaseException:
                conn.close()
                raise
            self._conn, self._claimed = conn, False
        if self._holds is not None and not self._claimed:
            fencing.claim(self._conn, self._holds, self._server())
            self._conn.cursor().execute(holds.ensure_sql(), (self._holds, self._holds))
            self._claimed = True
        return self._conn

    def _server(self) -> str:
        """``protocol://host:port`` of the warehouse (for ending a session by its token)."""
        kw = self._connect_kwargs
        host = kw.get("host") or f"{kw['account']}.snowflakecomputing.com"
        port = kw.get("port") or 443
        return f"{kw.get('protocol', 'https')}://{host}:{port}"

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # the connection is gone either way
                conn.close()

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._connection().cursor()
        cursor.execute(sql, tuple(params))
        try:
            return [tuple(row) for row in cursor.fetchall()]
        except SnowflakeError:  # a statement without a result set
            return []

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        cursor = self._connection().cursor()
        cursor.execute(sql, tuple(params))
        return int(cursor.rowcount or 0)

    def _load_checkpoint(self, projection: str) -> dict[Position, int]:
        rows = self._query(schema.select_checkpoint_sql(), (projection,))
        return {(str(topic), int(partition)): int(offset) for topic, partition, offset in rows}

    def _snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t.name: self._query(schema.snapshot_sql(t), ()) for t in ALL_TABLES}

    def _apply(
        self, projection: str, operations: Sequence[Operation], positions: Mapping[Position, int]
    ) -> None:
        rows: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        folds: dict[str, list[Fold]] = defaultdict(list)
        for op in operations:
            if isinstance(op, Row):
                rows[op.table].append(op.values)
            else:
                folds[op.table].append(op)
        rows[CHECKPOINTS.name] = [
            {"PROJECTION": projection, "TOPIC": topic, "PARTITION": partition, "NEXT_OFFSET": n}
            for (topic, partition), n in sorted(positions.items())
        ]
        cursor = self._connection().cursor()
        cursor.execute("BEGIN")
        try:
            if self._holds == projection:
                cursor.execute(holds.fence_sql(), (projection,))
                if cursor.rowcount != 1:  # held (or its row is missing): write nothing
                    cursor.execute("ROLLBACK")
                    cursor.execute(holds.ensure_sql(), (projection, projection))
                    raise WarehouseHeld(f"warehouse: {projection} is held by a rebuild")
            stored = _stored(cursor, folds)
            for name in sorted(folds):
                rows[name].extend(fold_rows(name, stored[name], folds[name]))
            for table in ALL_TABLES:
                if not (found := rows.get(table.name)):
                    continue
                _write(cursor, table, found)
            cursor.execute("COMMIT")
        except WarehouseHeld:
            raise
        except BaseException:
            with contextlib.suppress(Exception):  # the connection is discarded below anyway
                cursor.execute("ROLLBACK")
            self._discard()
            raise


def _stored(cursor: Any, folds: Mapping[str, Sequence[Fold]]) -> dict[str, dict[str, Stored]]:
    """The stored fold state and version of every key the batch folds, by table (one read)."""
    found: dict[str, dict[str, Stored]] = {name: {} for name in folds}
    if not folds:
        return found
    assert set(folds) <= FOLDED
    names = sorted(folds)
    keys = [orjson.dumps(sorted({f.key for f in folds[name]})).decode() for name in names]
    cursor.execute(schema.select_states_sql([schema.BY_NAME[n] for n in names]), tuple(keys))
    for name, key, state, version in cursor.fetchall():
        found[str(name)][str(key)] = (_variant(state), int(version))
    return found


def _write(cursor: Any, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a batch's rows of ``table`` the way it is declared (:data:`.schema.Writes`).

    Rows are bound as JSON arrays of at most :data:`BIND_ROWS` (one statement each): a
    bigger array costs more per row to parse and flatten than two smaller ones.
    """
    if table.writes == "append_only":
        sql = schema.insert_sql(table, bound=True)
        for chunk in _chunks(earliest_by_key(table.key, rows, table.version)):
            cursor.execute(sql, (_json(chunk),))
        return
    latest = latest_by_key(table.key, rows, table.version)
    if table.writes == "unstaged":
        params = (_json(latest),)
        cursor.execute(schema.update_sql(table, bound=True), params)
        cursor.execute(schema.insert_sql(table, bound=True), params)
        return
    cursor.execute(schema.clear_stage_sql(table))
    for chunk in _chunks(latest):
        cursor.execute(schema.stage_sql(table), (_json(chunk),))
    cursor.execute(schema.update_sql(table))
    cursor.execute(schema.insert_sql(table))


#: the most rows bound in one statement (fakesnow: ~5 000 is the fastest per row)
BIND_ROWS = 5_000


def _chunks(rows: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), BIND_ROWS):
        yield rows[start : start + BIND_ROWS]


def _json(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as one JSON array of objects, NULL columns left out (bound as one parameter)."""
    return orjson.dumps([{k: v for k, v in row.items() if v is not None} for row in rows]).decode()


def _variant(value: Any) -> Mapping[str, Any] | None:
    """A VARIANT as returned by the connector (JSON text) → Python; ``None`` stays ``None``."""
    if value is None:
        return None
    data = orjson.loads(value) if isinstance(value, str | bytes) else value
    return data if isinstance(data, Mapping) else None
