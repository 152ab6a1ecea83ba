"""Where the log ends now, and waiting until a view has folded that far (read-your-writes).

A view (the worker's call states, the timeline, the sessions view) is kept by the runtime with
a checkpoint: the next offset per ``(topic, partition)`` it has applied. A read that must see
every write acknowledged before it began asks :class:`LogHead` for the partitions' ends and
waits, bounded, until the view's checkpoint reaches them (:func:`wait_covered`). No record is
fetched: the ends come from ListOffsets through one long-lived client, raised to the offsets
this process's own producer was acknowledged (on the embedded broker ListOffsets can miss the
tail of a multi-record batch; a process's own writes are always counted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

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
        return ",".join(f"{t}/{p}:{n}" for (t, p), n in sorted(self.positions.items()))


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
