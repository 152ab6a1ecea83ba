"""Replay: the bulk engine folding a large log into SQL, against a raw aiokafka consumer.

On a fresh topic prefix and a fresh CRM database (a schema of its own in the local
PostgreSQL, dropped afterwards; ``--sqlite`` for a SQLite file):

1. **history** — ``--n`` events (default 1,000,000) on ``sessions`` and ``--n`` on ``calls``,
   appended through the log client (``LogProducer.append_many``, 20,000 a batch; the seconds
   are shown). ``sessions``: one session per number (``session.started``, three
   ``session.progressed``, then ``session.completed``, or ``session.dropped`` for one in
   ten), keyed by phone. ``calls``: the history of ``bench.scale`` (``bench.history``:
   requested → dispatched → Retell ``call_ended``, one live call in 200; each call's ABT
   events beside on ``abt``, N/3 more records that the call-lifecycle projection reads too).
2. per round (``--rounds``, default 3; medians shown) and projection (``sessions``: the
   sessions view; ``call-lifecycle``: the worker's call state), in this order, reversed
   in odd rounds (the projections too):

   * **fold** — the projection opened on a fresh shadow of the database exactly as
     ``ringlog rebuild`` opens it (``REBUILDABLE[name].versions(settings).open``: the live
     fold and target, a consumer group of its own, bulk fetches), driven to the log's head by
     :class:`~ringlog.projections.bulk.Bulk` (``reach``), then the shadow dropped. The rate
     is records / seconds from the group join (the target's checkpoint read on assignment)
     to the last write (fetch, decode, fold, SQL writes, checkpoint, offset commits); the
     rate of the whole ``reach`` (join included) is shown beside. Peak RSS is the process's
     high-water mark during the fold (``VmHWM``, reset before it), next to its RSS before.
     Where PostgreSQL runs with ``autovacuum = off`` (the local test server), the shadow's
     tables are ANALYZEd every ``autovacuum_naptime`` as autovacuum would (see
     ``bench/README.md``, bench/scale); the stores opened on a shadow also ANALYZE their
     tables themselves as they grow (:class:`~ringlog.projections.sql.GrowthAnalyze`);
   * **engine only** — the same, with a target that keeps nothing (``bench.fold``'s
     ``NoOpTarget``): the bulk engine's own cost (fetch, decode, project, checkpoint, commit);
   * **raw** — a bare aiokafka consumer (no group, assign + seek to the beginning,
     ``getmany`` of 20,000 until the ends read first, values untouched) over the same
     topics, one after the other.

   * **as rebuild runs** — when ``ringlog rebuild`` would fold this log in more than one
     process (:func:`~ringlog.projections.slices.workers_for`: one per core for 500,000
     records or more; ``--workers N`` to choose), the fold as it does it: ``N`` processes,
     one slice each, into one fresh shadow, then the runner for what is left; seconds from
     the processes' start (start-up included) to the runner's arrival.

   Target: fold / raw ≥ 0.5, for the fold as ``ringlog rebuild`` runs it by default (the
   one-process fold and the engine only / raw shown beside).

The bench process settles its collector first (:func:`ringlog.heap.settle`, as ringlog's
long-running processes do at start). Usage:
``python -m bench.replay [--n 1000000] [--rounds 3] [--only sessions] [--sqlite] [--workers N]``
(or ``python -m bench replay``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.table import Table

from bench.broker import bench_settings
from bench.fold import NoOpTarget, raw_rate
from bench.history import batched, history
from bench.progress import console, say
from bench.store import Autoanalyze, Store, worker_store
from bench.timing import Timed
from ringlog import heap, logs
from ringlog.config import Settings
from ringlog.projections.bulk import BULK_MAX_RECORDS, Bulk
from ringlog.projections.rebuildable import REBUILDABLE
from ringlog.projections.slices import fold_in_slices, workers_for
from ringlog.schemas import (
    Envelope,
    SessionCompleted,
    SessionDropped,
    SessionProgressed,
    SessionStarted,
)
from ringlog.schemas.base import EventModel
from ringlog.schemas.sessions import Appointment, Patient
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.offsets import end_offsets
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import TOPICS

#: the projections folded, as ``ringlog rebuild`` names them
PROJECTIONS = ("sessions", "call-lifecycle")
#: one session in this many is dropped (the caller hung up), the others complete
DROPPED_EVERY = 10
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


# -- the history ----------------------------------------------------------------------------


def session(i: int) -> list[Envelope]:
    """Session ``i`` of its own number: started, three turns, then completed (or dropped)."""
    phone = f"+1650{i % 10_000_000:07d}"
    ids = {"session_id": f"s-{i:08d}", "phone": phone, "call_ref": f"in-{i:08d}"}
    slots = [
        {"date": "2026-11-20"},
        {"time": "10:30"},
        {"name": "Ada Lovelace", "date_of_birth": "1985-12-10"},
    ]
    payloads: list[EventModel] = [SessionStarted(**ids, stage="identity")]
    payloads += [SessionProgressed(**ids, stage=f"step-{k}", slots=s) for k, s in enumerate(slots)]
    if i % DROPPED_EVERY == DROPPED_EVERY - 1:
        expires = T0 + dt.timedelta(days=1, seconds=i)
        payloads.append(SessionDropped(**ids, stage="name", reason="hangup", expires_at=expires))
    else:
        payloads.append(
            SessionCompleted(
                **ids,
                call_refs=(ids["call_ref"],),
                appointment=Appointment(date=dt.date(2026, 11, 20), time="10:30", site="main"),
                patient=Patient(name="Ada Lovelace", date_of_birth=dt.date(1985, 12, 10)),
            )
        )
    at = T0 + dt.timedelta(seconds=i)
    return [Envelope.new(p, source="bench", occurred_at=at) for p in payloads]


def sessions_history(n: int) -> Iterator[list[Envelope]]:
    """Batches of exactly ``n`` session events (the last session cut short if need be)."""

    def groups() -> Iterator[list[Envelope]]:
        written, i = 0, 0
        while written < n:
            events = session(i)[: n - written]
            yield events
            written += len(events)
            i += 1

    return batched(groups())


async def append(settings: Settings, n: int, only: Sequence[str]) -> dict[str, float]:
    """Append the histories the projections in ``only`` read; seconds per topic (building
    the envelopes included)."""
    seconds: dict[str, float] = {}
    async with LogProducer(settings.kafka) as log:
        if "sessions" in only:
            started = time.perf_counter()
            for batch in sessions_history(n):
                await log.append_many(batch)
            seconds["sessions"] = time.perf_counter() - started
        if "call-lifecycle" in only:
            started = time.perf_counter()
            for batch in history(n, []):
                await log.append_many(batch)
            seconds["calls"] = time.perf_counter() - started
    return seconds


# -- one fold, one raw read -----------------------------------------------------------------


@dataclass
class Fold:
    """One bulk fold to the head: records, seconds of the ``reach`` (join included), of the
    work (join → last write) and inside the target's writes; RSS before and at peak (MB)."""

    records: int
    reach_s: float
    work_s: float
    write_s: float
    rss_mb: float
    peak_mb: float


