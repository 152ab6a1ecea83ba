"""The fold rate of the runtime against a raw consumer: ``NoOpTarget`` (a projection target
that keeps nothing), ``runtime_rate`` (a ``ProjectionRunner`` over a topic in a fresh group),
``raw_rate`` (a bare aiokafka consumer over the same partitions to the same ends) and
``fold_rates`` (the two, alternating first, as ``bench.scale`` measures them per round).
``NoOpTarget`` and ``raw_rate`` are shared with ``bench.replay``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.progress import say
from bench.timing import Timed
from ringlog.config import Settings
from ringlog.projections.base import Event, Projection
from ringlog.projections.runner import ProjectionRunner
from ringlog.streams.offsets import Position, end_offsets


class NoOpTarget:
    """A target that keeps nothing: the runner's own cost only."""

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        return {}

    async def apply(
        self, projection: str, operations: Sequence[Event], positions: Mapping[Position, int]
    ) -> None:
        return None

    def hold(self, projection: str) -> None:
        return None


async def runtime_rate(settings: Settings, topic: str) -> tuple[int, float, float]:
    """A runner in a fresh group over ``topic``; records, start-up s, join → last apply s."""
    timed = Timed(NoOpTarget())
    runner: ProjectionRunner[Event] = ProjectionRunner(
        settings.kafka,
        Projection(name="bench-scale-noop", topics=(topic,), project=list),
        timed,
        group_id=f"bench-scale-noop-{uuid.uuid4().hex[:6]}",
        deadletter_topic=settings.topic("deadletter"),
        max_records=settings.worker.max_records,
    )
    records = sum((await end_offsets(settings.kafka, [topic])).values())
    startup, work = await timed.run(runner, settings.kafka)
    return records, startup, work


async def raw_rate(settings: Settings, topic: str) -> tuple[int, float]:
    """A bare aiokafka consumer (no group, values untouched) over every partition of
    ``topic`` from the beginning to the ends read first; records and seconds."""
    kafka = settings.kafka
    ends = await end_offsets(kafka, [topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, p in sorted(ends)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if ends[(tp.topic, tp.partition)] > 0}
        seen = 0
        started = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.worker.max_records)
            for tp, messages in batch.items():
                seen += len(messages)
                if messages and messages[-1].offset + 1 >= ends[(tp.topic, tp.partition)]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return seen, time.perf_counter() - started
    finally:
        await consumer.stop()


async def fold_rates(settings: Settings, index: int) -> tuple[float, float, float]:
    """The runtime's and the raw consumer's rates over ``calls`` (rec/s) and the runtime's
    start-up (s), once; the two alternate going first from round to round."""
    topic = settings.topic("calls")
    if index % 2 == 0:
        records, startup, work = await runtime_rate(settings, topic)
        raw_records, raw_s = await raw_rate(settings, topic)
    else:
        raw_records, raw_s = await raw_rate(settings, topic)
        records, startup, work = await runtime_rate(settings, topic)
    runtime, raw = records / work, raw_records / raw_s
    say(
        f"round {index + 1}: runtime {runtime:,.0f} rec/s "
        f"(start-up {startup:.2f} s), raw {raw:,.0f} rec/s, ratio {runtime / raw:.2f}"
    )
    return runtime, startup, raw
