"""The warehouse tables and the SQL that writes them (Snowflake dialect, also run by fakesnow).

Every table is declared once here as a :class:`Table`; the DDL, the staging tables and the
guarded upsert statements are generated from those declarations, so they cannot drift apart.

| table | key | one row per |
|---|---|---|
| ``CALLS`` | ``CALL_REF`` | call ref: the call fold (:mod:`ringlog.calls.state`) |
| ``CALL_EVENTS`` | ``EVENT_ID`` | event of any of the five topics, raw |
| ``SESSIONS`` | ``SESSION_ID`` | booking session (:mod:`ringlog.sessions.state`) |
| ``DIALOG_TURNS`` | ``CALL_REF``, ``TURN_INDEX`` | dialog turn |
| ``ABT_EVENTS`` | ``ABT_ID`` | ABT event (deterministic ids) |
| ``TASKS`` | ``TASK_ID`` | business task; tombstoned (``DELETED``) on ``task.deleted`` |
| ``PROJECTION_CHECKPOINTS`` | ``PROJECTION``, ``TOPIC``, ``PARTITION`` | consumed partition |
| ``PROJECTOR_SESSIONS`` | ``PROJECTION`` | projector: the session it holds (:mod:`.fencing`) |
| ``PROJECTION_HOLDS`` | ``PROJECTION`` | projection: fence and rebuild hold (:mod:`.holds`) |

Every row carries ``VERSION``: the log offset of the last event that wrote it. A write replaces
a row only when its version is higher (``NEXT_OFFSET`` plays that part for checkpoints), so
replaying events changes nothing.

**Why UPDATE + INSERT and not MERGE.** On Snowflake, ``MERGE INTO t USING staged ON key WHEN
MATCHED AND staged.VERSION > t.VERSION THEN UPDATE … WHEN NOT MATCHED THEN INSERT …`` does the
same in one statement (:func:`merge_sql` writes it, for the docs and for use on a real
account). fakesnow 0.12.1 emulates MERGE with a ``CREATE TEMPORARY TABLE`` of match candidates,
and DuckDB lets one transaction write one attached database only, so a MERGE inside an explicit
transaction fails there. The store therefore runs the equivalent pair of set-based statements,
:func:`update_sql` then :func:`insert_sql`, which both engines run inside one transaction.
Neither is ever row-by-row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["VARCHAR", "NUMBER", "FLOAT", "BOOLEAN", "TIMESTAMP_TZ", "VARIANT"]

_SQL_TYPES: dict[ColumnType, str] = {
    "VARCHAR": "VARCHAR",
    "NUMBER": "NUMBER(38,0)",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP_TZ": "TIMESTAMP_TZ",
    "VARIANT": "VARIANT",
}


@dataclass(frozen=True)
class Column:
    """One column: its upper-case name and Snowflake type."""

    name: str
    type: ColumnType


#: How a batch's rows reach a table:
#:
#: * ``staged`` — into the session's staging table, then one UPDATE of newer versions and one
#:   INSERT of new keys from it (four statements; the bound rows are parsed once);
#: * ``unstaged`` — the same UPDATE and INSERT reading the bound rows directly (two statements,
#:   each parsing the rows: for tables of a few rows a batch);
#: * ``append_only`` — rows of an immutable fact: one INSERT of the keys not stored yet; the
#:   first copy of a key stands and later copies are ignored.
Writes = Literal["staged", "unstaged", "append_only"]


@dataclass(frozen=True)
class Table:
    """A warehouse table: columns, key, and the column that orders writes (``VERSION``)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    version: str = "VERSION"
    #: how a batch is written (see :data:`Writes`)
    writes: Writes = "staged"

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in declaration order."""
        return tuple(c.name for c in self.columns)

    @property
    def stage(self) -> str:
        """The session's temporary staging table for this table."""
        return f"{self.name}_STAGE"

    @property
    def updated(self) -> tuple[str, ...]:
        """The columns a newer row overwrites (all but the key)."""
        return tuple(n for n in self.names if n not in self.key)


def _c(spec: str) -> tuple[Column, ...]:
    """``"A VARCHAR, B NUMBER"`` → columns."""
    columns = []
    for part in spec.split(","):
        name, kind = part.split()
        columns.append(Column(name, kind))  # type: ignore[arg-type]
    return tuple(columns)


