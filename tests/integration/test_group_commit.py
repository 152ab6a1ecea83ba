"""Group commit: what the runner prepares while a write is in flight is written next, merged.

The target here is a test double that records every ``apply`` and holds the first one until
the test lets it go, so the runner keeps fetching (five records at a time) behind it. Every
record must then be applied exactly once, in log order, in fewer and larger transactions,
never larger than ``max_pending`` allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from ringlog.config import Settings
from ringlog.projections.base import Event, Projection, RetryPolicy
from ringlog.projections.runner import ProjectionRunner
from ringlog.schemas import Envelope, TaskFieldWriteback
from ringlog.streams.offsets import Position, end_offsets
from ringlog.streams.producer import LogProducer
from tests.support.logread import eventually
from tests.support.projections import runner_for

pytestmark = pytest.mark.integration

RECORDS = 40
FETCH = 5


class HeldTarget:
    """Keeps what is applied in memory; the first apply waits for :attr:`release`."""

    def __init__(self) -> None:
        self.applies: list[list[int]] = []
        self.checkpoint: dict[Position, int] = {}
        self.release = asyncio.Event()

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        return dict(self.checkpoint)

    async def apply(
        self, projection: str, operations: Sequence[int], positions: Mapping[Position, int]
    ) -> None:
        if not self.applies:
            await self.release.wait()
        self.applies.append(list(operations))
        self.checkpoint.update(positions)


class Watched:
    """A projection of offsets that tells when it has seen enough events: ``total`` in all,
    or ``beyond_first`` after the first batch (the one the held write carries)."""

    def __init__(
        self, settings: Settings, *, total: int | None = None, beyond_first: int | None = None
    ) -> None:
        self.seen = 0
        self.first: int | None = None
        self.total, self.beyond_first = total, beyond_first
        self.enough = asyncio.Event()
        self.projection = Projection(
            name="offsets", topics=(settings.topic("tasks"),), project=self.project
        )

    def project(self, events: Sequence[Event]) -> list[int]:
        if self.first is None:
            self.first = len(events)
        self.seen += len(events)
        if (self.total is not None and self.seen >= self.total) or (
            self.beyond_first is not None and self.seen - self.first >= self.beyond_first
        ):
            self.enough.set()
        return [e.offset for e in events]


async def append_writebacks(settings: Settings) -> None:
    """``RECORDS`` writebacks of one task: one partition, offsets 0 … RECORDS - 1."""
    envelopes = [
        Envelope.new(TaskFieldWriteback(task_id="t-1", fields={"n": i}), source="test")
        for i in range(RECORDS)
    ]
    async with LogProducer(settings.kafka) as log:
        await log.append_many(envelopes)


def runner(
    settings: Settings,
    watched: Watched,
    target: HeldTarget,
    group: str,
    *,
    max_pending: int | None = None,
) -> ProjectionRunner[int]:
    return runner_for(
        settings,
        watched.projection,
        target,
        group,
        retry=RetryPolicy(backoff_s=0.01, backoff_max_s=0.05),
        max_records=FETCH,
        max_pending=max_pending,
    )


async def run_until_applied(
    settings: Settings, runner: ProjectionRunner[int], target: HeldTarget, watched: Watched
) -> None:
    """Run; once the projection has seen what the runner can fetch behind the held first
    write, let that write go; return when the target holds the log's end."""
    ends = await end_offsets(settings.kafka, runner.projection.topics)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        async with asyncio.timeout(60):
            await watched.enough.wait()
            target.release.set()
            await runner.caught_up(timeout_s=60, interval_s=0.02)
        assert all(target.checkpoint.get(tp, 0) >= end for tp, end in ends.items())
    finally:
        target.release.set()  # never leave the runner waiting on the held write
        stop.set()
        await task


async def test_batches_prepared_during_a_write_are_written_next_as_one(
    topics: Settings, group_id: str
) -> None:
    await append_writebacks(topics)
    target, watched = HeldTarget(), Watched(topics, total=RECORDS)
    built = runner(topics, watched, target, group_id, max_pending=RECORDS)
    await run_until_applied(topics, built, target, watched)
    assert [offset for batch in target.applies for offset in batch] == list(range(RECORDS))
    # the first fetch went alone; everything fetched while it was held went in one more
    assert len(target.applies[0]) <= FETCH
    assert len(target.applies) == 2


async def test_the_pending_batch_stops_growing_at_max_pending(
    topics: Settings, group_id: str
) -> None:
    await append_writebacks(topics)
    target = HeldTarget()
    # behind the held write the loop fetches until 10 records are pending, then waits
    watched = Watched(topics, beyond_first=10)
    built = runner(topics, watched, target, group_id, max_pending=10)
    await run_until_applied(topics, built, target, watched)
    assert [offset for batch in target.applies for offset in batch] == list(range(RECORDS))
    assert max(len(batch) for batch in target.applies) < 10 + FETCH
    assert len(target.applies) >= RECORDS // (10 + FETCH) + 1


async def test_a_partition_is_restored_only_once_applied_to_the_end_read_after_assignment(
    topics: Settings, group_id: str
) -> None:
    """New partitions are settled (their ends read) beside the first fetch: a partition whose
    records are fetched but not yet applied is owned and not restored; once applied to the
    end, every partition is."""
    await append_writebacks(topics)
    ends = await end_offsets(topics.kafka, [topics.topic("tasks")])
    (written,) = [position for position, end in ends.items() if end > 0]
    target, watched = HeldTarget(), Watched(topics, total=FETCH)
    built = runner(topics, watched, target, group_id)
    stop = asyncio.Event()
    task = asyncio.create_task(built.run(stop))
    try:
        async with asyncio.timeout(60):
            await watched.enough.wait()  # its first records projected, their write held
        assert written in built.owned
        assert not built.restored(written)
        target.release.set()
        await built.caught_up(timeout_s=60, interval_s=0.02)
        restored = await eventually(
            lambda: asyncio.sleep(0, result={p for p in ends if built.restored(p)}),
            lambda found: found == set(ends),
        )
        assert target.checkpoint[written] == RECORDS and written in restored
    finally:
        target.release.set()  # never leave the runner waiting on the held write
        stop.set()
        await task
