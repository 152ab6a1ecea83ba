"""The call-record store: the ``call_records`` table of the CRM database (SQLAlchemy 2).

Writes are upserts keyed by the call ref, so writing the same record twice (a replay, or a
retry after a crash between the write and ``call.recorded``) leaves one row, the latest
record's (:func:`ringlog.projections.sql.upsert`). The table is created on start if missing.
SQLite and PostgreSQL are both supported; the database is opened through
:func:`ringlog.projections.sql.sql_engine` like every other store.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    select,
)

from ringlog.calls.record import CallRecord
from ringlog.projections.sql import create_tables, sql_engine, upsert

METADATA = MetaData()

CALL_RECORDS = Table(
    "call_records",
    METADATA,
    Column("call_ref", String(128), primary_key=True),
    Column("retell_call_id", String(128)),
    Column("direction", String(16)),
    Column("from_number", String(32)),
    Column("to_number", String(32)),
    Column("agent_id", String(128)),
    Column("status", String(32), nullable=False),
    Column("connected", Boolean, nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("duration_ms", Integer),
    Column("disconnection_reason", String(64)),
    Column("summary", String),
    Column("sentiment", String(32)),
    Column("successful", Boolean),
    Column("cost", Float),
    Column("task_ref", String(128)),
    Column("patient_ref", String(128)),
)

#: What a newer record of the same call overwrites: every column but the key.
_REPLACED = tuple(c.name for c in CALL_RECORDS.columns if not c.primary_key)


class CallRecordStore:
    """Writes and reads call records; blocking database work runs in a thread."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = sql_engine(url)
        create_tables(self._engine, METADATA)

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    async def write(self, record: CallRecord) -> None:
        """Insert or replace the record of ``record.call_ref``."""
        await asyncio.to_thread(self._write, record)

    async def read(self, call_ref: str) -> CallRecord | None:
        """The stored record of ``call_ref``, if any."""
        return await asyncio.to_thread(self._read, call_ref)

    def _write(self, record: CallRecord) -> None:
        with self._engine.begin() as connection:
            statement = upsert(connection, CALL_RECORDS, update=_REPLACED)
            connection.execute(statement, record.model_dump())

    def _read(self, call_ref: str) -> CallRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(CALL_RECORDS).where(CALL_RECORDS.c.call_ref == call_ref)
            ).first()
        return CallRecord.model_validate(dict(row._mapping)) if row else None