CALLS = Table(
    "CALLS",
    _c(
        "CALL_REF VARCHAR, RETELL_CALL_ID VARCHAR, DIRECTION VARCHAR, STATUS VARCHAR,"
        " CONNECTED BOOLEAN, FROM_NUMBER_HASH VARCHAR, TO_NUMBER_HASH VARCHAR, AGENT_ID VARCHAR,"
        " TASK_REF VARCHAR, PATIENT_REF VARCHAR, REQUESTED_AT TIMESTAMP_TZ,"
        " SCHEDULED_AT TIMESTAMP_TZ, DISPATCHED_AT TIMESTAMP_TZ, STARTED_AT TIMESTAMP_TZ,"
        " ENDED_AT TIMESTAMP_TZ, DURATION_MS NUMBER, DISCONNECTION_REASON VARCHAR,"
        " SUMMARY VARCHAR, SENTIMENT VARCHAR, SUCCESSFUL BOOLEAN, COST FLOAT,"
        " DISPATCH_ATTEMPTS NUMBER, LAST_FAILURE VARCHAR, RECORDED BOOLEAN, EVENTS NUMBER,"
        " FOLD_STATE VARIANT, VERSION NUMBER"
    ),
    key=("CALL_REF",),
)

CALL_EVENTS = Table(
    "CALL_EVENTS",
    _c(
        "EVENT_ID VARCHAR, TYPE VARCHAR, SCHEMA_VERSION NUMBER, KEY VARCHAR, SOURCE VARCHAR,"
        " CORRELATION_ID VARCHAR, CAUSATION_ID VARCHAR, OCCURRED_AT TIMESTAMP_TZ,"
        " RECORDED_AT TIMESTAMP_TZ, TOPIC VARCHAR, PAYLOAD VARIANT, RECORD_METADATA VARIANT,"
        " VERSION NUMBER"
    ),
    key=("EVENT_ID",),
    writes="append_only",  # an event id is one fact; a second copy on the log changes nothing
)

SESSIONS = Table(
    "SESSIONS",
    _c(
        "SESSION_ID VARCHAR, PHONE_HASH VARCHAR, TASK VARCHAR, STATUS VARCHAR, STAGE VARCHAR,"
        " STARTED_AT TIMESTAMP_TZ, UPDATED_AT TIMESTAMP_TZ, CALLS NUMBER, CALL_REFS VARIANT,"
        " COMPLETED_AT TIMESTAMP_TZ, RESUMED BOOLEAN, EXPIRES_AT TIMESTAMP_TZ,"
        " FOLD_STATE VARIANT, VERSION NUMBER"
    ),
    key=("SESSION_ID",),
)

DIALOG_TURNS = Table(
    "DIALOG_TURNS",
    _c(
        "CALL_REF VARCHAR, TURN_INDEX NUMBER, RETELL_CALL_ID VARCHAR, SESSION_ID VARCHAR,"
        " ROLE VARCHAR, TEXT VARCHAR, RESPONSE_ID NUMBER, STAGE VARCHAR, LATENCY_MS FLOAT,"
        " OCCURRED_AT TIMESTAMP_TZ, EVENT_ID VARCHAR, VERSION NUMBER"
    ),
    key=("CALL_REF", "TURN_INDEX"),
)

ABT_EVENTS = Table(
    "ABT_EVENTS",
    _c(
        "ABT_ID VARCHAR, NAME VARCHAR, CALL_REF VARCHAR, RETELL_CALL_ID VARCHAR,"
        " ATTRIBUTES VARIANT, OCCURRED_AT TIMESTAMP_TZ, RECORDED_AT TIMESTAMP_TZ,"
        " EVENT_ID VARCHAR, VERSION NUMBER"
    ),
    key=("ABT_ID",),
    writes="append_only",  # ABT ids are deterministic: a re-emitted one is the same fact
)

