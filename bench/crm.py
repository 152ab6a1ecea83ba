"""The CRM half of ``bench.warehouse``: the runner into PostgreSQL, and the raw baseline."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from bench.timing import RunTimes, timed_run
from ringlog.config import Settings
from ringlog.projections.base import Event
from ringlog.projections.crm import crm_runner
from ringlog.projections.crm import rows as crm_rows
from ringlog.projections.crm.schema import METADATA as CRM_METADATA
from ringlog.projections.crm.schema import TABLES as CRM_TABLES
from ringlog.projections.crm.store import CrmStore
from ringlog.schemas import Envelope


async def ringlog_crm(settings: Settings, pg: str) -> RunTimes:
    """Sessions and dialog from the log into a fresh PostgreSQL schema; upserts applied."""
    schema_name = f"bench_crm_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    store = CrmStore(f"{pg}?options=-csearch_path%3D{schema_name}")
    run = await timed_run(crm_runner, settings, store, group="bench-crm")
    store.close()
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
    admin.dispose()
    return run


def raw_crm(envelopes: Sequence[Envelope], pg: str) -> tuple[int, float]:
    """The CRM's upserts through a raw psycopg ``executemany`` into the same table shapes."""
    events = [Event(e.payload.topic, 0, i, e) for i, e in enumerate(envelopes)]
    upserts = crm_rows.project([e for e in events if e.envelope.type in crm_rows.HANDLED])
    schema_name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    engine = create_engine(f"{pg}?options=-csearch_path%3D{schema_name}")
    with engine.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    CRM_METADATA.create_all(engine)
    engine.dispose()
    by_table: dict[str, list[crm_rows.Upsert]] = defaultdict(list)
    for op in upserts:
        by_table[op.table].append(op)
    dsn = pg.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, options=f"-csearch_path={schema_name}") as conn:
        start = time.perf_counter()
        with conn.cursor() as cursor:
            for name, ops in by_table.items():
                table = CRM_TABLES[name]
                columns = [c.name for c in table.columns]
                key = [c.name for c in table.primary_key.columns]
                sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
                sql = (
                    f"INSERT INTO {table.name} ({', '.join(columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(columns))}) "
                    f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} "
                    f"WHERE {table.name}.version < EXCLUDED.version"
                )
                values = [tuple(op.values.get(c, _default(c)) for c in columns) for op in ops]
                cursor.executemany(sql, values)
        conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute(f'DROP SCHEMA "{schema_name}" CASCADE')
        conn.commit()
    return len(upserts), elapsed


def _default(column: str) -> Any:
    return {"turns": 0, "transcript": "", "outcome": "in_progress"}.get(column)
