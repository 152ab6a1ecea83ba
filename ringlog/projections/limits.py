"""Where a projection runner stops: positions a bulk caller drives it to.

A rebuild, verify or replay (:mod:`.bulk`) runs the live projection into a shadow up to exact
positions: :meth:`Limits.stop_at` names them, the runner applies nothing at or past them (a
partition that reaches its limit is sought back and paused, :meth:`Limits._held_back`), and
:meth:`Limits.reached` says when everything before them is applied.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import TopicPartition

from ringlog.projections.ownership import Ownership
from ringlog.streams.consumer import LogConsumer, LogRecord
from ringlog.streams.offsets import Position


class Limits(Ownership):
    """The positions a runner stops at, on top of the partitions it holds."""

    def __init__(self) -> None:
        super().__init__()
        #: when set, the position to stop at per partition (see :meth:`stop_at`)
        self._until: Mapping[Position, int] | None = None
        self._paused: set[Position] = set()

    def stop_at(self, until: Mapping[Position, int] | None) -> None:
        """Apply nothing at or past ``until`` (per partition; a partition not named is not
        applied at all), from the next batch on; ``None`` lifts the limit. A partition that
        reaches its limit is paused, and read again from there once the limit is raised."""
        self._until = None if until is None else dict(until)
        consumer = self._consumer
        if consumer is not None and self._paused:
            consumer.resume(TopicPartition(t, p) for t, p in self._paused)
        self._paused.clear()

    async def _held_back(
        self, consumer: LogConsumer, parts: dict[Position, list[LogRecord]]
    ) -> dict[Position, list[LogRecord]]:
        """``parts`` (records per partition, in offset order) cut before the limit (all
        without one); a partition with records past it is sought back to its limit and
        paused (:meth:`stop_at`)."""
        until = self._until
        if until is None:
            return parts
        kept: dict[Position, list[LogRecord]] = {}
        for position, records in parts.items():
            limit = until.get(position, 0)
            if records[-1].offset >= limit:
                records = [r for r in records if r.offset < limit]
                await self._hold(consumer, position, limit)
            if records:
                kept[position] = records
        return kept

    async def _hold(self, consumer: LogConsumer, position: Position, limit: int) -> None:
        """Seek ``position`` back to ``limit`` (not below the checkpoint) and pause it, once."""
        if position in self._paused:
            return
        topic, partition = position
        await consumer.seek(
            TopicPartition(topic, partition), max(limit, self.checkpoint.get(position, 0))
        )
        consumer.pause([TopicPartition(topic, partition)])
        self._paused.add(position)

    def reached(self, target: Mapping[Position, int]) -> bool:
        """Whether this runner has applied everything before ``target`` on every partition."""
        return all(self.checkpoint.get(tp, 0) >= n for tp, n in target.items())
