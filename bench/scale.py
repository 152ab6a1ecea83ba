"""Scale: reads, worker restart and fold rate against a small and a large ``calls`` log.

Per size N (``--sizes``, default 10,000 and 1,000,000), on a fresh topic prefix and a fresh
worker store (a schema of its own in the local PostgreSQL, else a SQLite file):

1. **history** — N events on ``calls`` appended through the log client
   (``LogProducer.append_many``, 20,000 a batch): ended calls (``call.requested`` →
   ``call.dispatched`` → Retell ``call_ended``, not connected) and one live call in 200
   (requested → dispatched → ``call_started``). Each call's ABT events (what the worker would
   have emitted) are on ``abt`` too, so the history owes nothing and the worker places nothing;
   they are not counted in N.
2. **catch-up** — ``ringlog api`` and ``ringlog worker``, each in a process of its own as
   deployed (the bench's HTTP client never shares a GIL with the server it times), start;
   the bench waits until the worker store's checkpoint covers the ends of ``calls``,
   ``abt`` and ``tasks`` (the real fold, store writes included; printed, not a target).
   Where the PostgreSQL runs with ``autovacuum = off`` (the local test server does), the
   bench ANALYZEs the store's tables every ``autovacuum_naptime`` and once after the
   catch-up, as autovacuum would (``--no-autoanalyze``: not).
3. per round (``--rounds``, medians shown):

   * ``GET /v1/calls/{ref}`` and ``GET /v1/calls/{ref}/events`` one at a time over
     ``--reads`` random refs (after a short warm-up): p50 and p99. Target: p99 < 20 ms and
     within 2x of the smallest size's. When ``/events`` answers from a view kept by a process
     this bench does not start (``ringlog projector``: the answer is behind or missing), the
     column says n/a; ``--timeline`` starts ``ringlog projector --only timeline`` for it;
   * the worker restarted (SIGTERM, then started again): its own start → "worker ready"
     seconds (as it logs them; the wall time from spawn, interpreter start included, is
     printed per round) and its RSS once ready (psutil). Target: ready < 5 s;
   * the fold rate of the runtime: a ``ProjectionRunner`` (the worker's runtime class, with
     the worker's ``max_records``) over ``calls`` in a fresh group with a no-op target,
     records/s from its group join to its last apply (fetch, decode, project, checkpoint
     hand-off, commit), against a raw aiokafka consumer (no group, no decoding) reading the
     same partitions to the same ends, the two alternating first. Target: ratio ≥ 0.5.

Usage: ``python -m bench.scale [--sizes 10000,1000000] [--rounds 3] [--reads 300]``
(or ``python -m bench scale``). ``--fold-only``: append, then only the fold rates per round
(no worker, no API, no reads).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench.broker import bench_settings
from bench.outbound import percentile
from bench.timing import Timed
from ringlog import heap, logs
from ringlog.config import ApiSettings, RetellSettings, Settings
from ringlog.devstack.parts import sql_answers
from ringlog.devstack.ports import free_port
from ringlog.projections.base import Event, Projection
from ringlog.projections.runner import ProjectionRunner
from ringlog.schemas import (
    AbtEvent,
    CallDispatched,
    CallRequested,
    Envelope,
    EventModel,
    RetellCallEnded,
    RetellCallStarted,
    abt_id_for,
)
from ringlog.schemas.abt import AbtName
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.offsets import Position, end_offsets
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import TOPICS
from ringlog.worker.schema import PROCESSOR
from ringlog.worker.views import WorkerViews
from tests.support.servers import WorkerProcess

API_KEY = "bench-api-key"
RETELL_KEY = "bench-retell-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PG_URL = os.environ.get(
    "RINGLOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: one call in this many is still live (dispatched and connected, not ended)
LIVE_EVERY = 200
#: envelopes per ``append_many``
APPEND_BATCH = 20_000
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
CLINIC = "+14155559876"
#: requests per endpoint before timing (connections, pools, first queries)
WARM_UP = 10

#: wide enough for the table when the output goes to a file
console = Console(width=None if sys.stdout.isatty() else 170)
_started = time.perf_counter()


def say(text: str) -> None:
    """A progress line with the seconds since the bench started."""
    console.print(f"[dim]{time.perf_counter() - _started:8.1f}s[/dim] {text}", highlight=False)


# -- the history ----------------------------------------------------------------------------


def _call(i: int, ref: str, phone: str, event: str) -> dict[str, Any]:
    start = int((T0 + dt.timedelta(seconds=i)).timestamp() * 1000)
    call: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": f"retell-{i}",
        "agent_id": "agent-bench",
        "metadata": {"call_ref": ref} if ref else {},
        "from_number": CLINIC,
        "to_number": phone,
        "direction": "outbound",
        "start_timestamp": start,
        "call_status": "ongoing" if event == "call_started" else "not_connected",
    }
    if event == "call_ended":
        call |= {"end_timestamp": start + 30_000, "disconnection_reason": "dial_no_answer"}
    return call


def _abt(ref: str, name: AbtName) -> Envelope:
    abt = AbtEvent(abt_id=abt_id_for(ref, name), name=name, call_ref=ref, retell_call_id=None)
    return Envelope.new(abt, source="bench", correlation_id=ref, event_id=abt.abt_id, key=ref)


def unit(i: int) -> tuple[str, list[Envelope], list[Envelope]]:
    """Call ``i``: its ref, its events on ``calls`` and its ABT events (as already emitted)."""
    ref, phone = f"call-{i:07d}-{uuid.uuid4().hex[:6]}", f"+1415{i % 10_000_000:07d}"
    at = T0 + dt.timedelta(seconds=i)
    live = i % LIVE_EVERY == LIVE_EVERY - 1
    last = "call_started" if live else "call_ended"
    webhook = RetellCallStarted if live else RetellCallEnded
    payloads: list[EventModel] = [
        CallRequested(call_ref=ref, to_number=phone, from_number=CLINIC, agent_id="agent-bench"),
        CallDispatched(call_ref=ref, retell_call_id=f"retell-{i}", agent_id="agent-bench"),
        webhook.model_validate({"event": last, "call": _call(i, ref, phone, last)}),
    ]
    calls = [Envelope.new(p, source="bench", occurred_at=at) for p in payloads]
    names: tuple[AbtName, ...] = ("voice_call_initiated",)
    if live:
        names += ("call_started",)
    return ref, calls, [_abt(ref, name) for name in names]


def foreign(i: int, events: int) -> list[Envelope]:
    """``events`` (1 or 2) webhooks of an inbound call ringlog did not place (owes nothing):
    the remainder that makes the count on ``calls`` exactly N."""
    names = ("call_started", "call_ended")[-events:]
    models = {"call_started": RetellCallStarted, "call_ended": RetellCallEnded}
    return [
        Envelope.new(
            models[name].model_validate(
                {"event": name, "call": _call(i, "", "+14155550000", name)}
            ),
            source="bench",
        )
        for name in names
    ]


def batched(groups: Iterable[list[Envelope]]) -> Iterator[list[Envelope]]:
    """``groups`` of envelopes joined into appends of about :data:`APPEND_BATCH`."""
    batch: list[Envelope] = []
    for group in groups:
        batch += group
        if len(batch) >= APPEND_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def history(n: int, refs: list[str]) -> Iterator[list[Envelope]]:
    """Batches of envelopes holding exactly ``n`` on ``calls`` (ABT beside); refs collected."""

    def groups() -> Iterator[list[Envelope]]:
        on_calls, i = 0, 0
        while on_calls < n:
            if n - on_calls < 3:
                yield foreign(i, n - on_calls)
                on_calls = n
            else:
                ref, calls, abt = unit(i)
                refs.append(ref)
                yield calls + abt
                on_calls += len(calls)
            i += 1

    return batched(groups())


async def append_history(settings: Settings, n: int) -> tuple[list[str], float]:
    """Append the history; return the call refs and the seconds spent (building included)."""
    refs: list[str] = []
    started = time.perf_counter()
    async with LogProducer(settings.kafka) as log:
        for batch in history(n, refs):
            await log.append_many(batch)
    return refs, time.perf_counter() - started


# -- the worker -----------------------------------------------------------------------------


def ready_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's "worker ready" log lines, parsed."""
    found = []
    for line in worker.output().splitlines():
        if '"worker ready"' in line:
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def alive(worker: WorkerProcess) -> bool:
    """Whether the worker process runs (a child that exited is a zombie until reaped)."""
    if worker.pid is None:
        return False
    try:
        return psutil.Process(worker.pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_ready(worker: WorkerProcess, before: int, timeout_s: float = 300.0) -> float:
    """Wait for a new "worker ready" line; return the seconds the worker logged with it."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = ready_lines(worker)
        if len(lines) > before:
            return float(lines[-1]["seconds"])
        if not alive(worker):
            raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not ready in {timeout_s} s:\n{worker.output()[-3000:]}")
        await asyncio.sleep(0.02)


async def restart(worker: WorkerProcess) -> tuple[float, float, float]:
    """SIGTERM the worker, start it again; return its logged ready seconds, the wall seconds
    from spawn to the ready line, and its RSS (MB) once ready."""
    worker.stop()
    before = len(ready_lines(worker))
    spawned = time.perf_counter()
    worker.start()
    logged = await wait_ready(worker, before)
    wall = time.perf_counter() - spawned
    assert worker.pid is not None
    rss = psutil.Process(worker.pid).memory_info().rss / 2**20
    return logged, wall, rss


async def folded(settings: Settings, worker: WorkerProcess, timeout_s: float = 7200.0) -> int:
    """Wait until the worker store's checkpoint covers the ends of its topics; return the
    number of records it folded (the ends' sum)."""
    topics = [settings.topic(t) for t in ("calls", "abt", "tasks")]
    ends = await end_offsets(settings.kafka, topics)
    views = WorkerViews.open(
        settings.crm.url, calls_topic=topics[0], abt_topic=topics[1], tasks_topic=topics[2]
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            done = await views.load_checkpoint(PROCESSOR)
            if all(done.get(tp, 0) >= end for tp, end in ends.items()):
                return sum(ends.values())
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker behind after {timeout_s} s: {done} < {ends}")
            if not alive(worker):
                raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
            await asyncio.sleep(0.5)
    finally:
        views.close()


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "RINGLOG_WORKER_APP_ID": f"bench-scale-{uuid.uuid4().hex[:8]}",
        "RINGLOG_RETELL_API_KEY": RETELL_KEY,
        # nothing in the history is due: a dispatch attempt would fail here, loudly
        "RINGLOG_RETELL_BASE_URL": "http://127.0.0.1:9",
        "RINGLOG_CRM_URL": settings.crm.url,
    }


class ProjectorProcess(WorkerProcess):
    """``ringlog projector --only timeline`` (the view ``/events`` may read), for --timeline."""

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ringlog", "projector", "--only", "timeline"],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()


class ApiProcess(WorkerProcess):
    """``ringlog api`` in a process of its own, as deployed: the bench's client (this process)
    never shares a GIL with the server it measures."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(env | {"RINGLOG_API_KEYS": API_KEY}, log_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ringlog", "api", "--port", str(self.port)],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def ready(self, timeout_s: float = 60.0) -> None:
        """Wait until it answers ``/healthz``; raise if it exits first."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while True:
                if not alive(self):
                    raise RuntimeError(f"ringlog api exited:\n{self.output()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code < 500:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ringlog api not up after {timeout_s} s")
                await asyncio.sleep(0.2)


# -- reads ----------------------------------------------------------------------------------


@dataclass
class Reads:
    """One endpoint's latencies in one round (ms), or why it was not measured."""

    ms: list[float] = field(default_factory=list)
    na: str | None = None
    budget_hit: bool = False


async def probe_events(client: httpx.AsyncClient, ref: str) -> str | None:
    """None when ``/events`` answers the call's events up to date; else why not (n/a)."""
    answer = await client.get(f"/v1/calls/{ref}/events")
    if answer.status_code == 200 and answer.headers.get("X-Ringlog-Behind") != "true":
        return None
    behind = answer.headers.get("X-Ringlog-Behind") == "true"
    why = f"HTTP {answer.status_code}" + (", view behind" if behind else "")
    return f"{why}: needs a process this bench does not start (ringlog projector?)"


async def timed_reads(
    client: httpx.AsyncClient, paths: Sequence[str], budget_s: float
) -> tuple[list[float], bool]:
    """GET the first ``WARM_UP`` paths untimed, then each of the others in turn; return their
    latencies (ms) and whether the time budget cut them short."""
    for path in paths[:WARM_UP]:
        (await client.get(path)).raise_for_status()
    ms: list[float] = []
    deadline = time.monotonic() + budget_s
    for path in paths[WARM_UP:]:
        if time.monotonic() > deadline:
            return ms, True
        started = time.perf_counter()
        answer = await client.get(path)
        ms.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200 or answer.headers.get("X-Ringlog-Behind") == "true":
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.headers} {answer.text}")
    return ms, False


# -- fold rate ------------------------------------------------------------------------------


class NoOpTarget:
    """A target that keeps nothing: the runner's own cost only."""

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        return {}

    async def apply(
        self, projection: str, operations: Sequence[Event], positions: Mapping[Position, int]
    ) -> None:
        return None

    def hold(self, projection: str) -> None:
        return None


async def runtime_rate(settings: Settings, topic: str) -> tuple[int, float, float]:
    """A runner in a fresh group over ``topic``; records, start-up s, join → last apply s."""
    timed = Timed(NoOpTarget())
    runner: ProjectionRunner[Event] = ProjectionRunner(
        settings.kafka,
        Projection(name="bench-scale-noop", topics=(topic,), project=list),
        timed,
        group_id=f"bench-scale-noop-{uuid.uuid4().hex[:6]}",
        deadletter_topic=settings.topic("deadletter"),
        max_records=settings.worker.max_records,
    )
    records = sum((await end_offsets(settings.kafka, [topic])).values())
    startup, work = await timed.run(runner, settings.kafka)
    return records, startup, work


async def raw_rate(settings: Settings, topic: str) -> tuple[int, float]:
    """A bare aiokafka consumer (no group, values untouched) over every partition of
    ``topic`` from the beginning to the ends read first; records and seconds."""
    kafka = settings.kafka
    ends = await end_offsets(kafka, [topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, p in sorted(ends)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if ends[(tp.topic, tp.partition)] > 0}
        seen = 0
        started = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.worker.max_records)
            for tp, messages in batch.items():
                seen += len(messages)
                if messages and messages[-1].offset + 1 >= ends[(tp.topic, tp.partition)]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return seen, time.perf_counter() - started
    finally:
        await consumer.stop()


# -- one size -------------------------------------------------------------------------------


@dataclass
class Round:
    """What one round measured."""

    call: Reads
    events: Reads
    ready_s: float
    ready_wall_s: float
    rss_mb: float
    runtime_per_s: float
    runtime_startup_s: float
    raw_per_s: float

    @property
    def ratio(self) -> float:
        return self.runtime_per_s / self.raw_per_s


@dataclass
class SizeResult:
    """One size: the history, the catch-up, the rounds."""

    size: int
    calls: int
    append_s: float
    catchup_records: int
    catchup_s: float
    catchup_rss_mb: float
    rounds: list[Round]
    wall_s: float
    crm: str
    #: ANALYZE runs standing in for autovacuum (-1: autovacuum on, or not PostgreSQL)
    analyzed: int


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


async def measure_round(
    settings: Settings,
    api_url: str,
    worker: WorkerProcess,
    refs: Sequence[str],
    args: argparse.Namespace,
    index: int,
) -> Round:
    """Reads, a restart and the fold rates, once."""
    sample = random.sample(list(refs), min(args.reads + WARM_UP, len(refs)))
    async with httpx.AsyncClient(base_url=api_url, headers=AUTH, timeout=60) as client:
        ms, cut = await timed_reads(client, [f"/v1/calls/{r}" for r in sample], args.read_budget_s)
        call = Reads(ms, budget_hit=cut)
        events = Reads(na=await probe_events(client, sample[0]))
        if events.na is None:
            paths = [f"/v1/calls/{r}/events" for r in sample]
            events.ms, events.budget_hit = await timed_reads(client, paths, args.read_budget_s)
    say(
        f"round {index + 1}: GET call p50/p99 {_p(call.ms, 0.5)}/{_p(call.ms, 0.99)} ms "
        f"(n={len(call.ms)}), /events "
        + (events.na or f"{_p(events.ms, 0.5)}/{_p(events.ms, 0.99)} ms (n={len(events.ms)})")
    )
    ready_s, wall_s, rss = await restart(worker)
    say(
        f"round {index + 1}: worker ready {ready_s:.2f} s "
        f"(spawn → line {wall_s:.2f} s), {rss:.0f} MB"
    )
    runtime, startup, raw = await fold_rates(settings, index)
    return Round(call, events, ready_s, wall_s, rss, runtime, startup, raw)


async def fold_rates(settings: Settings, index: int) -> tuple[float, float, float]:
    """The runtime's and the raw consumer's rates over ``calls`` (rec/s) and the runtime's
    start-up (s), once; the two alternate going first from round to round."""
    topic = settings.topic("calls")
    if index % 2 == 0:
        records, startup, work = await runtime_rate(settings, topic)
        raw_records, raw_s = await raw_rate(settings, topic)
    else:
        raw_records, raw_s = await raw_rate(settings, topic)
        records, startup, work = await runtime_rate(settings, topic)
    runtime, raw = records / work, raw_records / raw_s
    say(
        f"round {index + 1}: runtime {runtime:,.0f} rec/s "
        f"(start-up {startup:.2f} s), raw {raw:,.0f} rec/s, ratio {runtime / raw:.2f}"
    )
    return runtime, startup, raw


def run_size(base: Settings, size: int, args: argparse.Namespace) -> SizeResult | None:
    """Everything for one size on its own prefix and store; topics and store removed after.
    ``None`` with ``--fold-only`` (its rates are printed as measured)."""
    wall = time.perf_counter()
    prefix = f"benchscale{uuid.uuid4().hex[:6]}."
    with (
        tempfile.TemporaryDirectory(prefix="ringlog-bench-scale-") as tmp,
        worker_store(args.sqlite, Path(tmp)) as store,
    ):
        settings = base.model_copy(
            update={
                "kafka": base.kafka.model_copy(update={"topic_prefix": prefix}),
                "crm": base.crm.model_copy(update={"url": store.url}),
                "retell": RetellSettings(api_key=RETELL_KEY),
                "api": ApiSettings(keys=(API_KEY,)),
            }
        )
        try:
            return asyncio.run(_run_size(settings, size, args, Path(tmp), wall, store))
        finally:
            asyncio.run(delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS]))


