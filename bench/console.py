"""Console: each page's latency with N calls in the views, against its SQL alone.

1. **Views.** N calls (``--calls``, default 100,000) are written straight into a fresh CRM
   database (a schema of its own in the local PostgreSQL, dropped afterwards; ``--sqlite``
   for a SQLite file) through the very targets the runtime writes with, checkpoints included:
   the worker's store (:class:`~ringlog.worker.store.WorkerStore`, its fold), the timeline
   view (:func:`~ringlog.views.store.timeline_rows` and its target) and the sessions view.
   Filling through the log (append, then the worker and the projector catching up) takes
   minutes more and measures the runtime, not the console. Per call, at its position on a
   6-partition topic as the producer's partitioner places it: on ``calls``
   ``call.requested``, ``call.dispatched``, Retell's ``call_started`` and ``call_ended``,
   ``call.recorded``; the three ABT events on ``abt``; two dialog turns on ``dialog``; on
   ``sessions`` the number's session started then completed (one in 30 dropped). The last
   :data:`LIVE` calls are in progress (no ``call_ended``). Where the local PostgreSQL runs
   with autovacuum off, the tables are ANALYZEd once, as autovacuum would.
2. **The API** (a uvicorn thread in this process, on the private embedded stack for the
   broker, Redis and the warehouse; its topics exist and are empty), signed in through the
   form.
3. **Rounds** (``--rounds``, medians shown): each page GET ``--requests`` times one at a
   time (random calls and sessions where the page names one), after a warm-up: p50 and p99;
   and, beside it, the same SQL the page runs, alone (the console's read functions on one
   connection, no HTTP, no template): p50 and p99. Pages: the live list (20 calls and the
   feed), a call's timeline, the sessions list, a session's dialog, the health page (as
   served: measured at most every 2 s; and measured at each request), and one poll of a
   live stream (the two checkpoints). Target: p99 < 100 ms.

Usage: ``python -m bench.console [--calls 100000] [--rounds 3] [--requests 200] [--sqlite]``
(or ``python -m bench console``); ``--explain`` prints the plans of the console's queries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy
from rich.console import Console
from rich.table import Table

from bench.broker import bench_settings
from bench.outbound import percentile
from bench.store import Autoanalyze, worker_store
from ringlog import logs
from ringlog.api.app import create_app
from ringlog.calls.dispatch import DispatchPolicy
from ringlog.cli.lag import crm_checkpoints
from ringlog.config import ApiSettings, CrmSettings, RetellSettings, Settings
from ringlog.console.health import HealthCache, gather
from ringlog.console.pages import FEED_SEED, FEED_SIZE
from ringlog.console.routes.app_state import Console as ConsoleState
from ringlog.console.routes.pages import SESSIONS_MAX
from ringlog.projections.base import Event
from ringlog.schemas import (
    AbtEvent,
    Appointment,
    CallDispatched,
    CallRecorded,
    CallRequested,
    DialogTurn,
    Envelope,
    EventModel,
    Patient,
    RetellCallEnded,
    RetellCallStarted,
    SessionCompleted,
    SessionDropped,
    SessionStarted,
    abt_id_for,
)
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.partitioner import partition_for
from ringlog.streams.topics import TOPICS
from ringlog.views.store import SESSIONS_VIEW, TIMELINE_VIEW, ViewStore, timeline_rows
from ringlog.worker.schema import PROCESSOR
from ringlog.worker.store import WorkerStore
from tests.support.servers import serving

API_KEY = "bench-console-key"
CLINIC = "+14155559876"
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
#: calls still in progress (the newest)
LIVE = 20
#: one session in this many is left dropped
DROPPED_EVERY = 30
#: calls per write batch
BATCH = 2_000
PARTITIONS = list(range(6))
WARM_UP = 10
TARGET_P99_MS = 100.0

console = Console(width=None if sys.stdout.isatty() else 150)
_started = time.perf_counter()


def say(text: str) -> None:
    """A progress line with the seconds since the bench started."""
    console.print(f"[dim]{time.perf_counter() - _started:8.1f}s[/dim] {text}", highlight=False)


# -- the views ----------------------------------------------------------------------------------


def _retell(event: str, i: int, ref: str, phone: str, at: dt.datetime) -> EventModel:
    start = int(at.timestamp() * 1000)
    call: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": f"retell{i:08d}",
        "agent_id": "agent-bench",
        "metadata": {"call_ref": ref},
        "from_number": CLINIC,
        "to_number": phone,
        "direction": "outbound",
        "start_timestamp": start,
        "call_status": "ongoing" if event == "call_started" else "ended",
    }
    model: type[RetellCallStarted | RetellCallEnded] = RetellCallStarted
    if event == "call_ended":
        call |= {
            "end_timestamp": start + 95_000,
            "duration_ms": 95_000,
            "disconnection_reason": "agent_hangup",
        }
        model = RetellCallEnded
    return model.from_body({"event": event, "call": call})


def _at(envelope: Envelope, at: dt.datetime) -> Envelope:
    return msgspec.structs.replace(envelope, recorded_at=at, occurred_at=at)


def call_events(i: int, live: bool) -> dict[str, list[Envelope]]:
    """Call ``i``'s events per topic (``calls``, ``abt``, ``dialog``, ``sessions``)."""
    ref, phone = f"call_{i:07d}{uuid.uuid4().hex[:8]}", f"+1415{i % 10_000_000:07d}"
    at = T0 + dt.timedelta(seconds=i * 0.5)
    step = dt.timedelta(milliseconds=200)
    calls: list[EventModel] = [
        CallRequested(call_ref=ref, to_number=phone, from_number=CLINIC, agent_id="agent-bench"),
        CallDispatched(call_ref=ref, retell_call_id=f"retell{i:08d}", agent_id="agent-bench"),
        _retell("call_started", i, ref, phone, at),
    ]
    names: list[str] = ["voice_call_initiated", "call_started"]
    if not live:
        calls += [
            _retell("call_ended", i, ref, phone, at),
            CallRecorded(call_ref=ref, retell_call_id=f"retell{i:08d}", store="call_records"),
        ]
        names.append("call_completed")
    session = f"ses_{i:08d}"
    turns = [
        DialogTurn(call_ref=ref, call_id=f"retell{i:08d}", session_id=session, turn_index=0,
                   role="agent", text="Hello! May I have your full name, please?", stage="name"),
        DialogTurn(call_ref=ref, call_id=f"retell{i:08d}", session_id=session, turn_index=1,
                   role="user", text="My name is Sam Rivera", stage="date_of_birth"),
    ]  # fmt: skip
    sessions: list[EventModel] = [
        SessionStarted(session_id=session, phone=phone, call_ref=ref, stage="name"),
    ]
    if i % DROPPED_EVERY == 0:
        sessions.append(
            SessionDropped(
                session_id=session,
                phone=phone,
                call_ref=ref,
                stage="date_of_birth",
                reason="user_hangup",
                expires_at=at + dt.timedelta(days=1),
            )
        )
    elif not live:
        sessions.append(
            SessionCompleted(
                session_id=session,
                phone=phone,
                call_ref=ref,
                call_refs=(ref,),
                appointment=Appointment(date=dt.date(2026, 12, 8), time="10:00", site="Main St"),
                patient=Patient(name="Sam Rivera", date_of_birth=dt.date(1980, 3, 3)),
            )
        )

    def wrap(models: Sequence[EventModel], key: str) -> list[Envelope]:
        return [
            _at(Envelope.new(m, source="bench", correlation_id=ref, key=key), at + n * step)
            for n, m in enumerate(models)
        ]

    abt = [
        _at(
            Envelope.new(
                AbtEvent(abt_id=abt_id_for(ref, name), name=name, call_ref=ref),  # type: ignore[arg-type]
                source="bench",
                correlation_id=ref,
                event_id=abt_id_for(ref, name),
                key=ref,
            ),
            at + (n + 2) * step,
        )
        for n, name in enumerate(names)
    ]
    return {
        "calls": wrap(calls, ref),
        "abt": abt,
        "dialog": wrap(turns, ref),
        "sessions": wrap(sessions, phone),
    }


