"""Reading topics in tests: whole-topic snapshots, waiting for conditions, group progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ringlog.config import KafkaSettings
from ringlog.schemas import Envelope
from ringlog.streams.consumer import LogRecord
from ringlog.streams.replay import read_to_end

T = TypeVar("T")


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