def _reset_peak() -> bool:
    """Reset the process's RSS high-water mark (Linux); whether it could be."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_mb(reset: bool) -> float:
    """The RSS high-water mark (MB) since :func:`_reset_peak`, else the RSS now."""
    if reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(psutil.Process().memory_info().rss) / 2**20


async def fold(settings: Settings, name: str, *, engine_only: bool = False) -> Fold:
    """Open ``name`` on a fresh shadow as a rebuild does (``REBUILDABLE[name].versions``),
    fold it to the head with :class:`Bulk`, discard the shadow; what it measured.

    ``engine_only``: the same runner with a target that keeps nothing (``bench.fold``'s
    ``NoOpTarget``): fetch, decode, project, checkpoint and commit, no SQL."""
    spec = REBUILDABLE[name]
    versions = spec.versions(settings)
    runner = versions.open(f"-bench-replay-{uuid.uuid4().hex[:6]}")
    try:
        timed = Timed(NoOpTarget() if engine_only else runner.target)
        runner.target = timed
        url, shadow = settings.crm.url, getattr(versions, "shadow", None)
        analyzed = None if engine_only or url.startswith("sqlite") else shadow
        autoanalyze = Autoanalyze(Store(url, analyzed))
        head = await end_offsets(settings.kafka, spec.topics(settings))
        rss = psutil.Process().memory_info().rss / 2**20
        reset = _reset_peak()
        analyzer = asyncio.create_task(autoanalyze.run())
        try:
            async with Bulk(runner) as bulk:
                folded = await bulk.reach(head, timeout_s=7_200.0)
        finally:
            analyzer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await analyzer
        peak = _peak_mb(reset)
    finally:
        versions.close()
    joined = timed.checkpoint_reads[2]  # on assignment (before it: Bulk's, the runner's start)
    return Fold(folded.records, folded.seconds, timed.last_write - joined, timed.seconds, rss, peak)


async def fold_sliced(settings: Settings, name: str, workers: int) -> float:
    """Fold ``name`` to the head as ``ringlog rebuild --workers`` does (a fresh shadow,
    ``workers`` processes one slice each, then the runner here for what is left); the
    seconds from the processes' start to the runner's arrival (start-up included)."""
    spec = REBUILDABLE[name]
    versions = spec.versions(settings)
    group = f"-bench-replay-{uuid.uuid4().hex[:6]}"
    runner = versions.open(group)
    try:
        head = await end_offsets(settings.kafka, spec.topics(settings))
        began = time.perf_counter()
        await fold_in_slices(settings, name, group, head, workers=workers, timeout_s=7_200.0)
        async with Bulk(runner) as bulk:
            await bulk.reach(head, timeout_s=7_200.0)
        return time.perf_counter() - began
    finally:
        versions.close()


async def raw(settings: Settings, topics: Sequence[str]) -> tuple[int, float]:
    """``bench.fold.raw_rate`` over each of ``topics`` in turn (fetching 20,000 records a
    ``getmany``, as the bulk fold does); records and seconds, summed."""
    bulk = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"max_records": BULK_MAX_RECORDS})}
    )
    records, seconds = 0, 0.0
    for topic in topics:
        n, s = await raw_rate(bulk, topic)
        records, seconds = records + n, seconds + s
    return records, seconds


# -- the run --------------------------------------------------------------------------------


@dataclass
class Round:
    """One projection in one round: its fold, the engine alone (no-op target) and the raw
    read of the same topics."""

    fold: Fold
    engine: Fold
    raw_records: int
    raw_s: float
    #: seconds of the fold in ``workers`` processes (start-up included), if more than one
    sliced_s: float | None = None
    workers: int = 1

    @property
    def fold_rate(self) -> float:
        return self.fold.records / self.fold.work_s

    @property
    def raw_rate(self) -> float:
        return self.raw_records / self.raw_s

    @property
    def engine_rate(self) -> float:
        return self.engine.records / self.engine.work_s

    @property
    def ratio(self) -> float:
        return self.fold_rate / self.raw_rate

    @property
    def sliced_rate(self) -> float | None:
        return None if self.sliced_s is None else self.fold.records / self.sliced_s

    @property
    def engine_ratio(self) -> float:
        return self.engine_rate / self.raw_rate


async def measure(settings: Settings, name: str, index: int, workers: int | None) -> Round:
    """Fold ``name`` (in one process, then in ``workers`` if more than one; ``None``: as many
    as a rebuild would take), fold it with the engine alone and read its topics raw, in turn
    (in the reverse order in odd rounds)."""
    topics = REBUILDABLE[name].topics(settings)
    workers = workers or workers_for(await end_offsets(settings.kafka, topics))
    sliced_s: float | None = None
    if index % 2 == 0:
        folded = await fold(settings, name)
        if workers > 1:
            sliced_s = await fold_sliced(settings, name, workers)
        engine = await fold(settings, name, engine_only=True)
        records, seconds = await raw(settings, topics)
    else:
        records, seconds = await raw(settings, topics)
        engine = await fold(settings, name, engine_only=True)
        if workers > 1:
            sliced_s = await fold_sliced(settings, name, workers)
        folded = await fold(settings, name)
    result = Round(folded, engine, records, seconds, sliced_s, workers)
    if result.sliced_rate is not None:
        say(
            f"round {index + 1} {name}: {workers} processes folded {folded.records:,} in "
            f"{sliced_s:.1f} s ({result.sliced_rate:,.0f} rec/s), ratio "
            f"{result.sliced_rate / result.raw_rate:.2f}"
        )
    say(
        f"round {index + 1} {name}: fold {folded.records:,} in {folded.work_s:.1f} s "
        f"({result.fold_rate:,.0f} rec/s; reach {folded.reach_s:.1f} s, writes "
        f"{folded.write_s:.1f} s), engine only {result.engine_rate:,.0f} rec/s, raw "
        f"{records:,} in {seconds:.1f} s ({result.raw_rate:,.0f} rec/s), ratio "
        f"{result.ratio:.2f} (engine only {result.engine_ratio:.2f}), RSS "
        f"{folded.rss_mb:.0f} → peak {folded.peak_mb:.0f} MB"
    )
    return result


def table(
    n: int, append_s: dict[str, float], results: dict[str, list[Round]], *, chosen: bool
) -> Table:
    """One row per projection; medians over rounds, but memory from round 1 (a later fold
    reuses the heap an earlier one grew, so its high-water mark says little); the target in
    the header, on the fold as a rebuild runs it (in several processes, when measured;
    ``chosen``: their number was given, not a rebuild's default)."""
    workers = max(r.workers for rounds in results.values() for r in rounds)
    out = Table(title=f"bench/replay — {n:,} events per topic; medians of rounds")
    out.add_column("projection")
    out.add_column("records folded\n(appended in)", justify="right")
    out.add_column("fold rec/s\njoin → last write", justify="right")
    out.add_column("fold rec/s\nwhole reach", justify="right")
    out.add_column("engine only\nrec/s", justify="right")
    out.add_column("raw aiokafka\nrec/s", justify="right")
    out.add_column(
        "one process / raw\n(rounds)" if workers > 1 else "ratio ≥ 0.5\n(rounds)", justify="right"
    )
    out.add_column("engine only\n/ raw", justify="right")
    out.add_column("in target\nwrites", justify="right")
    out.add_column("RSS before →\npeak, round 1", justify="right")
    if workers > 1:
        said = "--workers" if chosen else "as rebuild runs"
        out.add_column(f"{said}:\n{workers} processes\nrec/s", justify="right")
        out.add_column(f"{workers} processes\n/ raw ≥ 0.5\n(rounds)", justify="right")
    for name, rounds in results.items():
        med = statistics.median
        topic = "sessions" if name == "sessions" else "calls"
        ratios = [r.ratio for r in rounds]
        first = rounds[0].fold
        sliced = [r.sliced_rate / r.raw_rate for r in rounds if r.sliced_rate is not None]
        beside = (
            [
                f"{med(r.sliced_rate for r in rounds if r.sliced_rate is not None):,.0f}",
                f"{med(sliced):.2f}\n({' '.join(f'{x:.2f}' for x in sliced)})",
            ]
            if sliced
            else []
        )
        out.add_row(
            name,
            f"{first.records:,}\n({topic}: {append_s[topic]:.0f} s)",
            f"{med(r.fold_rate for r in rounds):,.0f}",
            f"{med(r.fold.records / r.fold.reach_s for r in rounds):,.0f}",
            f"{med(r.engine_rate for r in rounds):,.0f}",
            f"{med(r.raw_rate for r in rounds):,.0f}",
            f"{med(ratios):.2f}\n({' '.join(f'{x:.2f}' for x in ratios)})",
            f"{med(r.engine_ratio for r in rounds):.2f}",
            f"{med(r.fold.write_s / r.fold.work_s for r in rounds):.0%}",
            f"{first.rss_mb:.0f} → {first.peak_mb:.0f} MB",
            *beside,
        )
    return out


async def _run(settings: Settings, args: argparse.Namespace, only: Sequence[str]) -> Any:
    await ensure_topics(settings.kafka, TOPICS)
    say(f"appending {args.n:,} events per topic (prefix {settings.kafka.topic_prefix})")
    append_s = await append(settings, args.n, only)
    for topic, seconds in append_s.items():
        say(f"{topic}: {args.n:,} appended in {seconds:.1f} s ({args.n / seconds:,.0f} rec/s)")
    heap.settle(folds=True)  # as ringlog's folding processes do at start
    results: dict[str, list[Round]] = {name: [] for name in only}
    for index in range(args.rounds):
        for name in only if index % 2 == 0 else reversed(only):
            results[name].append(await measure(settings, name, index, args.workers))
    return append_s, results


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the rounds on a private stack, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="events per topic")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians)")
    parser.add_argument(
        "--only", default=",".join(PROJECTIONS), help="projections, comma-separated"
    )
    parser.add_argument("--sqlite", action="store_true", help="a SQLite database, not PG")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes of the fold in slices (1: none; default: as ringlog rebuild decides)",
    )
    args = parser.parse_args(argv)
    only = [name for name in PROJECTIONS if name in args.only.split(",")]
    logs.configure(level=logging.WARNING)
    wall = time.perf_counter()
    with (
        bench_settings() as base,
        tempfile.TemporaryDirectory(prefix="ringlog-bench-replay-") as tmp,
        worker_store(args.sqlite, Path(tmp)) as store,
    ):
        prefix = f"benchreplay{uuid.uuid4().hex[:6]}."
        settings = base.model_copy(
            update={
                "kafka": base.kafka.model_copy(update={"topic_prefix": prefix}),
                "crm": base.crm.model_copy(update={"url": store.url}),
            }
        )
        try:
            append_s, results = asyncio.run(_run(settings, args, only))
        finally:
            asyncio.run(delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS]))
    console.print(table(args.n, append_s, results, chosen=args.workers is not None))
    console.print(f"wall {time.perf_counter() - wall:.0f} s, database {store.kind}")


if __name__ == "__main__":
    main(sys.argv[1:])
