"""The bridge out: a topic's events sent to an SQS queue by the one runtime.

``ringlog bridge sqs-out --topic abt --queue URL`` is a
:class:`~ringlog.projections.runner.ProjectionRunner` whose target is the queue: the
projection turns each record into its message (:func:`~.entries.entries_for`, pure), and the
target (:class:`QueueTarget`) sends a batch's messages in log order, ten (and at most
``max_batch_bytes``) a request, then writes the checkpoint (:mod:`.checkpoints`). The runner
commits the consumer group's offsets only after that, so nothing is committed before SQS
accepted it.

* **Never skips.** When SQS refuses a message (or does not answer), the checkpoint is
  written up to the first record not accepted and the batch is retried, sending only what
  was not accepted; after ``send_attempts`` attempts (backoff ``backoff_s`` doubling up to
  ``backoff_max_s``) the bridge stops with :class:`SendFailed`, naming the record's position.
  A restart begins at that record. Every send failure is reported to the runner as
  retryable, so it never dead-letters (skips) a record it could not send. A record that
  cannot be decoded at all is dead-lettered by the runtime, as by every projection.
* **At least once; exactly once on FIFO queues.** A crash between SQS's answer and the
  checkpoint sends those records again: a FIFO queue drops them (the deduplication id is
  ``topic-partition-offset``, within SQS's five-minute window), a standard queue's consumer
  deduplicates on the ``ringlog-event-id`` attribute.
* **Order.** Requests go one at a time, in log order: a FIFO group (the record's key, a call)
  receives its events in the order of the log.

Scans: each batch is the runtime's fetch (``out_max_records`` records at most); the target
keeps the checkpoint of the partitions it serves and the records of the batch in flight,
nothing in proportion to the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from ringlog.bridges.checkpoints import BridgeCheckpoints
from ringlog.bridges.entries import (
    Offset,
    OutboundEntry,
    delivered_positions,
    entries_for,
    send_batches,
    still_to_send,
)
from ringlog.bridges.failures import describe
from ringlog.bridges.sqs import SqsQueue
from ringlog.config import Settings
from ringlog.errors import RetryableError
from ringlog.projections.base import Event, Projection, RetryPolicy, Target
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.runner import ProjectionRunner
from ringlog.streams.offsets import Position

log = structlog.get_logger("ringlog.bridges")


class SendFailed(RetryableError):
    """SQS did not accept a record: the bridge out retries it, then stops at it.

    ``position`` is the record's ``(topic, partition, offset)``; the checkpoint stands there,
    so a restart sends it first.
    """

    def __init__(self, queue: str, entry: OutboundEntry, reason: str) -> None:
        where = f"{entry.topic}-{entry.partition}-{entry.offset}"
        super().__init__(
            f"SQS queue {queue} did not accept the record at {where} "
            f"({entry.attributes.get('ringlog-type', '?')}, event "
            f"{entry.attributes.get('ringlog-event-id', '?')}): {reason}; the checkpoint stands "
            "at this record and nothing past it is committed: fix the cause (the queue's "
            "MaximumMessageSize, its policy) and restart the bridge, which resumes here"
        )
        self.position: Offset = entry.where
        self.queue = queue
        self.reason = reason


def bridge_name(queue: SqsQueue) -> str:
    """The bridge's name in the checkpoint table and in metrics: ``sqs-out:<queue name>``."""
    return f"sqs-out:{queue.name}"


def default_group_id(settings: Settings, queue: SqsQueue) -> str:
    """The consumer group of the bridge out to ``queue``: ``<client_id>-bridge-<queue name>``."""
    return f"{settings.kafka.client_id}-bridge-{queue.name}"


def outbound_projection(
    name: str, topics: Sequence[str], *, fifo: bool
) -> Projection[OutboundEntry]:
    """Every event on ``topics`` as the message to send (FIFO: with group and dedup ids)."""

    def project(events: Sequence[Event]) -> list[OutboundEntry]:
        return entries_for(events, fifo=fifo)

    return Projection(name=name, topics=tuple(topics), project=project)


