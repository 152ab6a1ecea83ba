"""Projections against their raw clients: the warehouse (fakesnow) and the CRM (PostgreSQL).

One run, one private stack (or the configured one), N mixed events appended once:

* **warehouse** — ringlog's projection runner reads the N events from the log and writes every
  warehouse table (fold, stage, update/insert, checkpoint, one transaction per batch). The raw
  baselines load the *same rows* (computed by the same pure functions, not timed) into the same
  table shapes in another database through the bare connector: ``executemany`` of
  ``INSERT … VALUES`` (the connector's multi-row form; measured on a sample, it is slow on
  fakesnow), and one ``INSERT … SELECT … FLATTEN(PARSE_JSON(?))`` per table and chunk (the
  fastest raw load fakesnow offers; ``write_pandas`` needs pandas and stages files with PUT).
* **crm** — the CRM projection (``sessions`` + ``dialog``) into a fresh PostgreSQL schema,
  against a raw psycopg ``executemany`` of the same upserts (``INSERT … ON CONFLICT DO UPDATE``).
  ringlog merges the writes of one row inside a batch into one upsert (same final rows); the
  raw baseline executes every upsert; both rates count the upserts of the log.

Rates are rows (upserts) per second. ringlog's include fetching, decoding and projecting the
log; they are measured from the moment the runner has joined its consumer group (its second
checkpoint read, on assignment) to its last commit, and the start-up before it — the group
join, a fixed cost that does not grow with N (Tansu holds a new group's first JoinGroup for
about half the session timeout; Kafka's ``group.initial.rebalance.delay.ms`` is 3 s) — is
printed on its own line, with the ratio including it. Ratio = ringlog / best raw (target
≥ 0.5). Usage: ``python -m bench.warehouse [N] [--pg URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import snowflake.connector
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text

from bench.broker import bench_settings
from ringlog import heap
from ringlog.config import Settings
from ringlog.projections.base import Event
from ringlog.projections.crm import crm_runner
from ringlog.projections.crm import rows as crm_rows
from ringlog.projections.crm.schema import METADATA as CRM_METADATA
from ringlog.projections.crm.schema import TABLES as CRM_TABLES
from ringlog.projections.crm.store import CrmStore
from ringlog.projections.warehouse import protector, schema, warehouse_runner, warehouse_store
from ringlog.projections.warehouse import rows as wh_rows
from ringlog.projections.warehouse.folds import fold_rows
from ringlog.projections.warehouse.store import connect_kwargs
from ringlog.schemas import (
    AbtEvent,
    Appointment,
    CallDispatched,
    CallRequested,
    DialogTurn,
    Envelope,
    EventModel,
    Patient,
    RetellCallAnalyzed,
    RetellCallEnded,
    RetellCallStarted,
    SessionCompleted,
    SessionProgressed,
    SessionStarted,
    TaskFieldWriteback,
    abt_id_for,
)
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.offsets import end_offsets
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import TOPICS

PG_URL = os.environ.get(
    "RINGLOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
T0 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)
#: rows per table the slow raw executemany baseline loads (its rate is per row)
EXECUTEMANY_SAMPLE = 1_000
CHUNK = 5_000


def mixed_events(n: int) -> list[Envelope]:
    """N events in units of 16: one call's lifecycle, ABT, dialog, session and a task write."""
    out: list[Envelope] = []
    i = 0
    while len(out) < n:
        ref, phone, session = f"call-{i}", f"+1415{i % 10_000_000:07d}", f"sess-{i}"
        at = T0 + dt.timedelta(seconds=i)
        start = int(at.timestamp() * 1000)
        call = {
            "call_id": f"retell-{i}",
            "metadata": {"call_ref": ref},
            "from_number": "+14155559876",
            "to_number": phone,
            "direction": "outbound",
            "start_timestamp": start,
        }
        ended = call | {"end_timestamp": start + 60_000, "duration_ms": 60_000}
        analysis = {"call_summary": "booked", "call_successful": True}
        unit: list[EventModel] = [
            CallRequested(call_ref=ref, to_number=phone, from_number="+14155559876", agent_id="a"),
            CallDispatched(call_ref=ref, retell_call_id=f"retell-{i}", agent_id="a"),
            RetellCallStarted.model_validate({"event": "call_started", "call": call}),
            RetellCallEnded.model_validate({"event": "call_ended", "call": ended}),
            RetellCallAnalyzed.model_validate(
                {"event": "call_analyzed", "call": ended | {"call_analysis": analysis}}
            ),
            *(
                AbtEvent(abt_id=abt_id_for(ref, name), name=name, call_ref=ref)
                for name in ("voice_call_initiated", "call_started", "call_completed")
            ),
            *(
                DialogTurn(
                    call_ref=ref,
                    call_id=f"retell-{i}",
                    session_id=session,
                    turn_index=t,
                    role="agent" if t % 2 == 0 else "user",
                    text=f"turn {t} of call {i}",
                )
                for t in range(4)
            ),
            SessionStarted(session_id=session, phone=phone, call_ref=ref, stage="identity"),
            SessionProgressed(session_id=session, phone=phone, call_ref=ref, stage="date"),
            SessionCompleted(
                session_id=session,
                phone=phone,
                call_ref=ref,
                call_refs=(ref,),
                appointment=Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main"),
                patient=Patient(name=f"Patient {i}", date_of_birth=dt.date(1980, 1, 1)),
            ),
            TaskFieldWriteback(task_id=f"task-{i % 500}", fields={"last": i}),
        ]
        out += [Envelope.new(p, source="bench", occurred_at=at) for p in unit]
        i += 1
    return out[:n]


