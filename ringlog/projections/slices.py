"""A bulk fold spread over processes: one slice of the partitions each, into one shadow.

A rebuild, verify or replay spends nearly all its time folding the log into a fresh shadow
up to a first position. With ``workers`` above one, :func:`fold_in_slices` does that part
in ``workers`` processes (the caller's and others started for it, ``spawn``): process *i*
runs the projection's own runner (:meth:`~.rebuildable.Versions.join`) on the partitions
whose number is *i* modulo ``workers`` (:class:`~ringlog.streams.consumer.Slice`:
co-partitioned topics go together, so each key's records are folded by one process, as the
live members of a group fold them) and writes its rows and its partitions' checkpoints into
the shared shadow. Folding is Python-bound and a Python process folds on one core, so this
is how a rebuild uses more.

The caller's own runner starts afterwards: it resumes from the checkpoints the processes
wrote and does the rest (catching up, the swap) as it would alone. A process that fails
fails the whole fold (the others are stopped); the caller discards the shadow, as for any
interrupted rebuild.

Scans: each process reads its slice of the log once; progress is the processes' counts,
kept in shared memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from rich.console import Console

from ringlog.config import Settings
from ringlog.errors import RinglogError
from ringlog.projections.bulk import Bulk, Folded, progress_bar
from ringlog.projections.retrying import describe
from ringlog.streams.consumer import Slice
from ringlog.streams.offsets import Position

#: Seconds between two looks at the processes.
POLL_S = 0.2
#: Seconds past ``timeout_s`` a slice's process has to say it timed out.
GRACE_S = 30.0
#: Without ``--workers``, a fold of fewer records than this runs in one process: starting
#: another (a spawn, its imports, its connections: 1-1.5 s) costs more than it saves below
#: ~300,000 (bench/replay: 150,000-200,000 records took 3.5-6.5 s in two processes, 3.1-6.2
#: in one; 1,000,000 took 12-20 s in two, 15-29 in one).
AUTO_MIN_RECORDS = 500_000


def workers_for(target: Mapping[Position, int]) -> int:
    """How many processes fold up to ``target`` when the operator did not say: one per core
    this process may run on, at most one per partition number of ``target``, once its offsets
    add up to :data:`AUTO_MIN_RECORDS` or more (the records, for a log kept from offset 0);
    else one."""
    if sum(target.values()) < AUTO_MIN_RECORDS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, len({partition for _, partition in target})))


class SliceFailed(RinglogError):
    """A process folding one slice failed; the fold is abandoned."""


async def fold_in_slices(
    settings: Settings,
    name: str,
    group: str,
    target: Mapping[Position, int],
    *,
    workers: int,
    exact: bool = False,
    console: Console | None = None,
    label: str | None = None,
    timeout_s: float = 3_600.0,
) -> Folded:
    """Fold projection ``name`` into its shadow (opened by the caller) up to ``target`` with
    ``workers`` processes, one :class:`Slice` each, consumer group suffix ``group``; what
    they folded together. ``exact`` as for :meth:`~.bulk.Bulk.reach`. Raises
    :class:`SliceFailed` when a process fails, ``TimeoutError`` after ``timeout_s``; the
    other processes are stopped either way."""
    context = multiprocessing.get_context("spawn")
    counts = [context.Value("q", 0, lock=False) for _ in range(workers)]
    jobs = [
        _Job(settings, name, group, Slice(i, workers), dict(target), exact, timeout_s)
        for i in range(workers)
    ]
    processes = [  # slice 1 is folded here, by this process, which is up already
        context.Process(
            target=_member,
            args=(replace(job, parent=os.getpid()), counts[job.part.index]),
            name=f"ringlog {name} slice {job.part.index + 1}/{workers}",
            daemon=True,
        )
        for job in jobs[1:]
    ]
    total = sum(target.values())  # the shadow starts empty, as Bulk.reach counts
    display = progress_bar(None if label is None else console)
    bar = display.add_task(label or "", total=max(total, 1), rate="", left=total)
    began = time.perf_counter()
    here: asyncio.Task[None] | None = None
    try:
        for process in processes:
            process.start()
        here = asyncio.create_task(_fold_slice(jobs[0], counts[0]), name=f"{name} slice 1")
        with display:
            async with asyncio.timeout(timeout_s + GRACE_S):  # each slice keeps its own
                while not here.done() or any(p.is_alive() for p in processes):
                    await asyncio.wait((here,), timeout=POLL_S)
                    _check(processes, here)
                    folded, elapsed = sum(c.value for c in counts), time.perf_counter() - began
                    display.update(
                        bar,
                        completed=folded,
                        rate=f"{folded / elapsed:,.0f} rec/s ({workers} processes)",
                        left=max(0, total - folded),
                    )
        _check(processes, here)
    finally:
        if here is not None and not here.done():
            here.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await here
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return Folded(sum(c.value for c in counts), time.perf_counter() - began, dict(target))


def _check(
    processes: Sequence[multiprocessing.process.BaseProcess], here: asyncio.Task[None]
) -> None:
    """Raise what this process's own slice raised, else :class:`SliceFailed` for the first
    process that ended with an error."""
    if here.done():
        here.result()
    for process in processes:
        if process.exitcode not in (None, 0):
            raise SliceFailed(f"{process.name} failed (exit code {process.exitcode})")


@dataclass(frozen=True)
class _Job:
    """What one slice's process folds (sent to it pickled)."""

    settings: Settings
    name: str
    group: str
    part: Slice
    target: dict[Position, int]
    exact: bool
    timeout_s: float
    #: the process that started this slice's, if another: without it, this one stops
    parent: int | None = None


class _Orphaned(Exception):
    """The process that started this slice's is gone."""


def _member(job: _Job, count: ctypes.c_longlong) -> None:
    """A slice's process: fold ``job``; a failure is said in one line on stderr and ends
    the process with code 1. ``count`` is kept at the records folded so far."""
    from ringlog import heap, logs

    logs.configure(json_output=False, level=logging.WARNING)
    for library in ("aiokafka", "kafka", "snowflake.connector"):
        logging.getLogger(library).setLevel(logging.CRITICAL)
    heap.settle(folds=True)
    try:
        asyncio.run(_fold_slice(job, count))
    except Exception as exc:  # noqa: BLE001 - said once, then the parent fails the fold
        part = job.part
        said = f"{job.name} slice {part.index + 1}/{part.of}: {describe(exc)}"
        print(said, file=sys.stderr)
        raise SystemExit(1) from None


async def _fold_slice(job: _Job, count: ctypes.c_longlong) -> None:
    from ringlog.projections.rebuildable import rebuildable

    versions = rebuildable(job.name).versions(job.settings)
    runner = versions.join(job.group)
    runner.only = job.part
    mine = {tp: n for tp, n in job.target.items() if job.part.holds(tp[1])}

    def progress(done: int) -> None:
        if job.parent is not None and os.getppid() != job.parent:  # a rerun starts afresh
            raise _Orphaned(f"process {job.parent} that started this fold is gone")
        count.value = done

    try:
        async with Bulk(runner) as bulk:
            folded = await bulk.reach(
                mine, exact=job.exact, timeout_s=job.timeout_s, progress=progress
            )
        count.value = folded.records
    finally:
        versions.leave()


__all__ = ["AUTO_MIN_RECORDS", "SliceFailed", "fold_in_slices", "workers_for"]
