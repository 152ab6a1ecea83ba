"""How far a view must have folded before a read answers, and waiting until it has.

A view (the worker's call states, the timeline, the sessions view) is kept by the runtime with
a checkpoint: the next offset per ``(topic, partition)`` it has applied. Before it answers, a
read waits, bounded, until that checkpoint reaches a target per partition
(:func:`wait_covered`). What the target is, :class:`ReadAfter` says:

* by default, the writes this process's producer was acknowledged, and any positions the
  reader names (a write's or an earlier read's ``topic/partition:next_offset`` list, as
  :meth:`Coverage.header` writes it): no request to the broker at all, so a read costs the
  same however long the log is;
* ``head``: everything acknowledged on the log before the read began, from ListOffsets
  through one long-lived client (on the embedded broker ListOffsets can miss the tail of a
  multi-record batch; the process's own writes are always counted). That request costs what
  the broker makes it cost (on Tansu it grows with the batches a partition holds), so it is
  for reads off the hot path: CLIs, the task index, the session lookup on a cold cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.streams.consumer import standalone_consumer
from ringlog.streams.offsets import Position
from ringlog.streams.partitioner import partition_for
from ringlog.streams.producer import LogProducer


@dataclass(frozen=True)
class Coverage:
    """What a view reflected when it was read: its next offsets, and whether the wait for
    the log's end ran out first."""

    positions: dict[Position, int]
    behind: bool

    def header(self) -> str:
        """``topic/partition:next_offset`` pairs, comma-separated (the read's position)."""
        return positions_text(self.positions)


def positions_text(positions: Mapping[Position, int]) -> str:
    """``topic/partition:next_offset`` pairs, comma-separated, sorted: how a position is
    written in headers and read back by :meth:`ReadAfter.parse`."""
    return ",".join(f"{t}/{p}:{n}" for (t, p), n in sorted(positions.items()))


class PositionRefused(ValueError):
    """A position list that is not ``topic/partition:next_offset[,…]`` (the message says
    which part)."""


@dataclass(frozen=True)
class ReadAfter:
    """What a read must reflect besides this process's own acknowledged writes: the
    ``positions`` a reader names (the next offset per partition it has seen), or, with
    ``head``, everything acknowledged on the log before the read."""

    positions: Mapping[Position, int] = field(default_factory=dict)
    head: bool = False

    @classmethod
    def parse(cls, text: str | None) -> ReadAfter:
        """Read ``head`` or a ``topic/partition:next_offset[,…]`` list (the larger offset
        wins when a partition is named twice); None or blank is the default. Raises
        :class:`PositionRefused` for anything else."""
        if text is None or not text.strip():
            return cls()
        if text.strip().lower() == "head":
            return cls(head=True)
        positions: dict[Position, int] = {}
        for part in text.split(","):
            topic, slash, rest = part.strip().rpartition("/")
            partition, colon, offset = rest.partition(":")
            if not (topic and slash and colon and partition.isdigit() and offset.isdigit()):
                raise PositionRefused(
                    f"{part.strip()[:80]!r} is not topic/partition:next_offset (or give 'head')"
                )
            key = (topic, int(partition))
            positions[key] = max(positions.get(key, 0), int(offset))
        return cls(positions)


#: Read what the log held when the read began (one ListOffsets).
HEAD = ReadAfter(head=True)


class LogHead:
    """The log's end offsets for readers, through one client opened on first use."""

    def __init__(self, kafka: KafkaSettings, producer: LogProducer | None = None) -> None:
        self._kafka = kafka
        self._producer = producer
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._consumer is None:
                consumer = standalone_consumer(self._kafka, "head")
                try:
                    await asyncio.wait_for(consumer.start(), self._kafka.request_timeout_ms / 1000)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await consumer.stop()
                    raise BrokerUnavailable(self._kafka.bootstrap, str(exc) or "timeout") from exc
                self._consumer = consumer
            return self._consumer

    async def stop(self) -> None:
        """Close the client."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def partitions(self, topic: str) -> list[int]:
        """The partition numbers of ``topic`` (from metadata)."""
        consumer = await self._client()
        found = consumer.partitions_for_topic(topic)
        if not found:
            await consumer._client.force_metadata_update()  # a topic created since start
            found = consumer.partitions_for_topic(topic) or set()
        return sorted(found)

    async def partition_of(self, topic: str, key: str) -> int:
        """The partition the producer's partitioner gives ``key`` on ``topic``."""
        numbers = await self.partitions(topic)
        if not numbers:
            raise BrokerUnavailable(self._kafka.bootstrap, f"topic {topic} has no partitions")
        chosen = partition_for(key.encode(), numbers, numbers)
        return chosen

    async def targets(
        self, positions: Collection[Position], after: ReadAfter
    ) -> dict[Position, int]:
        """How far a view must have folded ``positions`` to answer a read made ``after``:
        the log's ends with ``head`` (one broker request), else this process's acknowledged
        writes and the positions the reader named (no request)."""
        if after.head:
            return await self.ends(positions)
        appended = self._producer.appended if self._producer is not None else {}
        return {
            p: max(appended.get(p, 0), after.positions.get(p, 0)) for p in sorted(set(positions))
        }

    async def ends(self, positions: Collection[Position]) -> dict[Position, int]:
        """The next offset to be written of each partition, as of now."""
        consumer = await self._client()
        wanted = [TopicPartition(t, p) for t, p in sorted(set(positions))]
        try:
            reported = await asyncio.wait_for(
                consumer.end_offsets(wanted), self._kafka.request_timeout_ms / 1000
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(self._kafka.bootstrap, str(exc) or "timeout") from exc
        ends = {(tp.topic, tp.partition): int(n) for tp, n in reported.items()}
        if self._producer is not None:
            for position in ends:
                ends[position] = max(ends[position], self._producer.appended.get(position, 0))
        return ends


async def wait_covered(
    checkpoint: Callable[[], Awaitable[Mapping[Position, int]]],
    ends: Mapping[Position, int],
    *,
    timeout_s: float = 2.0,
    interval_s: float = 0.02,
) -> Coverage:
    """Poll ``checkpoint`` until it reaches ``ends`` on every partition, at most ``timeout_s``.

    Returns the positions the view reached (of the partitions in ``ends``) and whether the
    wait ran out before.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        done = await checkpoint()
        reached = {position: done.get(position, 0) for position in ends}
        if all(reached[p] >= end for p, end in ends.items()):
            return Coverage(reached, behind=False)
        if time.monotonic() >= deadline:
            return Coverage(reached, behind=True)
        await asyncio.sleep(interval_s)
