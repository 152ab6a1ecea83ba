"""The projection loop: batches from the log, pure rows, one target transaction, then offsets.

A projection is a name, the topics it reads and a pure ``project(events) -> operations``. The
runner feeds it ``getmany`` batches and hands the operations to a :class:`Target` together with
the consumed positions; the target writes both in **one transaction**. Kafka offsets are
committed only after that transaction, and only as a courtesy: on start (and on every new
partition assignment) the runner seeks to the **target's own checkpoint** and skips any record
below it, so a crash between the target commit and the Kafka commit never applies a record
twice, and a target rebuilt from nothing is refilled from the beginning of the log.

* Pipelined with group commit: batches are fetched, decoded and projected while the target
  writes; what is prepared during a write is merged and written next as one transaction.
  Writes (and offset commits) stay one at a time, in log order.
* Errors decide the loop (:mod:`.retrying` classifies them). A *transient* failure — the
  connection, a timeout, the broker, the server — is retried with exponential backoff for as
  long as it lasts (until stopped), while the lag gauge keeps rising; nothing is skipped.
  Reading the checkpoint and the log's ends, and dead-lettering, retry every failure so.
* A *data* failure of a write (the target refuses a row), after ``data_attempts`` retries,
  and a *poison* record (it cannot be decoded, or its projection raises) are settled by
  :mod:`.isolation`: the records at fault go to the dead-letter topic with their positions
  checkpointed, every other record is applied, and the partition moves on.
* A record of a type the projection does not handle is skipped and checkpointed.

Metrics: ``ringlog_projection_lag{projection,topic,partition}`` (records not yet applied) and
``ringlog_projection_records_applied_total{projection,topic}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Mapping
from typing import Generic

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, RetryCallState

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.projections.aligned import Alignment
from ringlog.projections.base import OpT, Projection, RetryPolicy, Target
from ringlog.projections.isolation import Isolation
from ringlog.projections.limits import Limits
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.prepared import Prepared, prepare
from ringlog.projections.retrying import classify, describe, is_transient, retrying
from ringlog.streams.consumer import Batch, LogConsumer, LogRecord, Slice
from ringlog.streams.offsets import OffsetReader, Position, end_offsets
from ringlog.streams.producer import LogProducer

log = structlog.get_logger("ringlog.projections")

#: How long settling new partitions waits for their first fetch to return before it reads
#: their ends anyway (a caught-up partition's fetch returns only at the poll timeout).
SETTLE_AFTER_S = 0.05

__all__ = ["ProjectionRunner"]


class ProjectionRunner(Limits, Generic[OpT]):
    """Runs one projection against one target as a member of consumer group ``group_id``.

    :meth:`run` loops until ``stop`` is set; :meth:`caught_up` waits until the target has
    applied everything on the log at the time of the call. ``alone``: the runner is the only
    reader of its group (a rebuild's), so it takes every partition without joining the group
    (with :attr:`only`, those of one :class:`~ringlog.streams.consumer.Slice`).
    ``redriven=False`` (a rebuild from
    the log's start) skips the re-driven copies of dead letters meant for this projection too:
    it applies their originals instead (:mod:`.isolation`). Subclasses may override
    :meth:`on_applied` (called between the target commit and the Kafka commit), and the
    hooks of :class:`~.ownership.Ownership` (which partitions it holds); :class:`~.limits.Limits`
    lets a bulk caller stop it at positions.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        projection: Projection[OpT],
        target: Target[OpT],
        *,
        group_id: str,
        deadletter_topic: str,
        producer: LogProducer | None = None,
        metrics: ProjectionMetrics | None = None,
        retry: RetryPolicy | None = None,
        max_records: int = 5_000,
        max_pending: int | None = None,
        poll_timeout_ms: int = 500,
        lag_interval_s: float = 5.0,
        redriven: bool = True,
        alone: bool = False,
    ) -> None:
        super().__init__()
        self.projection = projection
        self.target = target
        self.metrics = metrics or ProjectionMetrics()
        self._kafka = kafka
        self._group_id = group_id
        self._retry = retry or RetryPolicy()
        self._max_records = max_records
        #: records merged into the next write while one is in flight (default 4 fetches; a
        #: bulk fold writes one fetch at a time: :class:`~.bulk.Bulk`)
        self.max_pending = max_pending or 4 * max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._lag_interval_s = lag_interval_s
        #: take every partition without joining the group (see :class:`LogConsumer`)
        self.alone = alone
        #: with ``alone``: the one slice of the partitions it takes (``None``: every one)
        self.only: Slice | None = None
        #: set by a bulk fold of several topics: records released in step (:mod:`.aligned`)
        self.aligned: Alignment | None = None
        self._ends: dict[Position, int] = {}
        #: set each time a fetch returns, cleared when partitions are positioned (made per run)
        self._fetched: asyncio.Event
        self._failure: BaseException | None = None
        self._isolation = Isolation(
            self,
            kafka,
            deadletter_topic=deadletter_topic,
            producer=producer,
            data_attempts=self._retry.data_attempts,
            retrying=self._retrying,
            applied=self._applied,
            redriven=redriven,
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume, project and apply until ``stop`` is set (forever when ``None``).

        Raises when the target stays unavailable beyond the retry policy (never, unless
        ``attempts`` is set), or when ``stop`` is set while a write is being retried; nothing
        unapplied is committed in either case. Data failures do not stop it (see the module).
        """
        stop = stop or asyncio.Event()
        self._failure = None
        self._positioned.clear()
        self._fetched = asyncio.Event()  # an Event belongs to the loop that waits on it
        self._paused.clear()
        name = self.projection.name
        try:
            self.checkpoint = await self._retrying(stop)(self.target.load_checkpoint, name)
            consumer = LogConsumer(
                self._kafka,
                self.projection.topics,
                group_id=self._group_id,
                max_records=self._max_records,
                alone=self.alone,
                only=self.only,
            )
            # ends are read on each assignment and every lag interval: one client for them,
            # connected before the group is joined
            async with OffsetReader(self._kafka) as offsets, consumer:
                self._consumer = consumer
                log.info("projection started", projection=name, group=self._group_id)
                # lag keeps being measured while a write is retried, so an outage shows
                watcher = asyncio.create_task(self._watch_lag(offsets, stop), name=f"lag {name}")
                try:
                    await self._consume(consumer, offsets, stop)
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._consumer = None
            await self._isolation.close()
            log.info("projection stopped", projection=name)

    async def _consume(
        self, consumer: LogConsumer, offsets: OffsetReader, stop: asyncio.Event
    ) -> None:
        """The batch loop: position new partitions, fetch, project, write, report lag.

        Writes run one at a time, in log order, in a task of their own (the target works in a
        thread or another process), while the loop fetches, decodes and projects the next
        batches. Batches prepared while a write is in flight are merged into one pending
        batch, written next in one transaction (group commit): a busy target gets fewer,
        larger transactions, an idle one each batch at once. At ``max_pending`` records the
        loop waits for the write. A new partition is positioned only once every write is done,
        and settled (:meth:`_settle`) while its first records are fetched.
        """
        writing: asyncio.Task[None] | None = None
        pending: Prepared[OpT] | None = None
        fetch: asyncio.Future[Batch] | None = None
        settling: set[asyncio.Task[None]] = set()

        def hand_over() -> None:
            """Start writing the pending batch, if any (the previous write has finished)."""
            nonlocal writing, pending
            batch, pending = pending, None
            writing = (
                None if batch is None else asyncio.create_task(self._write(consumer, batch, stop))
            )

        async def drain() -> None:
            """Finish the write in flight, then write what is pending."""
            while writing is not None:
                await writing
                hand_over()

        try:
            while not stop.is_set():
                new = self._new_partitions(consumer)
                if new:
                    await drain()
                    self._fetched.clear()
                    settling.add(await self._position(consumer, offsets, new, stop))
                for settled in [t for t in settling if t.done()]:
                    settling.discard(settled)
                    await settled  # surfaces a failed settle now
                fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=self._poll_timeout_ms))
                # while fetching, a finished write hands over to the pending batch at once
                while writing is not None and not fetch.done():
                    await asyncio.wait((fetch, writing), return_when=asyncio.FIRST_COMPLETED)
                    if writing.done():
                        await writing  # surfaces a failed write now
                        hand_over()
                batch = await fetch
                fetch = None
                self._fetched.set()
                # records of a partition assigned during this fetch wait for its seek
                parts = {p: rs for p, rs in batch.parts.items() if p in self._positioned}
                parts = await self._held_back(consumer, parts)
                if self.aligned is not None:  # a bulk fold of several topics
                    parts = await self.aligned.in_step(
                        consumer, parts, self.projection.topics, stopped=self._paused
                    )
                if parts:
                    prepared = self._prepare(parts)
                    pending = prepared if pending is None else pending.then(prepared)
                full = pending is not None and pending.records >= self.max_pending
                if writing is not None and (writing.done() or full):
                    await writing
                    writing = None
                if writing is None and pending is not None:
                    hand_over()
                    # let the write reach the target's thread before the next fetch and
                    # decode, which may not suspend at all when the fetcher holds records
                    await asyncio.sleep(0)
                self._set_lag()
            await drain()
        finally:
            if fetch is not None:
                fetch.cancel()
            for settle in settling:
                settle.cancel()
            await asyncio.gather(*settling, return_exceptions=True)  # stopping: ends unread
            if writing is not None:
                await writing

    async def _watch_lag(self, offsets: OffsetReader, stop: asyncio.Event) -> None:
        """Read the log's end offsets every ``lag_interval_s`` until ``stop``, and refresh the
        lag gauge, batches or not (so it rises while a write is retried).

        The batch loop sets the gauge from the last ends read, so it never waits for them;
        settling new partitions reads their ends first (:meth:`_settle`)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._lag_interval_s)
            if stop.is_set():
                return
            try:
                self._ends = await offsets.read(self.projection.topics)
            except BrokerUnavailable as exc:
                log.warning("lag unknown", projection=self.projection.name, error=str(exc))
            self._set_lag()

    async def on_applied(self, positions: Mapping[Position, int]) -> None:
        """Called after the target committed ``positions`` and before Kafka offsets are.

        Does nothing; a hook for subclasses (tests use it to crash at the worst moment).
        """

    async def caught_up(self, timeout_s: float = 60.0, *, interval_s: float = 0.1) -> None:
        """Wait until the target's checkpoint reaches the end offsets the log has *now*.

        Reads the checkpoint from the target, so it also sees other group members' progress.
        Raises ``TimeoutError`` after ``timeout_s``, or ``RuntimeError`` if :meth:`run` failed.
        """
        ends = await end_offsets(self._kafka, self.projection.topics)
        async with asyncio.timeout(timeout_s):
            while True:
                if self._failure is not None:
                    raise RuntimeError("the projection runner failed") from self._failure
                done = await self.target.load_checkpoint(self.projection.name)
                if all(done.get(tp, 0) >= end for tp, end in ends.items()):
                    return
                await asyncio.sleep(interval_s)

    async def run_until_caught_up(self, timeout_s: float = 60.0) -> None:
        """Run until everything on the log at call time is applied, then stop cleanly."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop))
        try:
            await self.caught_up(timeout_s)
        finally:
            stop.set()
            await task

    # -- one batch --------------------------------------------------------------------------

    def _prepare(self, parts: Mapping[Position, list[LogRecord]]) -> Prepared[OpT]:
        """Drop records the target already has, project the rest (pure, no I/O)."""
        prepared = prepare(parts, self.checkpoint, self._isolation.project)
        if len(prepared.sources) < prepared.records:
            log.debug(
                "skipped applied records",
                projection=self.projection.name,
                count=prepared.records - len(prepared.sources),
            )
        return prepared

    async def _write(
        self, consumer: LogConsumer, batch: Prepared[OpT], stop: asyncio.Event
    ) -> None:
        """Dead-letter the poison, apply the rest with its positions, then commit offsets.

        When the target keeps refusing the batch with a data failure, the records at fault
        are found and dead-lettered, the others applied (:meth:`.Isolation.isolate`)."""
        name = self.projection.name
        for record, error in batch.poison:
            await self._retrying(stop)(self._isolation.dead_letter, record, error)
        if batch.positions:
            try:
                await self._retrying(stop, data_attempts=self._retry.data_attempts)(
                    self.target.apply, name, batch.operations, batch.positions
                )
            except Exception as exc:
                if stop.is_set() or is_transient(exc):
                    raise
                await self._isolation.isolate(batch.sources, exc, stop)
            else:
                await self._applied(batch.positions, batch.applied)
        await self._commit(consumer, batch.partitions)

    async def _applied(
        self, positions: Mapping[Position, int], applied: collections.Counter[str]
    ) -> None:
        """The target committed ``positions``: move the checkpoint, count, tell the hook."""
        self.checkpoint.update(positions)
        for topic, count in applied.items():
            self.metrics.applied.labels(self.projection.name, topic).inc(count)
        await self.on_applied(positions)

    def _retrying(self, stop: asyncio.Event, *, data_attempts: int | None = None) -> AsyncRetrying:
        """Retries of one call: transient failures without end (until ``stop``); data failures
        ``data_attempts`` times, or like transient ones when ``None``."""
        return retrying(self._retry, stop, self._retry_logged, data_attempts=data_attempts)

    def _retry_logged(self, state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        self.metrics.retries.labels(self.projection.name).inc()
        log.warning(
            "projection target failed, retrying",
            projection=self.projection.name,
            attempt=state.attempt_number,
            failure=None if error is None else classify(error),
            error=None if error is None else describe(error),
        )

    async def _commit(self, consumer: LogConsumer, partitions: set[Position]) -> None:
        """Commit the group's offsets up to the checkpoint (best effort: the target rules)."""
        offsets = {
            TopicPartition(topic, partition): self.checkpoint[(topic, partition)]
            for topic, partition in sorted(partitions)
            if (topic, partition) in self.checkpoint
        }
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed", projection=self.projection.name, error=str(exc))

    # -- positions and lag ------------------------------------------------------------------

    async def _position(
        self,
        consumer: LogConsumer,
        offsets: OffsetReader,
        new: set[Position],
        stop: asyncio.Event,
    ) -> asyncio.Task[None]:
        """Seek the ``new`` partitions to the target's checkpoint (0 when absent), then, in a
        task of its own while the first records are fetched, settle them (:meth:`_settle`)."""
        # another member may have advanced these partitions since we last looked
        loaded: dict[Position, int] = await self._retrying(stop)(
            self.target.load_checkpoint, self.projection.name
        )
        self.checkpoint.update(loaded)
        for topic, partition in sorted(new):
            await consumer.seek(
                TopicPartition(topic, partition), self.checkpoint.get((topic, partition), 0)
            )
        assignment = self._took(new)
        return asyncio.create_task(
            self._settle(consumer, offsets, new, assignment, stop),
            name=f"settle {self.projection.name}",
        )

    async def _settle(
        self,
        consumer: LogConsumer,
        offsets: OffsetReader,
        new: set[Position],
        assignment: int,
        stop: asyncio.Event,
    ) -> None:
        """Commit the checkpoint of the ``new`` partitions as the group's offset, read where
        the log ends (each is *restored* once applied that far; until then it is not), and
        tell :meth:`on_assigned`. A partition revoked or assigned anew meanwhile is left to
        that later assignment.

        It starts once the first fetch after the assignment has returned (or after
        :data:`SETTLE_AFTER_S`): that fetch goes to the broker alone and is answered sooner."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._fetched.wait(), SETTLE_AFTER_S)
        # bring the group's offsets up to the checkpoint (a crash may have left them behind)
        await self._commit(consumer, new)
        # fresh metadata: a partition added to a topic since must get its real end, not 0
        ends: dict[Position, int] = await self._retrying(stop)(
            offsets.read, sorted({t for t, _ in new}), fresh=True
        )
        held = self._settled(new, assignment, ends)
        self._ends.update((position, ends.get(position, 0)) for position in held)
        self._set_lag()
        if held:
            self.on_assigned(held)

    def _set_lag(self) -> None:
        """Set the gauge of every positioned partition from the last end offsets read."""
        for topic, partition in self._positioned:
            end = self._ends.get((topic, partition))
            if end is not None:
                lag = max(0, end - self.checkpoint.get((topic, partition), 0))
                self.metrics.lag.labels(self.projection.name, topic, str(partition)).set(lag)
