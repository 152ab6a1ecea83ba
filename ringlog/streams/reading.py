"""Reading one partition between two points, for tools that look back (replay, time travel).

:func:`read_partition` reads one partition, in no consumer group (nothing is committed), from
a start offset (its first record by default) up to a stop: the partition's end as the reads
find it (the fetch's high watermark, exact on Tansu and Kafka alike), or the first record
stamped after an instant (the broker's time index, ``ListOffsets`` by timestamp). It reads
nothing else: the cost is the records in that range.

:func:`first_timestamps` reads where the log starts: the timestamp of the first record still
held by each partition of some topics (one small fetch per partition).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable, ConfigurationError
from ringlog.streams.consumer import LogRecord, standalone_consumer, to_log_record
from ringlog.streams.partitioner import partition_for

#: How long a read may go without receiving anything before the broker is judged unavailable.
_STALL_S = 15.0
_POLL_MS = 500


async def _started(kafka: KafkaSettings, role: str, fetch_bytes: int | None) -> AIOKafkaConsumer:
    consumer = standalone_consumer(kafka, role, fetch_bytes=fetch_bytes)
    try:
        await asyncio.wait_for(consumer.start(), kafka.request_timeout_ms / 1000)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    return consumer


def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The partition numbers of ``topic`` as the consumer's metadata has them (sorted)."""
    return sorted(consumer.partitions_for_topic(topic) or ())


async def key_partition(kafka: KafkaSettings, topic: str, key: bytes) -> int:
    """The partition of ``topic`` the producer's partitioner gives ``key`` (from metadata);
    :class:`~ringlog.errors.ConfigurationError` when the topic does not exist."""
    consumer = await _started(kafka, "partitions", None)
    try:
        numbers = partitions_of(consumer, topic)
    finally:
        await consumer.stop()
    if not numbers:
        raise ConfigurationError(f"topic {topic} does not exist: run `ringlog topics ensure`")
    return partition_for(key, numbers, numbers)


async def stop_offset(
    consumer: AIOKafkaConsumer, tp: TopicPartition, until: datetime
) -> int | None:
    """The first offset of ``tp`` whose record is stamped after ``until``, or ``None`` when
    every record is stamped at or before it (the broker's time index; Tansu answers that case
    with a timestamp of -1)."""
    after_ms = int(until.timestamp() * 1000) + 1
    found = (await consumer.offsets_for_times({tp: after_ms})).get(tp)
    if found is None or found.offset < 0 or found.timestamp < 0:
        return None
    return int(found.offset)


async def read_partition(
    kafka: KafkaSettings,
    topic: str,
    partition: int,
    *,
    start: int = 0,
    until: datetime | None = None,
    role: str = "reader",
    max_records: int = 5_000,
) -> AsyncIterator[list[LogRecord]]:
    """Yield the records of ``topic``/``partition`` in batches, in offset order: from ``start``
    (or the first record still held, if later) to the partition's end, or, with ``until``, to
    the last record stamped at or before that instant. Raises :class:`BrokerUnavailable` when
    the broker does not answer, or sends nothing for 15 s while records remain."""
    consumer = await _started(kafka, role, None)
    tp = TopicPartition(topic, partition)
    try:
        try:
            if partition not in partitions_of(consumer, topic):
                raise ConfigurationError(f"topic {topic} has no partition {partition}")
            consumer.assign([tp])
            first = max(start, int((await consumer.beginning_offsets([tp]))[tp]))
            stop = None if until is None else await stop_offset(consumer, tp, until)
            if stop is not None and first >= stop:
                return
            consumer.seek(tp, first)
            last_progress = time.monotonic()
            while True:
                fetched = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=max_records)
                messages = fetched.get(tp, [])
                batch = [to_log_record(m) for m in messages if stop is None or m.offset < stop]
                if batch:
                    yield batch
                position = await consumer.position(tp)
                if stop is not None and position >= stop:
                    return
                highwater = consumer.highwater(tp)
                if highwater is not None and position >= highwater:
                    return
                if messages:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > _STALL_S:
                    raise BrokerUnavailable(
                        kafka.bootstrap, f"{topic}/{partition} sent nothing for {_STALL_S:.0f} s"
                    )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    finally:
        await consumer.stop()


async def first_timestamps(
    kafka: KafkaSettings, topics: Sequence[str], *, timeout_s: float = 10.0
) -> dict[tuple[str, int], datetime]:
    """The timestamp of the first record each non-empty partition of ``topics`` still holds
    (one small fetch per partition; empty partitions are left out)."""
    consumer = await _started(kafka, "start", 65_536)
    try:
        async with asyncio.timeout(timeout_s):
            tps = [TopicPartition(t, p) for t in topics for p in partitions_of(consumer, t)]
            if not tps:
                return {}
            begins = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            nonempty = [tp for tp in tps if ends[tp] > begins[tp]]
            found: dict[tuple[str, int], datetime] = {}
            if not nonempty:
                return found
            consumer.assign(nonempty)
            for tp in nonempty:
                consumer.seek(tp, begins[tp])
            while len(found) < len(nonempty):
                fetched = await consumer.getmany(timeout_ms=_POLL_MS, max_records=len(nonempty))
                for tp, messages in fetched.items():
                    if messages and (tp.topic, tp.partition) not in found:
                        stamp = datetime.fromtimestamp(messages[0].timestamp / 1000, UTC)
                        found[(tp.topic, tp.partition)] = stamp
                        consumer.pause(tp)
            return found
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    finally:
        await consumer.stop()


__all__ = ["first_timestamps", "key_partition", "partitions_of", "read_partition", "stop_offset"]


async def offsets_at(
    kafka: KafkaSettings, topics: Sequence[str], at: datetime
) -> dict[tuple[str, int], int]:
    """Per partition of ``topics``, the position just after the last record stamped at or
    before ``at`` (its end when every record is): what a processor has read once it has
    read the log up to that instant. One time-index lookup per partition."""
    from ringlog.streams.offsets import end_offsets  # exact on Tansu too

    ends = await end_offsets(kafka, topics)
    consumer = await _started(kafka, "positions", None)
    try:
        found: dict[tuple[str, int], int] = {}
        for (topic, partition), end in sorted(ends.items()):
            stop = await stop_offset(consumer, TopicPartition(topic, partition), at)
            found[(topic, partition)] = end if stop is None else stop
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
    finally:
        await consumer.stop()
    return found
