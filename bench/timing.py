"""Timing in the benches: a projection runner's start-up, work and writes; medians of rounds."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry

from ringlog.streams.offsets import end_offsets

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


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

    async def run(self, runner: Any, kafka: Any) -> tuple[float, float]:
        """Run ``runner`` until this target has applied the log's current end; return the
        seconds from its start to the join (its second checkpoint read, made on assignment)
        and from the join to its last write. Only the runner reads the checkpoint."""
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
        joined = self.checkpoint_reads[1]
        return joined - started, self.last_write - joined


async def timed_run(
    make_runner: Callable[..., Any], settings: Any, target: Any, *, group: str
) -> RunTimes:
    """Build a runner over ``target`` (timed) with a fresh group and registry, run it to the
    log's end, and return its spans (``rows`` 0: the caller counts what landed)."""
    timed = Timed(target)
    runner = make_runner(
        settings, timed, group_id=f"{group}-{uuid.uuid4().hex[:6]}", registry=CollectorRegistry()
    )
    startup, work = await timed.run(runner, settings.kafka)
    return RunTimes(0, startup, work, timed.seconds)


@dataclass
class RunTimes:
    """One projection run: start-up (group join), then the work until the last write."""

    rows: int
    startup_s: float
    work_s: float
    write_s: float


def report(run: RunTimes, rows: int, raw: float, raw_name: str) -> None:
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


def medians(runs: Sequence[R]) -> R:
    """The first run with each float field replaced by its median over ``runs`` (a dataclass;
    other fields, such as names and row counts, are the first run's)."""
    first = runs[0]
    return replace(
        first,
        **{
            f.name: statistics.median(getattr(r, f.name) for r in runs)
            for f in fields(first)
            if isinstance(getattr(first, f.name), float)
        },
    )


def rounds_line(rows: int, runs: Sequence[RunTimes], raws: Sequence[float]) -> None:
    """Print every round's ratio of the runner (joined → last commit) to its raw baseline."""
    ratios = " ".join(f"{rows / run.work_s / raw:.2f}" for run, raw in zip(runs, raws, strict=True))
    print(f"{'ratio per round (joined → last commit / raw)':<52}{ratios:>22}")
