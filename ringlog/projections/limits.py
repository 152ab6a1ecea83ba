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

    async def _held_back(self, consumer: LogConsumer, records: list[LogRecord]) -> list[LogRecord]:
        """``records`` before the limit (all without one); a partition with records past it
        is sought back to its limit and paused (:meth:`stop_at`)."""
        until = self._until
        if until is None:
            return records
        kept: list[LogRecord] = []
        over: set[Position] = set()
        for r in records:
            position = (r.topic, r.partition)
            if r.offset < until.get(position, 0):
                kept.append(r)
            else:
                over.add(position)
        for topic, partition in sorted(over - self._paused):
            limit = max(
                until.get((topic, partition), 0), self.checkpoint.get((topic, partition), 0)
            )
            await consumer.seek(TopicPartition(topic, partition), limit)
            consumer.pause([TopicPartition(topic, partition)])
            self._paused.add((topic, partition))
        return kept

    def reached(self, target: Mapping[Position, int]) -> bool:
        """Whether this runner has applied everything before ``target`` on every partition."""
        return all(self.checkpoint.get(tp, 0) >= n for tp, n in target.items())
