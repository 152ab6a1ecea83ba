"""Records at fault in a projection's batches: poison, records the target refuses, dead letters.

:class:`Isolation` serves one :class:`~ringlog.projections.runner.ProjectionRunner`:

* A record that cannot be decoded, or whose projection raises, is *poison*
  (:meth:`Isolation.project` finds it): it goes to the dead-letter topic (error in headers)
  before the batch is applied, its position is checkpointed with the rest, and the partition
  carries on. A crash before the target commit dead-letters it again on restart (at least
  once; the origin header identifies duplicates), as it does a record the target refused.
* A *data* failure of a write — the target refuses a row (a value too long, a NUL in text, a
  constraint), or any failure not known to be transient — is retried ``data_attempts`` times
  (:class:`~.base.RetryPolicy`). Then the batch's records are projected again and written in
  halves, in log order, a failing half split again (:meth:`Isolation.isolate`): each record
  whose own write still fails with a data failure goes to the dead-letter topic (the error in
  headers) and its position is checkpointed, every other record is applied with its position,
  and the partition moves on. A batch without a bad record costs nothing more; one bad record
  among *n* costs about 2·log2(*n*) extra transactions.
* A re-driven copy of a dead letter (``ringlog deadletter replay``) names the one processor it
  is for: every other projection skips it like a type it does not read (checkpointed, not
  applied), since it applied the original (:func:`~ringlog.streams.deadletter.meant_for`).
  A rebuild from the log's start (``redriven=False``) skips every copy: it meets the original
  first, and applies it — or parks it again, if it still fails.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, Protocol

import structlog
from tenacity import AsyncRetrying

from ringlog.config import KafkaSettings
from ringlog.projections.base import Event, OpT, Projection, Target
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.prepared import event_type
from ringlog.projections.retrying import describe, is_transient
from ringlog.streams.consumer import LogRecord, next_offsets
from ringlog.streams.deadletter import dead_letter, meant_for, processor_of
from ringlog.streams.offsets import Position
from ringlog.streams.producer import LogProducer

log = structlog.get_logger("ringlog.projections")

#: What the runner does once the target committed ``positions`` (records counted by topic).
Applied = Callable[[Mapping[Position, int], collections.Counter[str]], Awaitable[None]]


class Runs(Protocol[OpT]):
    """What :class:`Isolation` reads of its runner, at each use (a projection may be replaced)."""

    projection: Projection[OpT]
    target: Target[OpT]
    metrics: ProjectionMetrics


class Retrying(Protocol):
    """The runner's retries of one call (see ``ProjectionRunner._retrying``)."""

    def __call__(
        self, stop: asyncio.Event, *, data_attempts: int | None = None
    ) -> AsyncRetrying: ...