TASKS = Table(
    "TASKS",
    _c(
        "TASK_ID VARCHAR, FIELDS VARIANT, SCHEDULED_AT TIMESTAMP_TZ, CALL_REF VARCHAR,"
        " DELETED BOOLEAN, DELETED_AT TIMESTAMP_TZ, DELETE_REASON VARCHAR,"
        " INCOMING_FROM_HASH VARCHAR, INCOMING_TO_HASH VARCHAR, PATIENT_REF VARCHAR,"
        " LAST_EVENT_TYPE VARCHAR, CREATED_AT TIMESTAMP_TZ, UPDATED_AT TIMESTAMP_TZ,"
        " FOLD_STATE VARIANT, VERSION NUMBER"
    ),
    key=("TASK_ID",),
)

CHECKPOINTS = Table(
    "PROJECTION_CHECKPOINTS",
    _c("PROJECTION VARCHAR, TOPIC VARCHAR, PARTITION NUMBER, NEXT_OFFSET NUMBER"),
    key=("PROJECTION", "TOPIC", "PARTITION"),
    version="NEXT_OFFSET",
    writes="unstaged",  # one row per partition of the batch
)

#: Which session each projector holds (see :mod:`.fencing`); not part of the projected state.
PROJECTOR_SESSIONS = Table(
    "PROJECTOR_SESSIONS",
    _c(
        "PROJECTION VARCHAR, SESSION_ID VARCHAR, SESSION_TOKEN VARCHAR, SERVER VARCHAR,"
        " CLAIMED_AT TIMESTAMP_TZ"
    ),
    key=("PROJECTION",),
    version="CLAIMED_AT",
)

#: Each projection's write fence and the rebuild holding it, if any (see :mod:`.holds`); not
#: part of the projected state.
HOLDS = Table(
    "PROJECTION_HOLDS",
    _c("PROJECTION VARCHAR, HOLDER VARCHAR, HELD_UNTIL TIMESTAMP_TZ, TURN NUMBER"),
    key=("PROJECTION",),
    version="TURN",
)

#: Every table, in the order a batch writes them (checkpoints last).
TABLES: tuple[Table, ...] = (CALL_EVENTS, CALLS, SESSIONS, DIALOG_TURNS, ABT_EVENTS, TASKS)
ALL_TABLES: tuple[Table, ...] = (*TABLES, CHECKPOINTS)
BY_NAME: dict[str, Table] = {t.name: t for t in ALL_TABLES}

#: Tables whose row is a fold of the key's events; they keep the fold's state in FOLD_STATE.
FOLDED: frozenset[str] = frozenset({CALLS.name, SESSIONS.name, TASKS.name})


def q(name: str) -> str:
    """A quoted identifier (names are upper case, so quoting does not change them)."""
    return f'"{name}"'


