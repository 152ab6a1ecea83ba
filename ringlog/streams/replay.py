"""Reading whole topics from the beginning to their current end, in batches (no group).

This is the bulk path the design asks for: rebuilds and replays run the pure folds over
aiokafka batches rather than through a per-event stream processor. The end is fixed when the
read starts; records appended afterwards are left to the live consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.streams.consumer import LogRecord, to_log_record


async def read_to_end(
    kafka: KafkaSettings, topics: list[str], *, max_records: int = 10_000
) -> AsyncIterator[list[LogRecord]]:
    """Yield batches of every record in ``topics`` up to their end offsets at the start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-replay",
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=kafka.request_timeout_ms,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
    )
    try:
        await asyncio.wait_for(consumer.start(), kafka.request_timeout_ms / 1000)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
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