class Positions:
    """Offsets as the log would give them: per topic, the key's partition, in order."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}

    def place(self, topic: str, envelopes: Sequence[Envelope]) -> list[Event]:
        placed = []
        for envelope in envelopes:
            partition = partition_for(envelope.key.encode(), PARTITIONS, PARTITIONS)
            offset = self.next.get((topic, partition), 0)
            self.next[(topic, partition)] = offset + 1
            placed.append(Event(topic, partition, offset, envelope))
        return placed

    def of(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        return {p: n for p, n in self.next.items() if p[0] in topics}


def batches(n: int) -> Iterator[list[dict[str, list[Envelope]]]]:
    """The calls in batches of :data:`BATCH`, the last :data:`LIVE` in progress."""
    batch = []
    for i in range(n):
        batch.append(call_events(i, live=i >= n - LIVE))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def fill(settings: Settings, n: int) -> tuple[list[str], list[str], float]:
    """Write ``n`` calls into the views (see the module); return call refs, the refs of the
    dropped sessions' calls, and the seconds spent."""
    started = time.perf_counter()
    topic = settings.topic
    worker = WorkerStore(
        settings.crm.url,
        calls_topic=topic("calls"),
        tasks_topic=topic("tasks"),
        abt_topic=topic("abt"),
        policy=DispatchPolicy(max_live_calls=20, cooldown=dt.timedelta(seconds=30)),
    )
    views = ViewStore.open(settings.crm.url)
    timeline, sessions = views.timeline_target(), views.sessions_target()
    positions = Positions()
    refs: list[str] = []
    dropped: list[str] = []
    done = 0
    try:
        for batch in batches(n):
            calls, abt, dialog, said = [], [], [], []
            for unit in batch:
                calls += positions.place(topic("calls"), unit["calls"])
                abt += positions.place(topic("abt"), unit["abt"])
                dialog += positions.place(topic("dialog"), unit["dialog"])
                said += positions.place(topic("sessions"), unit["sessions"])
                ref = unit["calls"][0].key
                refs.append(ref)
                if unit["sessions"][-1].type == "session.dropped":
                    dropped.append(ref)
            folded = [topic("calls"), topic("abt")]
            await worker.apply(PROCESSOR, calls + abt, positions.of(folded))
            shown = [topic("calls"), topic("dialog"), topic("abt")]
            await timeline.apply(
                TIMELINE_VIEW, timeline_rows(calls + dialog + abt), positions.of(shown)
            )
            await sessions.apply(SESSIONS_VIEW, said, positions.of([topic("sessions")]))
            done += len(batch)
            if done % 20_000 == 0 or done == n:
                say(f"views: {done:,} calls written")
    finally:
        worker.close()
        views.close()
    return refs, dropped, time.perf_counter() - started


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One page's figures: per round, p50 and p99 of the page and of its SQL alone (ms)."""

    name: str
    page: list[tuple[float, float]]
    sql: list[tuple[float, float]]


