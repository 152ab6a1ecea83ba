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
import logging
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.table import Table

from bench.broker import bench_settings
from bench.fold import fold_rates
from bench.history import append_history
from bench.outbound import percentile
from bench.processes import (
    API_KEY,
    RETELL_KEY,
    ApiProcess,
    ProjectorProcess,
    folded,
    restart,
    rss_mb,
    wait_ready,
    worker_env,
)
from bench.progress import console, say
from bench.reads import AUTH, WARM_UP, Reads, probe_events, timed_reads
from bench.store import Autoanalyze, Store, worker_store
from ringlog import heap, logs
from ringlog.config import ApiSettings, RetellSettings, Settings
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.offsets import end_offsets
from ringlog.streams.topics import TOPICS
from tests.support.servers import WorkerProcess

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
        catchup_rss = rss_mb(worker)
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
