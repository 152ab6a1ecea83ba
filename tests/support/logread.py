"""Reading topics in tests: whole-topic snapshots, waiting for conditions, group progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.schemas import Envelope
from ringlog.streams.consumer import LogRecord, standalone_consumer, to_log_record

T = TypeVar("T")


def consumed_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes,
    headers: tuple[tuple[str, bytes], ...],
) -> LogRecord:
    """A record given by its parts, as the consumer hands it over (decoded by
    :func:`~ringlog.streams.consumer.to_log_record`, failures captured)."""
    size = len(value)
    record = ConsumerRecord(
        topic, partition, offset, timestamp_ms, 0, key, value, None, 0, size, headers
    )
    return to_log_record(record)


async def records(kafka: KafkaSettings, topic: str) -> list[LogRecord]:
    """Every record on ``topic`` now, in partition order."""
    return [r async for batch in read_to_end(kafka, [topic]) for r in batch]


async def envelopes(kafka: KafkaSettings, topic: str, key: str | None = None) -> list[Envelope]:
    """The decoded events on ``topic`` (of one key, if given), in log order per partition."""
    found = [r.envelope for r in await records(kafka, topic) if r.envelope is not None]
    return [e for e in found if key is None or e.key == key]


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout_s: float = 45.0,
    interval_s: float = 0.2,
) -> T:
    """Call ``probe`` until ``done(result)``; return that result or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last: {result!r}")
        await asyncio.sleep(interval_s)


async def group_lag(kafka: KafkaSettings, group: str, topic: str) -> int:
    """How many records of ``topic`` the consumer group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return sum(
            max(0, ends[tp] - max(0, committed[tp].offset if tp in committed else 0))
            for tp in partitions
        )
    finally:
        await consumer.stop()
        await admin.close()


async def read_to_end(
    kafka: KafkaSettings,
    topics: list[str],
    *,
    max_records: int = 10_000,
) -> AsyncIterator[list[LogRecord]]:
    """Yield batches of every record in ``topics`` up to their end offsets at the start."""
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