async def _run_size(
    settings: Settings,
    size: int,
    args: argparse.Namespace,
    tmp: Path,
    wall: float,
    store: Store,
) -> SizeResult | None:
    await ensure_topics(settings.kafka, TOPICS)
    autoanalyze = Autoanalyze(store, enabled=not args.no_autoanalyze)
    say(
        f"N={size:,}: appending (prefix {settings.kafka.topic_prefix}, store {store.kind}"
        + (
            f"; autovacuum off: ANALYZE every {autoanalyze.every_s:.0f} s in its stead)"
            if autoanalyze.active
            else ")"
        )
    )
    refs, append_s = await append_history(settings, size)
    # the runtime below runs in this process: give it the collector policy ringlog's folding
    # processes set at start (``ringlog worker`` and ``projector`` call it), else the cyclic
    # collector walks the history built above on every young collection of the fold
    heap.settle(folds=True)
    calls = sum((await end_offsets(settings.kafka, [settings.topic("calls")])).values())
    assert calls == size, (calls, size)
    say(f"N={size:,}: appended in {append_s:.1f} s ({size / append_s:,.0f} events/s on calls)")
    if args.fold_only:
        rates = [await fold_rates(settings, i) for i in range(args.rounds)]
        runtime, raw = _median([r[0] for r in rates]), _median([r[2] for r in rates])
        ratios = " ".join(f"{r[0] / r[2]:.2f}" for r in rates)
        say(
            f"N={size:,} fold only: runtime {runtime:,.0f} / raw {raw:,.0f} rec/s (medians), "
            f"ratio {_median([r[0] / r[2] for r in rates]):.2f} ({ratios})"
        )
        return None
    env = worker_env(settings)
    worker = WorkerProcess(env, tmp / "worker.log")
    projector = ProjectorProcess(env, tmp / "projector.log") if args.timeline else None
    api = ApiProcess(env, tmp / "api.log")
    api_url = api.url
    analyzer = asyncio.create_task(autoanalyze.run())
    try:
        api.start()
        await api.ready()
        started = time.perf_counter()
        worker.start()
        if projector is not None:
            projector.start()
        records = await folded(settings, worker)
        catchup_s = time.perf_counter() - started
        await asyncio.to_thread(autoanalyze.analyze)  # as autovacuum would, soon after
        await wait_ready(worker, 0)
        assert worker.pid is not None
        catchup_rss = psutil.Process(worker.pid).memory_info().rss / 2**20
        say(
            f"N={size:,}: worker folded {records:,} records in {catchup_s:.1f} s "
            f"({records / catchup_s:,.0f} rec/s), RSS {catchup_rss:.0f} MB"
        )
        if projector is not None:
            await _timeline_ready(api_url, refs[-1])
        rounds = [
            await measure_round(settings, api_url, worker, refs, args, i)
            for i in range(args.rounds)
        ]
    finally:
        analyzer.cancel()
        api.stop()
        worker.stop()
        if projector is not None:
            projector.stop()
    return SizeResult(
        size,
        calls,
        append_s,
        records,
        catchup_s,
        catchup_rss,
        rounds,
        time.perf_counter() - wall,
        store.kind,
        autoanalyze.runs if autoanalyze.active else -1,
    )