def _p(ms: list[float]) -> tuple[float, float]:
    return percentile(ms, 0.5), percentile(ms, 0.99)


async def timed(
    count: int, make: Callable[[int], Awaitable[Any]], check: Callable[[Any], None] | None = None
) -> tuple[float, float]:
    """Run ``make(i)`` ``WARM_UP`` times untimed, then ``count`` times one at a time; p50
    and p99 in ms."""
    for i in range(WARM_UP):
        await make(i)
    ms = []
    for i in range(count):
        started = time.perf_counter()
        answer = await make(i)
        ms.append((time.perf_counter() - started) * 1000)
        if check is not None:
            check(answer)
    return _p(ms)


def ok(answer: httpx.Response) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.request.url}: {answer.status_code} {answer.text[:300]}")


async def measure(
    client: httpx.AsyncClient,
    state: ConsoleState,
    settings: Settings,
    refs: Sequence[str],
    dropped: Sequence[str],
    count: int,
) -> list[tuple[str, tuple[float, float], tuple[float, float] | None]]:
    """One round: each page's p50/p99 and its SQL's, in ms."""
    reader = state.reader
    rng = random.Random(7)
    some = [rng.choice(refs) for _ in range(count + WARM_UP)]
    lost = [rng.choice(dropped) for _ in range(count + WARM_UP)]

    def board_sql() -> None:
        marks = reader._marks()
        reader._board_rows(20)
        reader._latest_between({}, marks.timeline, FEED_SEED, FEED_SIZE)

    def call_sql(ref: str) -> None:
        reader._marks()
        reader._session_of(ref)
        reader._call_rows(ref)

    def session_sql(ref: str) -> None:
        _state, session = reader._session_of(ref)
        assert session is not None
        reader._dialog_rows(list(session.call_refs))

    def health_sql() -> None:
        crm_checkpoints(settings)
        reader._answers()

    async def sync(work: Callable[[], object]) -> None:
        work()

    fresh = HealthCache(lambda: gather(settings, reader), ttl_s=0)
    out: list[tuple[str, tuple[float, float], tuple[float, float] | None]] = []
    pages: list[tuple[str, Callable[[int], Awaitable[Any]], Callable[[int], Awaitable[Any]]]] = [
        (
            "live calls (20 + feed)",
            lambda i: client.get("/console/calls"),
            lambda i: sync(board_sql),
        ),
        (
            "call timeline",
            lambda i: client.get(f"/console/calls/{some[i]}"),
            lambda i: sync(lambda: call_sql(some[i])),
        ),
        (
            f"sessions (≤{SESSIONS_MAX} open)",
            lambda i: client.get("/console/sessions"),
            lambda i: sync(lambda: reader._open_sessions(SESSIONS_MAX)),
        ),
        (
            "session dialog",
            lambda i: client.get(f"/console/sessions/{lost[i]}"),
            lambda i: sync(lambda: session_sql(lost[i])),
        ),
        (
            "health (as served, ≤2 s old)",
            lambda i: client.get("/console/health"),
            lambda i: sync(health_sql),
        ),
        ("stream poll (checkpoints)", lambda i: reader.marks(), lambda i: sync(reader._marks)),
    ]
    for name, page, sql in pages:
        check = ok if name != "stream poll (checkpoints)" else None
        out.append((name, await timed(count, page, check), await timed(count, sql)))
    few = max(10, count // 10)
    out.append(("health (measured each time)", await timed(few, lambda i: fresh.get()), None))
    return out


def explain(url: str, settings: Settings, ref: str) -> None:
    """Print the plan of each of the console's queries (PostgreSQL only)."""
    engine = sqlalchemy.create_engine(url)
    if engine.dialect.name != "postgresql":
        return
    calls, sessions = settings.topic("calls"), settings.topic("sessions")
    queries = {
        "latest calls (one partition)": (
            'SELECT call_ref, recorded_at, "offset" FROM view_timeline WHERE topic = :t '
            'AND partition = 0 ORDER BY "offset" DESC LIMIT 40',
            {"t": calls},
        ),
        "live calls": (
            "SELECT state FROM worker_calls WHERE topic = :t AND live IS true LIMIT 500",
            {"t": calls},
        ),
        "a call's rows": (
            "SELECT * FROM view_timeline WHERE call_ref = :r AND topic = :t",
            {"r": ref, "t": calls},
        ),
        "open sessions": (
            "SELECT state FROM view_sessions WHERE topic = :t AND open = true LIMIT 200",
            {"t": sessions},
        ),
    }
    with engine.connect() as connection:
        for name, (sql, params) in queries.items():
            plan = connection.execute(sqlalchemy.text(f"EXPLAIN {sql}"), params).scalars().all()
            console.print(f"[b]{name}[/b]: " + " | ".join(line.strip() for line in plan[:3]))
    engine.dispose()


def table(rows: list[Row], calls: int, store: str) -> Table:
    out = Table(
        title=f"console pages with {calls:,} calls in the views ({store}); ms, medians of rounds"
    )
    for column in ("page", "page p50", "page p99", "SQL alone p50", "SQL alone p99", "p99 < 100"):
        out.add_column(column, justify="left" if column == "page" else "right")
    for row in rows:
        p50 = statistics.median(p for p, _ in row.page)
        p99 = statistics.median(p for _, p in row.page)
        sql50 = f"{statistics.median(p for p, _ in row.sql):.1f}" if row.sql else "-"
        sql99 = f"{statistics.median(p for _, p in row.sql):.1f}" if row.sql else "-"
        out.add_row(
            row.name, f"{p50:.1f}", f"{p99:.1f}", sql50, sql99,
            "yes" if p99 < TARGET_P99_MS else "[red]no[/red]",
        )  # fmt: skip
    return out


async def run(base: Settings, args: argparse.Namespace, tmp: Path) -> None:
    with worker_store(args.sqlite, tmp) as store:
        kafka = base.kafka.model_copy(update={"topic_prefix": f"bc{uuid.uuid4().hex[:8]}."})
        settings = base.model_copy(
            update={
                "kafka": kafka,
                "crm": CrmSettings(url=store.url),
                "api": ApiSettings(keys=(API_KEY,)),
                "retell": RetellSettings(api_key="bench-retell-key"),
            }
        )
        refs, dropped, seconds = await fill(settings, args.calls)
        say(f"views filled in {seconds:.0f} s ({store.kind})")
        analyze = Autoanalyze(store)
        if analyze.active:
            analyze.analyze()
            say("ANALYZE in autovacuum's stead (it is off)")
        await ensure_topics(settings.kafka, TOPICS)
        try:
            app = create_app(settings)
            with serving(app) as url:
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    signed = await client.post("/console/sign-in", data={"key": API_KEY})
                    assert signed.status_code == 303, signed.text
                    ok(await client.get("/console/calls"))
                    state: ConsoleState = app.state.console
                    if args.explain:
                        explain(store.url, settings, refs[0])
                    results: dict[str, Row] = {}
                    for n in range(args.rounds):
                        figures = await measure(
                            client, state, settings, refs, dropped, args.requests
                        )
                        for name, page, sql in figures:
                            row = results.setdefault(name, Row(name, [], []))
                            row.page.append(page)
                            if sql is not None:
                                row.sql.append(sql)
                        say(f"round {n + 1} of {args.rounds} done")
            console.print(table(list(results.values()), args.calls, store.kind))
        finally:
            await delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS])


def main(argv: list[str] | None = None) -> None:
    """Parse the options, fill the views, time the pages, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls in the views")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians)")
    parser.add_argument("--requests", type=int, default=200, help="GETs per page and round")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite CRM database, not PG")
    parser.add_argument("--explain", action="store_true", help="print the queries' plans")
    args = parser.parse_args(argv)
    logs.configure(level=logging.WARNING)
    with bench_settings() as base, tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        asyncio.run(run(base, args, Path(tmp)))


if __name__ == "__main__":
    main(sys.argv[1:])
