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
≥ 0.5). Each path runs ``--rounds`` times (default 3), ringlog and raw alternating; the tables
show medians and a line gives every round's ratio, so one noisy run on a shared 2-core
machine neither makes nor breaks the result. Usage:
``python -m bench.warehouse [N] [--pg URL] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson
import snowflake.connector

from bench.broker import bench_settings
from bench.crm import raw_crm, ringlog_crm
from bench.timing import RunTimes, medians, report, rounds_line, timed_run
from ringlog import heap
from ringlog.config import Settings
from ringlog.projections.base import Event
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
            RetellCallStarted.from_body({"event": "call_started", "call": call}),
            RetellCallEnded.from_body({"event": "call_ended", "call": ended}),
            RetellCallAnalyzed.from_body(
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


async def ringlog_warehouse(settings: Settings, n: int) -> RunTimes:
    """The N events from the log into a fresh database through the runner."""
    database = f"RL_{uuid.uuid4().hex[:8].upper()}"
    target_settings = settings.model_copy(
        update={"warehouse": settings.warehouse.model_copy(update={"database": database})}
    )
    store = warehouse_store(target_settings)
    store.ensure_tables()
    run = await timed_run(warehouse_runner, target_settings, store, group="bench-wh")
    counts = store.snapshot()
    store.close()
    rows = sum(len(v) for k, v in counts.items() if k != schema.CHECKPOINTS.name)
    return replace(run, rows=rows)


async def append(settings: Settings, envelopes: Sequence[Envelope]) -> None:
    await ensure_topics(settings.kafka, TOPICS)
    async with LogProducer(settings.kafka) as producer:
        for i in range(0, len(envelopes), 10_000):
            await producer.append_many(envelopes[i : i + 10_000])


def main(argv: list[str] | None = None) -> None:
    """Parse N, run both comparisons ``--rounds`` times (alternating), print medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--pg", default=PG_URL, help="SQLAlchemy URL of the PostgreSQL for CRM")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each path (medians)")
    args = parser.parse_args(argv)
    envelopes = mixed_events(args.n)
    # The bench holds every event in memory for the raw paths; keep those objects out of the
    # collector's full passes so the runner is not charged for scanning the bench's own heap,
    # and collect as `ringlog projector` does (ringlog.heap)
    heap.settle(folds=True)
    crm_runs: list[RunTimes] = []
    crm_raws: list[float] = []
    wh_runs: list[RunTimes] = []
    wh_raws: list[float] = []
    with bench_settings() as base:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})}
        )
        asyncio.run(append(settings, envelopes))
        try:
            # the CRM first: the fakesnow server keeps a core busy for a while after big loads
            for _ in range(args.rounds):
                crm_count, raw_crm_s = raw_crm(envelopes, args.pg)
                crm_raws.append(crm_count / raw_crm_s)
                crm_runs.append(asyncio.run(ringlog_crm(settings, args.pg)))
            rows = warehouse_rows(settings, envelopes)
            total_rows = sum(len(v) for v in rows.values())
            for _ in range(args.rounds):
                wh_runs.append(asyncio.run(ringlog_warehouse(settings, args.n)))
                json_rows, json_s = raw_json_insert(settings, rows)
                wh_raws.append(json_rows / json_s)
            many_rows, many_s = raw_executemany(settings, rows)  # slow: once, on a sample
        finally:
            asyncio.run(delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS]))
    assert all(run.rows == total_rows for run in wh_runs), (wh_runs, total_rows)
    many, bulk = many_rows / many_s, statistics.median(wh_raws)
    best = max(many, bulk)
    print(f"warehouse projection (fakesnow), N={args.n} events → {total_rows} rows")
    print(f"medians of {args.rounds} alternating rounds")
    print(f"{'path':<52}{'rows/s':>12}{'seconds':>10}")
    print(f"{'raw connector executemany (sample, one round)':<52}{many:>12,.0f}{many_s:>10.2f}")
    label = "raw connector one JSON-bound INSERT per table"
    print(f"{label:<52}{bulk:>12,.0f}{total_rows / bulk:>10.2f}")
    report(medians(wh_runs), total_rows, best, "best raw")
    rounds_line(total_rows, wh_runs, [max(many, raw) for raw in wh_raws])
    crm_raw = statistics.median(crm_raws)
    print(f"\nCRM projection (PostgreSQL), {crm_count} upserts from sessions + dialog")
    print(f"{'raw psycopg executemany (upserts)':<52}{crm_raw:>12,.0f}{crm_count / crm_raw:>10.2f}")
    report(medians(crm_runs), crm_count, crm_raw, "raw")
    rounds_line(crm_count, crm_runs, crm_raws)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
