"""SQL engines and dialect-specific inserts for the stores ringlog keeps (SQLite, PostgreSQL).

Every store opens its database through :func:`sql_engine`, so SQLite files get their folder,
write-ahead logging (readers in other processes never block the writer) and a busy timeout
(several processes — worker, projector, API — share one file on the embedded stack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite

#: The dialects' ``INSERT`` constructs that know ``ON CONFLICT … DO UPDATE / DO NOTHING``.
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

#: Seconds a SQLite connection waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0


def sql_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, the folder is created and WAL switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def insert_for(connection: Connection) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_update``/``_do_nothing``)."""
    insert = _INSERTS.get(connection.dialect.name)
    if insert is None:
        raise NotImplementedError(
            f"no upsert for the {connection.dialect.name} dialect (SQLite, PostgreSQL only)"
        )
    return insert
