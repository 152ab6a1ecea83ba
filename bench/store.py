"""The worker store a bench folds into: a fresh schema on the local PostgreSQL (``Store``,
``worker_store``), else a SQLite file, and ``Autoanalyze``, which ANALYZEs it in autovacuum's
stead when the server runs with autovacuum off. Shared by ``bench.scale``, ``bench.replay``
and ``bench.console``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

from ringlog.devstack.parts import sql_answers

PG_URL = os.environ.get(
    "RINGLOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Store:
    """The worker store of one size: its URL, and its schema on the local PostgreSQL."""

    url: str
    #: None for a SQLite file
    schema: str | None = None

    @property
    def kind(self) -> str:
        return "SQLite" if self.schema is None else "PostgreSQL"


@contextlib.contextmanager
def worker_store(sqlite: bool, tmp: Path) -> Iterator[Store]:
    """A fresh schema on the local PostgreSQL (dropped after), else a SQLite file in ``tmp``."""
    if sqlite or not sql_answers(PG_URL):
        yield Store(f"sqlite:///{tmp / 'crm.db'}")
        return
    schema = f"bench_scale_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        url = sqlalchemy.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield Store(url.render_as_string(hide_password=False), schema)
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


class Autoanalyze:
    """Stands in for PostgreSQL's autovacuum daemon when the server has it off (as the local
    test server does): ANALYZE of the store's tables every ``autovacuum_naptime``, so the
    planner sees the tables as they grow, as in production. Without it a store filled from
    empty keeps the statistics of an empty table (the worker's batch lookup then scans every
    row of the topic: see the README)."""

    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.store = store
        self.runs = 0
        self.every_s: float | None = None
        if enabled and store.schema is not None:
            engine = sqlalchemy.create_engine(PG_URL)
            with engine.connect() as connection:
                off = connection.execute(sqlalchemy.text("SHOW autovacuum")).scalar() == "off"
                naptime = connection.execute(
                    sqlalchemy.text("SELECT setting::float FROM pg_settings WHERE name = :n"),
                    {"n": "autovacuum_naptime"},
                ).scalar()
            engine.dispose()
            self.every_s = float(naptime or 60.0) if off else None

    @property
    def active(self) -> bool:
        return self.every_s is not None

    def analyze(self) -> None:
        """ANALYZE every table of the store's schema (not the rest of the database)."""
        if not self.active:
            return
        engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                tables = connection.execute(
                    sqlalchemy.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                    {"s": self.store.schema},
                ).scalars()
                for table in list(tables):
                    connection.execute(sqlalchemy.text(f'ANALYZE "{self.store.schema}"."{table}"'))
        finally:
            engine.dispose()
        self.runs += 1

    async def run(self) -> None:
        """ANALYZE every ``every_s`` until cancelled."""
        while self.every_s is not None:
            await asyncio.sleep(self.every_s)
            await asyncio.to_thread(self.analyze)
