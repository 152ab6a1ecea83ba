"""Bulk folds of several topics in step: each partition's records released by stream time.

A bulk fetch brings each partition's records by bytes, not by time: ``abt`` records are a
third the size of a call's ``calls`` records, so a fetch carries the ABT events of calls
whose own events come several fetches later. Folded as fetched, a call's state is written
once for its ABT event and again for its events, and the bulk fold of the call state is
bound by those writes. :class:`Alignment` releases records the way Kafka Streams picks the
next record of a task: for each partition number, only up to the *stream time* every topic
has reached on it (the timestamp of the last record seen there), so records written around
the same time are folded in the same batch. What is ahead waits in memory, its partition
paused until it is released (one fetch per partition at most). The partition with the least
stream time has all its records released, so the least always moves: nothing waits forever.

A topic's partition with nothing more to come (read to the high watermark of its last
fetch, or held at a :meth:`~.limits.Limits.stop_at` position) does not hold the others back.
Order within a partition is kept; across topics it was never given. Used by bulk folds only
(:class:`~.bulk.Bulk`): a live member must not wait for a quiet topic.

Scans: the records of one batch and those waiting, per partition number.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from ringlog.streams.consumer import LogConsumer, LogRecord
from ringlog.streams.offsets import Position

#: stream time of a partition with nothing more to come: it holds no other back
_NO_LIMIT = float("inf")


@dataclass
class Alignment:
    """Records waiting for the other topics, and each partition's stream time."""

    #: per partition, records fetched but not released yet (offset order)
    waiting: dict[Position, list[LogRecord]] = field(default_factory=dict)
    #: per partition, the greatest timestamp of the records fetched (released or waiting)
    stream_time: dict[Position, int] = field(default_factory=dict)
    #: partitions paused because records of theirs wait
    paused: set[Position] = field(default_factory=set)

    async def in_step(
        self,
        consumer: LogConsumer,
        parts: Mapping[Position, list[LogRecord]],
        topics: tuple[str, ...],
        *,
        stopped: Collection[Position],
    ) -> dict[Position, list[LogRecord]]:
        """:meth:`release` on ``consumer``'s partitions: those it does not hold, those
        ``stopped`` (held at a limit) and those read to their high watermark have nothing
        more to come. Partitions with records waiting are paused, the others resumed
        (unless ``stopped``). Call it after every fetch, empty or not."""
        held = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        done = {p for p in held if p in stopped or await consumer.at_end(TopicPartition(*p))}
        released = self.release(parts, topics, lambda p: p not in held or p in done)
        waiting = set(self.waiting)
        if waiting - self.paused:
            consumer.pause(TopicPartition(*p) for p in waiting - self.paused)
        ready = {p for p in self.paused - waiting if p not in stopped}
        if ready:
            consumer.resume(TopicPartition(*p) for p in ready)
        self.paused = waiting
        return released

    def release(
        self,
        parts: Mapping[Position, list[LogRecord]],
        topics: tuple[str, ...],
        exhausted: Callable[[Position], bool],
    ) -> dict[Position, list[LogRecord]]:
        """The records of ``parts`` and of those waiting that may be folded now, per
        partition; the rest wait. For partition number *n*, a record is released when its
        timestamp is at most the least stream time of ``topics``' partitions *n*, leaving
        out those ``exhausted`` (nothing more to come) and those never fetched; the
        records of a partition are released in order (a later one never before an
        earlier one)."""
        merged: dict[Position, list[LogRecord]] = {}
        for position in {*parts, *self.waiting}:
            fetched = parts.get(position) or []
            waiting = self.waiting.pop(position, None)
            records = waiting + fetched if waiting else fetched  # no copy when none waited
            if fetched:
                latest = max(r.timestamp_ms for r in fetched)
                self.stream_time[position] = max(self.stream_time.get(position, latest), latest)
            if records:
                merged[position] = records
        released: dict[Position, list[LogRecord]] = {}
        for position, records in merged.items():
            limit = self._limit(position[1], topics, exhausted)
            if self.stream_time[position] <= limit:  # the usual case: all of it, unscanned
                released[position] = records
                continue
            cut = 0
            while cut < len(records) and records[cut].timestamp_ms <= limit:
                cut += 1
            if cut:
                released[position] = records[:cut]
            if cut < len(records):
                self.waiting[position] = records[cut:]
        return released

    def _limit(
        self, number: int, topics: tuple[str, ...], exhausted: Callable[[Position], bool]
    ) -> float:
        """The least stream time of the partitions numbered ``number`` that still hold the
        others back (``-inf`` while one of them was never fetched)."""
        limit = _NO_LIMIT
        for topic in topics:
            position = (topic, number)
            if exhausted(position) and position not in self.waiting:
                continue
            seen = self.stream_time.get(position)
            if seen is None:
                return float("-inf")
            limit = min(limit, seen)
        return limit

    def forget(self, positions: set[Position]) -> None:
        """Drop what is kept for ``positions`` (no longer read here)."""
        for position in positions:
            self.waiting.pop(position, None)
            self.stream_time.pop(position, None)


__all__ = ["Alignment"]