class Isolation(Generic[OpT]):
    """Finds the records at fault in ``runner``'s batches and sends them to the dead-letter
    topic (see the module). The producer is made on the first dead letter unless given;
    :meth:`close` stops one made here."""

    def __init__(
        self,
        runner: Runs[OpT],
        kafka: KafkaSettings,
        *,
        deadletter_topic: str,
        producer: LogProducer | None,
        data_attempts: int,
        retrying: Retrying,
        applied: Applied,
        redriven: bool = True,
    ) -> None:
        self._runner = runner
        self._redriven = redriven
        self._kafka = kafka
        self._deadletter_topic = deadletter_topic
        self._producer = producer
        self._owns_producer = producer is None
        self._data_attempts = data_attempts
        self._retrying = retrying
        self._applied = applied

    async def close(self) -> None:
        """Stop the producer made here, if any (a later dead letter makes a new one)."""
        if self._owns_producer and self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def project(
        self, records: Sequence[LogRecord]
    ) -> tuple[list[OpT], list[tuple[LogRecord, str]]]:
        """Project the batch; when that raises, project record by record to find the poison."""
        poison: list[tuple[LogRecord, str]] = []
        events: list[Event] = []
        every_type = self._runner.projection.handles is None
        for record in records:
            # per record: the call is skipped for the common case (a projection of every
            # type, a record that is not a re-driven copy)
            if not (every_type and record.redriven_for is None) and not self._handles(record):
                continue
            if record.error is not None:
                poison.append((record, f"{type(record.error).__name__}: {record.error}"))
            elif record.envelope is not None:
                events.append(Event(record.topic, record.partition, record.offset, record.envelope))
        try:
            return self._runner.projection.project(events), poison
        except Exception:  # noqa: BLE001 - isolate the failing record(s) below
            pass
        operations: list[OpT] = []
        by_position = {(r.topic, r.partition, r.offset): r for r in records}
        for event in events:
            try:
                operations.extend(self._runner.projection.project([event]))
            except Exception as exc:  # noqa: BLE001 - one bad event is dead-lettered
                record = by_position[(event.topic, event.partition, event.offset)]
                poison.append((record, f"{type(exc).__name__}: {exc}"))
        return operations, poison

    async def isolate(
        self, records: Sequence[LogRecord], error: Exception, stop: asyncio.Event
    ) -> None:
        """Apply ``records`` (a batch's, in log order), whose write as one failed with the data
        failure ``error``, leaving out the record(s) at fault: those are dead-lettered and
        their positions checkpointed. Each record is projected again on its own."""
        log.warning(
            "batch refused by the target; isolating the records at fault",
            projection=self._runner.projection.name,
            records=len(records),
            error=describe(error),
        )
        operations = [self._operations_of(record) for record in records]
        await self._split(records, operations, error, stop)

    async def _split(
        self,
        records: Sequence[LogRecord],
        operations: Sequence[list[OpT]],
        error: Exception,
        stop: asyncio.Event,
    ) -> None:
        """Settle ``records`` (``operations[i]`` are ``records[i]``'s), whose write together
        just failed with the data failure ``error``.

        One record is at fault: dead-lettered with ``error``, then its position checkpointed.
        More are split in two halves written one after the other (log order is kept), each
        with its own positions; a half refused with a data failure is split in turn. A half
        of one record is tried ``data_attempts`` times before it is judged, a larger one once.
        Transient failures are retried without end, as everywhere."""
        name = self._runner.projection.name
        if len(records) == 1:
            await self._retrying(stop)(self.dead_letter, records[0], describe(error))
            positions = next_offsets(records)
            await self._retrying(stop)(self._runner.target.apply, name, [], positions)
            await self._applied(positions, collections.Counter([records[0].topic]))
            return
        middle = len(records) // 2
        for part in (slice(0, middle), slice(middle, len(records))):
            part_records, part_operations = records[part], operations[part]
            positions = next_offsets(part_records)
            attempts = self._data_attempts if len(part_records) == 1 else 1
            try:
                await self._retrying(stop, data_attempts=attempts)(
                    self._runner.target.apply,
                    name,
                    [op for ops in part_operations for op in ops],
                    positions,
                )
            except Exception as exc:
                if stop.is_set() or is_transient(exc):
                    raise
                await self._split(part_records, part_operations, exc, stop)
            else:
                applied = collections.Counter(r.topic for r in part_records)
                await self._applied(positions, applied)

    def _operations_of(self, record: LogRecord) -> list[OpT]:
        """``record``'s operations, projected on their own: none when the projection does not
        read it, it did not decode, or its projection raises (then it was dead-lettered when
        its batch was prepared)."""
        if record.envelope is None or not self._handles(record):
            return []
        event = Event(record.topic, record.partition, record.offset, record.envelope)
        try:
            return self._runner.projection.project([event])
        except Exception:  # noqa: BLE001 - poison, already dead-lettered by project
            return []

    def _handles(self, record: LogRecord) -> bool:
        """Whether ``record`` is the projection's: of a type it reads, and not a re-driven
        copy meant for another processor (nor, unless ``redriven``, one meant for it)."""
        projection = self._runner.projection
        if projection.handles is not None and not projection.reads(event_type(record)):
            return False
        if record.redriven_for is None:
            return True
        return self._redriven and meant_for(record.redriven_for, projection.name)

    async def dead_letter(self, record: LogRecord, error: str) -> None:
        """Append ``record`` to the dead-letter topic with ``error`` (once; callers retry)."""
        if self._producer is None:
            self._producer = LogProducer(self._kafka)
        log.warning(
            "dead-lettered",
            projection=self._runner.projection.name,
            origin=f"{record.topic}/{record.partition}/{record.offset}",
            error=error,
        )
        await dead_letter(
            self._producer,
            self._deadletter_topic,
            processor=processor_of(self._runner.projection.name),
            error=error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers),
        )
        self._runner.metrics.deadlettered.labels(self._runner.projection.name, record.topic).inc()