async def _timeline_ready(api_url: str, ref: str, timeout_s: float = 7200.0) -> None:
    """With --timeline: wait until ``/events`` of the last call answers up to date."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=api_url, headers=AUTH, timeout=60) as client:
        while await probe_events(client, ref) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError("the timeline view did not catch up")
            await asyncio.sleep(1.0)


# -- the table ------------------------------------------------------------------------------


def _p(ms: Sequence[float], q: float) -> str:
    return f"{percentile(list(ms), q):.1f}" if ms else "-"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _reads_cell(reads: Sequence[Reads], small_p99: float | None) -> tuple[str, float | None]:
    if any(r.na for r in reads):
        return "n/a", None
    p50 = _median([percentile(r.ms, 0.5) for r in reads])
    p99 = _median([percentile(r.ms, 0.99) for r in reads])
    n = min(len(r.ms) for r in reads)
    cut = " (time budget)" if any(r.budget_hit for r in reads) else ""
    versus = f" ({p99 / small_p99:.1f}x small)" if small_p99 else ""
    return f"{p50:.1f} / {p99:.1f}{versus}\nn={n}{cut}", p99


def table(results: Sequence[SizeResult]) -> Table:
    """One row per size; medians over rounds; targets in the headers."""
    out = Table(
        title="bench/scale — medians of rounds (p50 / p99 ms; xsmall: p99 over the smallest size's)"
    )
    out.add_column("events on calls", justify="right")
    out.add_column("GET /v1/calls/{ref}\np99 < 20 ms, ≤ 2x small", justify="right")
    out.add_column("GET …/events\np99 < 20 ms, ≤ 2x small", justify="right")
    out.add_column("worker ready after restart\n< 5 s", justify="right")
    out.add_column("worker RSS\nafter ready", justify="right")
    out.add_column("fold rec/s\nruntime / raw aiokafka", justify="right")
    out.add_column("ratio\n≥ 0.5", justify="right")
    out.add_column("worker catch-up\n(real fold, store)", justify="right")
    small_call: float | None = None
    small_events: float | None = None
    for r in results:
        call_cell, call_p99 = _reads_cell([x.call for x in r.rounds], small_call)
        events_cell, events_p99 = _reads_cell([x.events for x in r.rounds], small_events)
        small_call = small_call or call_p99
        small_events = small_events or events_p99
        ready = _median([x.ready_s for x in r.rounds])
        ready_wall = _median([x.ready_wall_s for x in r.rounds])
        runtime = _median([x.runtime_per_s for x in r.rounds])
        raw = _median([x.raw_per_s for x in r.rounds])
        ratios = [x.ratio for x in r.rounds]
        out.add_row(
            f"{r.size:,}",
            call_cell,
            events_cell,
            f"{ready:.2f} s\n(spawn → line {ready_wall:.2f} s)",
            f"{_median([x.rss_mb for x in r.rounds]):.0f} MB",
            f"{runtime:,.0f} / {raw:,.0f}",
            f"{_median(ratios):.2f}\n({' '.join(f'{x:.2f}' for x in ratios)})",
            f"{r.catchup_records / r.catchup_s:,.0f} rec/s\n"
            f"{r.catchup_s:.0f} s, {r.catchup_rss_mb:.0f} MB",
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse the sizes and rounds, run each size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="events on calls, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (medians)")
    parser.add_argument("--reads", type=int, default=300, help="GETs per endpoint and round")
    parser.add_argument(
        "--read-budget-s",
        type=float,
        default=120.0,
        help="stop an endpoint's reads of a round after this many seconds (slow paths)",
    )
    parser.add_argument("--sqlite", action="store_true", help="a SQLite worker store, not PG")
    parser.add_argument(
        "--no-autoanalyze",
        action="store_true",
        help="do not ANALYZE the PostgreSQL store in autovacuum's stead when it is off",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="also run `ringlog projector --only timeline` (the view /events may read)",
    )
    parser.add_argument(
        "--fold-only",
        action="store_true",
        help="append, then only the fold rates (runtime and raw) per round: no worker, no reads",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    logs.configure(level=logging.WARNING)
    results: list[SizeResult] = []
    with bench_settings() as base:
        for size in sizes:
            result = run_size(base, size, args)
            if result is not None:
                results.append(result)
                say(f"N={size:,}: done in {result.wall_s:.0f} s")
                console.print(table(results))
    for r in results:
        console.print(
            f"N={r.size:,}: wall {r.wall_s:.0f} s (append {r.append_s:.0f} s, "
            f"catch-up {r.catchup_s:.0f} s), worker store {r.crm}"
            + (f" (ANALYZE in autovacuum's stead: {r.analyzed}x)" if r.analyzed >= 0 else "")
            + f", {r.catchup_records - r.calls:,} records on abt beside"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
