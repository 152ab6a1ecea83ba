"""Exact end offsets of topics (the next offset to be written), on Kafka and on Tansu."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.streams.consumer import standalone_consumer

#: A partition of a topic: ``(topic, partition)``.
Position = tuple[str, int]


async def end_offsets(
    kafka: KafkaSettings, topics: Sequence[str], *, timeout_s: float = 10.0
) -> dict[Position, int]:
    """Return the end offset (next offset to be written) of every partition of ``topics``.

    ListOffsets alone is not enough: the embedded Tansu broker answers it with the base
    offset of the partition's last record batch + 1, so a batch of several records is
    under-counted. The high watermark of a fetch is exact on Tansu and Kafka alike, so every
    non-empty partition is fetched from its reported end - 1 and the larger value is kept.
    """
    consumer = standalone_consumer(kafka, "offsets", fetch_bytes=1_048_576)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            reported = await consumer.end_offsets(partitions) if partitions else {}
            nonempty = [tp for tp in partitions if reported[tp] > 0]
            if nonempty:
                consumer.assign(nonempty)
                for tp in nonempty:
                    consumer.seek(tp, reported[tp] - 1)
                while any(consumer.highwater(tp) is None for tp in nonempty):
                    await consumer.getmany(timeout_ms=100)
            ends = {tp: int(reported[tp]) for tp in partitions}
            for tp in nonempty:
                ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}