def warehouse_rows(settings: Settings, envelopes: Sequence[Envelope]) -> dict[str, list[Any]]:
    """The final rows of every warehouse table for ``envelopes`` (pure; offsets synthetic)."""
    events = [Event(e.payload.topic, 0, i, e) for i, e in enumerate(envelopes)]
    ops = wh_rows.project(events, protector(settings))
    tables: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    folds: dict[str, list[wh_rows.Fold]] = defaultdict(list)
    for op in ops:
        if isinstance(op, wh_rows.Row):
            tables[op.table].append(op.values)
        else:
            folds[op.table].append(op)
    for name, pending in folds.items():
        tables[name] += fold_rows(name, {}, pending)
    return {
        name: wh_rows.latest_by_key(schema.BY_NAME[name].key, found)
        for name, found in tables.items()
    }


def connect(settings: Settings, database: str, paramstyle: str) -> Any:
    w = settings.warehouse.model_copy(update={"database": database})
    kwargs = connect_kwargs(w) | {"paramstyle": paramstyle}
    conn = snowflake.connector.connect(**kwargs)
    cursor = conn.cursor()
    for table in schema.TABLES:
        cursor.execute(schema.create_table_sql(table))
    return conn


def raw_executemany(settings: Settings, rows: Mapping[str, list[Any]]) -> tuple[int, float]:
    """A sample of every table through ``executemany`` (``%s``: one multi-row INSERT)."""
    conn = connect(settings, f"RAWM_{uuid.uuid4().hex[:8].upper()}", "pyformat")
    cursor, count, start = conn.cursor(), 0, time.perf_counter()
    for name, found in rows.items():
        table = schema.BY_NAME[name]
        sample = found[:EXECUTEMANY_SAMPLE]
        marks = ", ".join(["%s"] * len(table.columns))
        names = ", ".join(schema.q(n) for n in table.names)
        values = [tuple(_plain(row.get(n)) for n in table.names) for row in sample]
        cursor.executemany(f"INSERT INTO {schema.q(name)} ({names}) VALUES ({marks})", values)
        count += len(sample)
    elapsed = time.perf_counter() - start
    conn.close()
    return count, elapsed


