"""Reading whole topics from the beginning to their current end, in batches (no group).

This is the bulk path the design asks for: rebuilds and replays run the pure folds over
aiokafka batches rather than through a per-event stream processor. The end is fixed when the
read starts; records appended afterwards are left to the live consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.streams.consumer import LogRecord, standalone_consumer, to_log_record


async def read_key(kafka: KafkaSettings, topic: str, key: str) -> list[LogRecord]:
    """Every record of ``topic`` with ``key``, in log order, read from the key's one partition.

    The partition is the one the producer's default partitioner (murmur2, as Kafka's Java
    client) gives the key, so only that partition is read.
    """
    found: list[LogRecord] = []
    wanted = key.encode()
    async for batch in read_to_end(kafka, [topic], key=wanted):
        found.extend(r for r in batch if r.key == wanted)
    return found


async def read_to_end(
    kafka: KafkaSettings,
    topics: list[str],
    *,
    max_records: int = 10_000,
    key: bytes | None = None,
) -> AsyncIterator[list[LogRecord]]:
    """Yield batches of every record in ``topics`` up to their end offsets at the start.

    With ``key``, only the partition that key hashes to is read (other keys there still come).
    """
    consumer = standalone_consumer(kafka, "replay")
    try:
        await asyncio.wait_for(consumer.start(), kafka.request_timeout_ms / 1000)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            numbers = sorted(consumer.partitions_for_topic(topic) or ())
            if key is not None and numbers:
                numbers = [_partitioner(key, numbers, numbers)]
            partitions.extend(TopicPartition(topic, p) for p in numbers)
        if not partitions:
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        # a partition is done once its position reaches the end fixed above
        for tp in partitions:
            if tp not in remaining:
                consumer.pause(tp)
        while remaining:
            fetched = await consumer.getmany(timeout_ms=1_000, max_records=max_records)
            batch = [to_log_record(m) for msgs in fetched.values() for m in msgs]
            if batch:
                yield batch
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()


_partitioner = DefaultPartitioner()