def create_table_sql(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` with the key as primary key (informational on Snowflake)."""
    columns = ", ".join(
        f"{q(c.name)} {_SQL_TYPES[c.type]}{' NOT NULL' if c.name in table.key else ''}"
        for c in table.columns
    )
    key = ", ".join(q(k) for k in table.key)
    return f"CREATE TABLE IF NOT EXISTS {q(table.name)} ({columns}, PRIMARY KEY ({key}))"


def create_stage_sql(table: Table) -> str:
    """The session's temporary staging table, same columns, no key."""
    columns = ", ".join(f"{q(c.name)} {_SQL_TYPES[c.type]}" for c in table.columns)
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS {q(table.stage)} ({columns})"


def clear_stage_sql(table: Table) -> str:
    """Empty the staging table (inside the batch's transaction)."""
    return f"DELETE FROM {q(table.stage)}"


def stage_sql(table: Table) -> str:
    """Fill the staging table from one bound JSON array of row objects (one statement).

    Each row is an object keyed by column name; a missing key is NULL. The array is bound as a
    single parameter and exploded with ``FLATTEN``, so a batch is one INSERT whatever its size.
    """
    names = ", ".join(q(c.name) for c in table.columns)
    return f"INSERT INTO {q(table.stage)} ({names}) {_bound_rows(table)}"


def _extract(column: Column) -> str:
    path = f"value:{q(column.name)}"
    if column.type == "VARIANT":
        return path
    return f"{path}::{_SQL_TYPES[column.type]}"


def _bound_rows(table: Table) -> str:
    """The rows of one bound JSON array of row objects, as the table's typed columns."""
    select = ", ".join(f"{_extract(c)} AS {q(c.name)}" for c in table.columns)
    return f"SELECT {select} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))"


def _source(table: Table, bound: bool) -> str:
    """What a write reads its rows from: the staging table, or the bound JSON array."""
    return f"({_bound_rows(table)})" if bound else q(table.stage)


def _match(table: Table, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{q(k)} = {right}.{q(k)}" for k in table.key)


def update_sql(table: Table, *, bound: bool = False) -> str:
    """Overwrite rows whose staged (or, with ``bound``, bound) version is newer than the
    stored one."""
    sets = ", ".join(f"{q(n)} = S.{q(n)}" for n in table.updated)
    v = q(table.version)
    return (
        f"UPDATE {q(table.name)} AS T SET {sets} FROM {_source(table, bound)} AS S "
        f"WHERE {_match(table, 'T', 'S')} AND S.{v} > T.{v}"
    )


def insert_sql(table: Table, *, bound: bool = False) -> str:
    """Insert staged (or, with ``bound``, bound) rows whose key is not stored yet."""
    names = ", ".join(q(n) for n in table.names)
    values = ", ".join(f"S.{q(n)}" for n in table.names)
    return (
        f"INSERT INTO {q(table.name)} ({names}) SELECT {values} FROM {_source(table, bound)} AS S "
        f"WHERE NOT EXISTS (SELECT 1 FROM {q(table.name)} AS T WHERE {_match(table, 'T', 'S')})"
    )


def merge_sql(table: Table) -> str:
    """The single-statement equivalent of :func:`update_sql` + :func:`insert_sql` (Snowflake)."""
    sets = ", ".join(f"{q(n)} = S.{q(n)}" for n in table.updated)
    names = ", ".join(q(n) for n in table.names)
    values = ", ".join(f"S.{q(n)}" for n in table.names)
    v = q(table.version)
    return (
        f"MERGE INTO {q(table.name)} AS T USING {q(table.stage)} AS S "
        f"ON {_match(table, 'T', 'S')} "
        f"WHEN MATCHED AND S.{v} > T.{v} THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def select_states_sql(tables: Sequence[Table]) -> str:
    """Stored fold state and version of some keys of each folded table, in one statement:
    rows of ``(table name, key, FOLD_STATE, VERSION)``; one bound JSON array of keys per table,
    in the order given."""
    parts = []
    for table in tables:
        (key,) = table.key
        parts.append(
            f"SELECT '{table.name}' AS {q('TABLE_NAME')}, {q(key)} AS {q('KEY')}, "
            f"{q('FOLD_STATE')}, {q(table.version)} AS {q('VERSION')} FROM {q(table.name)} "
            f"WHERE {q(key)} IN (SELECT value::VARCHAR FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))))"
        )
    return " UNION ALL ".join(parts)


def _read(column: Column) -> str:
    if column.type == "VARIANT":
        return f"TO_JSON({q(column.name)})"
    if column.type == "TIMESTAMP_TZ":
        return f"{q(column.name)}::VARCHAR"
    return q(column.name)


def select_checkpoint_sql() -> str:
    """The next offsets stored for one projection."""
    t = CHECKPOINTS
    return (
        f"SELECT {q('TOPIC')}, {q('PARTITION')}, {q('NEXT_OFFSET')} FROM {q(t.name)} "
        f"WHERE {q('PROJECTION')} = ?"
    )


def snapshot_sql(table: Table) -> str:
    """Every row of ``table`` ordered by its key; variants as JSON text, timestamps as text.

    Timestamps are read as text because the fakesnow server (0.12.1) returns a NULL
    ``TIMESTAMP_TZ`` as 1970-01-01 (its Arrow encoding drops the null mask); the stored value
    is NULL, and ``IS NULL`` or a cast to VARCHAR shows it.
    """
    order = ", ".join(q(k) for k in table.key)
    return f"SELECT {read_columns(table)} FROM {q(table.name)} ORDER BY {order}"


def read_columns(table: Table) -> str:
    """``table``'s columns as a select list reads them for comparisons: variants as JSON
    text, timestamps as text (see :func:`snapshot_sql`)."""
    return ", ".join(_read(c) for c in table.columns)