def raw_json_insert(settings: Settings, rows: Mapping[str, list[Any]]) -> tuple[int, float]:
    """Every row: one bound-JSON ``INSERT … SELECT`` per table and chunk, straight in."""
    conn = connect(settings, f"RAWJ_{uuid.uuid4().hex[:8].upper()}", "qmark")
    cursor, count, start = conn.cursor(), 0, time.perf_counter()
    for name, found in rows.items():
        table = schema.BY_NAME[name]
        sql = schema.stage_sql(table).replace(schema.q(table.stage), schema.q(table.name), 1)
        for i in range(0, len(found), CHUNK):
            chunk = found[i : i + CHUNK]
            doc = orjson.dumps([{k: v for k, v in r.items() if v is not None} for r in chunk])
            cursor.execute(sql, (doc.decode(),))
            count += len(chunk)
    elapsed = time.perf_counter() - start
    conn.close()
    return count, elapsed


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


class Timed:
    """Wraps a projection target and times it: the writes (``apply``), and the moments the
    runner joined its group (its second checkpoint read, made on assignment) and finished
    its last write."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.seconds = 0.0
        self.checkpoint_reads: list[float] = []
        self.last_write = 0.0
        self.applied: dict[Any, int] = {}
        self.progress = asyncio.Event()

    def hold(self, projection: str) -> None:
        self.target.hold(projection)

    async def load_checkpoint(self, projection: str) -> Any:
        self.checkpoint_reads.append(time.perf_counter())
        return await self.target.load_checkpoint(projection)

    async def apply(self, projection: str, operations: Any, positions: Any) -> None:
        start = time.perf_counter()
        await self.target.apply(projection, operations, positions)
        self.last_write = time.perf_counter()
        self.seconds += self.last_write - start
        self.applied.update(positions)
        self.progress.set()

    async def run(self, runner: Any, kafka: Any) -> float:
        """Run ``runner`` until this target has applied the log's current end; return the
        time it started. Only the runner reads the checkpoint (nothing polls it)."""
        ends = await end_offsets(kafka, runner.projection.topics)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(runner.run(stop))
        while not all(self.applied.get(tp, 0) >= end for tp, end in ends.items()):
            self.progress.clear()
            waiter = asyncio.create_task(self.progress.wait())
            await asyncio.wait([waiter, task], timeout=3600, return_when="FIRST_COMPLETED")
            waiter.cancel()
            if task.done():
                task.result()
                raise RuntimeError("the runner stopped before catching up")
        stop.set()
        await task
        return started

    def spans(self, started: float) -> tuple[float, float]:
        """Seconds from ``started`` to the join, and from the join to the last write."""
        joined = self.checkpoint_reads[1]
        return joined - started, self.last_write - joined


@dataclass
class RunTimes:
    """One projection run: start-up (group join), then the work until the last write."""

    rows: int
    startup_s: float
    work_s: float
    write_s: float


async def ringlog_warehouse(settings: Settings, n: int) -> RunTimes:
    """The N events from the log into a fresh database through the runner."""
    database = f"RL_{uuid.uuid4().hex[:8].upper()}"
    target_settings = settings.model_copy(
        update={"warehouse": settings.warehouse.model_copy(update={"database": database})}
    )
    store = warehouse_store(target_settings)
    store.ensure_tables()
    timed = Timed(store)
    runner = warehouse_runner(
        target_settings,
        timed,  # type: ignore[arg-type]
        group_id=f"bench-wh-{uuid.uuid4().hex[:6]}",
        registry=CollectorRegistry(),
    )
    start = await timed.run(runner, settings.kafka)
    startup, work = timed.spans(start)
    counts = store.snapshot()
    store.close()
    rows = sum(len(v) for k, v in counts.items() if k != schema.CHECKPOINTS.name)
    return RunTimes(rows, startup, work, timed.seconds)


async def ringlog_crm(settings: Settings, pg: str) -> RunTimes:
    """Sessions and dialog from the log into a fresh PostgreSQL schema; upserts applied."""
    schema_name = f"bench_crm_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    store = CrmStore(f"{pg}?options=-csearch_path%3D{schema_name}")
    timed = Timed(store)
    runner = crm_runner(
        settings,
        timed,  # type: ignore[arg-type]
        group_id=f"bench-crm-{uuid.uuid4().hex[:6]}",
        registry=CollectorRegistry(),
    )
    start = await timed.run(runner, settings.kafka)
    startup, work = timed.spans(start)
    store.close()
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
    admin.dispose()
    return RunTimes(0, startup, work, timed.seconds)


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


async def append(settings: Settings, envelopes: Sequence[Envelope]) -> None:
    await ensure_topics(settings.kafka, TOPICS)
    async with LogProducer(settings.kafka) as producer:
        for i in range(0, len(envelopes), 10_000):
            await producer.append_many(envelopes[i : i + 10_000])


def _report(run: RunTimes, rows: int, raw: float, raw_name: str) -> None:
    """ringlog's lines of a table: start-up, then rates measured from the join on."""
    total = run.startup_s + run.work_s
    lines = [
        ("ringlog start-up: group join and seek (fixed, not rows)", None, run.startup_s),
        ("ringlog runner, joined → last commit (fetch … commit)", rows / run.work_s, run.work_s),
        ("ringlog runner, including start-up", rows / total, total),
        ("ringlog writes only (inside the target's apply)", rows / run.write_s, run.write_s),
    ]
    for label, rate, seconds in lines:
        shown = f"{rate:>12,.0f}" if rate is not None else f"{'':>12}"
        print(f"{label:<52}{shown}{seconds:>10.2f}")
    for label, seconds in (
        ("runner (joined → last commit)", run.work_s),
        ("runner including start-up", total),
        ("writes only", run.write_s),
    ):
        print(f"{f'ratio {label} / {raw_name}':<52}{rows / seconds / raw:>12.2f}")