class QueueTarget:
    """An SQS queue as a runtime target: sends a batch's messages, then its checkpoint.

    Keeps, for the partitions it serves, the checkpoint it last read or wrote and the records
    SQS accepted past it (a failed batch's later records that went through), so a retried
    batch sends only what is still owed. :meth:`on_sent` is a hook between SQS's answer and
    the checkpoint write (tests crash there).
    """

    def __init__(
        self, queue: SqsQueue, checkpoints: BridgeCheckpoints, *, max_batch_bytes: int
    ) -> None:
        self.queue = queue
        self._checkpoints = checkpoints
        self._max_batch_bytes = max_batch_bytes
        self._checkpoint: dict[Position, int] = {}
        self._accepted: set[Offset] = set()

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        """The stored checkpoint of ``projection`` (read again on every partition assignment)."""
        loaded = await self._checkpoints.load(projection)
        self._advance(loaded)
        return loaded

    async def apply(
        self,
        projection: str,
        operations: Sequence[OutboundEntry],
        positions: Mapping[Position, int],
    ) -> None:
        """Send ``operations`` not sent yet, in order, then store ``positions`` — or, when SQS
        did not take one, the position of the first record it did not take, and raise
        :class:`SendFailed` naming it."""
        todo = still_to_send(operations, self._checkpoint, self._accepted)
        accepted: list[Offset] = []
        failure: tuple[OutboundEntry, str] | None = None
        for batch in send_batches(todo, max_bytes=self._max_batch_bytes):
            try:
                result = await self.queue.send(batch)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the record is not sent
                failure = (batch[0], describe(exc))
                break
            accepted += result.accepted
            if result.failed is not None:
                failure = result.failed
                break
        self._accepted.update(accepted)
        await self.on_sent(accepted)
        reached = (
            dict(positions)
            if failure is None
            else delivered_positions(todo, self._accepted, positions)
        )
        await self._checkpoints.write(projection, reached)
        self._advance(reached)
        if failure is not None:
            entry, reason = failure
            log.warning(
                "SQS did not accept a record; retrying",
                queue=self.queue.name,
                position=f"{entry.topic}-{entry.partition}-{entry.offset}",
                reason=reason,
            )
            raise SendFailed(self.queue.url, entry, reason)

    async def on_sent(self, accepted: Sequence[Offset]) -> None:
        """Called once SQS accepted ``accepted`` (the records of one apply, maybe none) and
        before the checkpoint is written. Does nothing; a hook for subclasses."""

    def _advance(self, positions: Mapping[Position, int]) -> None:
        for position, offset in positions.items():
            self._checkpoint[position] = max(offset, self._checkpoint.get(position, 0))
        self._accepted = {
            where
            for where in self._accepted
            if where[2] >= self._checkpoint.get((where[0], where[1]), 0)
        }


def outbound_runner(
    settings: Settings,
    queue: SqsQueue,
    checkpoints: BridgeCheckpoints,
    *,
    topics: Sequence[str],
    group_id: str | None = None,
    registry: CollectorRegistry | None = None,
    target: Target[OutboundEntry] | None = None,
) -> ProjectionRunner[OutboundEntry]:
    """The runtime bridging ``topics`` (physical names) to ``queue``, its checkpoint in
    ``checkpoints``, failed sends tried ``settings.sqs.send_attempts`` times, then raised.
    ``target`` replaces the :class:`QueueTarget` (tests and benches wrap or extend it)."""
    sqs = settings.sqs
    name = bridge_name(queue)
    runner: ProjectionRunner[Any] = ProjectionRunner(
        settings.kafka,
        outbound_projection(name, topics, fifo=queue.fifo),
        target or QueueTarget(queue, checkpoints, max_batch_bytes=sqs.max_batch_bytes),
        group_id=group_id or default_group_id(settings, queue),
        deadletter_topic=settings.topic("deadletter"),
        metrics=ProjectionMetrics.shared(registry),
        retry=RetryPolicy(
            attempts=sqs.send_attempts, backoff_s=sqs.backoff_s, backoff_max_s=sqs.backoff_max_s
        ),
        max_records=sqs.out_max_records,
    )
    return runner


async def run_outbound(
    settings: Settings,
    queue: SqsQueue,
    topics: Sequence[str],
    stop: asyncio.Event | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> None:
    """Bridge ``topics`` to ``queue`` until ``stop``; raises :class:`SendFailed` when a record
    cannot be sent (logged with its position first). The checkpoint lives in the CRM
    database (``settings.crm.url``)."""
    checkpoints = BridgeCheckpoints.open(settings.crm.url)
    try:
        runner = outbound_runner(settings, queue, checkpoints, topics=topics, registry=registry)
        log.info("bridge out started", topics=list(topics), queue=queue.name, fifo=queue.fifo)
        try:
            await runner.run(stop)
        except SendFailed as exc:
            topic, partition, offset = exc.position
            log.error(
                "bridge out stopped: a record could not be sent",
                queue=queue.name,
                topic=topic,
                partition=partition,
                offset=offset,
                reason=exc.reason,
            )
            raise
    finally:
        checkpoints.close()
