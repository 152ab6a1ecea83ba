"""Exact end offsets of topics (the next offset to be written), on Kafka and on Tansu."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.streams.consumer import standalone_consumer
from ringlog.streams.lifecycle import AsyncService

#: A partition of a topic: ``(topic, partition)``.
Position = tuple[str, int]


class OffsetReader(AsyncService):
    """Reads exact end offsets through one client kept open, for a process that reads them
    often (a runner: on each assignment and every lag interval). One read at a time.

    ListOffsets alone is not enough: the embedded Tansu broker answers it with the base
    offset of the partition's last record batch + 1, so a batch of several records is
    under-counted. The high watermark of a fetch is exact on Tansu and Kafka alike, so every
    non-empty partition is fetched from its reported end - 1 and the larger value is kept.
    Between reads the client is assigned nothing, so it fetches nothing.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._consumer = standalone_consumer(kafka, "offsets", fetch_bytes=1_048_576)
        self._lock = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        """Connect; raises :class:`BrokerUnavailable` naming the address."""
        try:
            async with asyncio.timeout(self._kafka.request_timeout_ms / 1000):
                await self._consumer.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._consumer.stop()
            raise self._unavailable(exc) from exc
        self._started = True

    async def stop(self) -> None:
        """Disconnect."""
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def read(
        self, topics: Sequence[str], *, fresh: bool = False, timeout_s: float = 10.0
    ) -> dict[Position, int]:
        """The end offset of every partition of ``topics`` (a topic the broker does not know
        has none); raises :class:`BrokerUnavailable` when the broker does not answer.

        The topics' partitions come from the client's metadata, refreshed when a topic is
        missing from it, and with ``fresh`` always (a partition added since is then seen)."""
        consumer = self._consumer
        try:
            async with self._lock, asyncio.timeout(timeout_s):
                if fresh or any(consumer.partitions_for_topic(t) is None for t in topics):
                    await consumer._client.force_metadata_update()
                partitions = [
                    TopicPartition(topic, p)
                    for topic in topics
                    for p in sorted(consumer.partitions_for_topic(topic) or ())
                ]
                reported = await consumer.end_offsets(partitions) if partitions else {}
                nonempty = [tp for tp in partitions if reported[tp] > 0]
                ends = {tp: int(reported[tp]) for tp in partitions}
                if nonempty:
                    # a fresh assignment: no high watermark is known until fetched anew
                    consumer.assign(nonempty)
                    try:
                        for tp in nonempty:
                            consumer.seek(tp, reported[tp] - 1)
                        while any(consumer.highwater(tp) is None for tp in nonempty):
                            await consumer.getmany(timeout_ms=100)
                        for tp in nonempty:
                            ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                    finally:
                        consumer.unsubscribe()
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(self._kafka.bootstrap, str(exc) or type(exc).__name__)


async def end_offsets(
    kafka: KafkaSettings, topics: Sequence[str], *, timeout_s: float = 10.0
) -> dict[Position, int]:
    """The end offset of every partition of ``topics``, read once through a client of its
    own (see :class:`OffsetReader`)."""
    try:
        async with asyncio.timeout(timeout_s):
            async with OffsetReader(kafka) as reader:
                return await reader.read(topics, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise BrokerUnavailable(kafka.bootstrap, type(exc).__name__) from exc