def main(argv: list[str] | None = None) -> None:
    """Parse N, run both comparisons, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--pg", default=PG_URL, help="SQLAlchemy URL of the PostgreSQL for CRM")
    args = parser.parse_args(argv)
    envelopes = mixed_events(args.n)
    # The bench holds every event in memory for the raw paths; keep those objects out of the
    # collector's full passes so the runner is not charged for scanning the bench's own heap,
    # and collect as `ringlog projector` does (ringlog.heap)
    heap.settle()
    with bench_settings() as base:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})}
        )
        asyncio.run(append(settings, envelopes))
        try:
            # the CRM first: the fakesnow server keeps a core busy for a while after big loads
            crm_count, raw_crm_s = raw_crm(envelopes, args.pg)
            crm = asyncio.run(ringlog_crm(settings, args.pg))
            rows = warehouse_rows(settings, envelopes)
            total_rows = sum(len(v) for v in rows.values())
            ours = asyncio.run(ringlog_warehouse(settings, args.n))
            many_rows, many_s = raw_executemany(settings, rows)
            json_rows, json_s = raw_json_insert(settings, rows)
        finally:
            asyncio.run(delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS]))
    assert ours.rows == total_rows, (ours.rows, total_rows)
    many, bulk = many_rows / many_s, json_rows / json_s
    best = max(many, bulk)
    print(f"warehouse projection (fakesnow), N={args.n} events → {total_rows} rows")
    print(f"{'path':<52}{'rows/s':>12}{'seconds':>10}")
    print(f"{'raw connector executemany (sample)':<52}{many:>12,.0f}{many_s:>10.2f}")
    print(f"{'raw connector one JSON-bound INSERT per table':<52}{bulk:>12,.0f}{json_s:>10.2f}")
    _report(ours, total_rows, best, "best raw")
    crm_raw = crm_count / raw_crm_s
    print(f"\nCRM projection (PostgreSQL), {crm_count} upserts from sessions + dialog")
    print(f"{'raw psycopg executemany (upserts)':<52}{crm_raw:>12,.0f}{raw_crm_s:>10.2f}")
    _report(crm, crm_count, crm_raw, "raw")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
