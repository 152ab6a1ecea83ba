"""Produce and consume N envelopes through ringlog's log client and through raw aiokafka.

Both run in the same process against the same broker, one single-partition topic each, so the
ratio shows what ringlog's encoding, headers and decoding cost. Run: ``python -m bench.logclient
[N]`` (default 100000). Prints records/s for each path, the ratio, and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.broker import bench_settings
from ringlog.config import KafkaSettings
from ringlog.schemas import Envelope, encode
from ringlog.schemas.calls import CallRequested
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.consumer import LogConsumer
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import TopicSpec


@dataclass
class Result:
    """Rates of one path."""

    name: str
    produce_per_s: float
    consume_per_s: float


def envelopes(n: int) -> list[Envelope]:
    """N small call-requested envelopes over 1000 call refs."""
    return [
        Envelope.new(
            CallRequested(
                call_ref=f"call-{i % 1000}",
                to_number="+15550001111",
                from_number="+15550002222",
                agent_id="agent-1",
                metadata={"i": str(i)},
            ),
            source="bench",
        )
        for i in range(n)
    ]


async def raw_path(kafka: KafkaSettings, topic: str, values: list[tuple[bytes, bytes]]) -> Result:
    """Pre-encoded bytes through bare aiokafka, acks=all; consume without decoding."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    start = time.perf_counter()
    futures = [await producer.send(topic, v, key=k) for k, v in values]
    await asyncio.gather(*futures)
    produce = len(values) / (time.perf_counter() - start)
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
    )
    await consumer.start()
    start, seen = time.perf_counter(), 0
    while seen < len(values):
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        seen += sum(len(m) for m in batch.values())
    consume = seen / (time.perf_counter() - start)
    await consumer.commit()
    await consumer.stop()
    return Result("raw aiokafka", produce, consume)


async def ringlog_path(kafka: KafkaSettings, topic: str, items: list[Envelope]) -> Result:
    """Envelopes through LogProducer.append_many; LogConsumer decodes every record."""
    async with LogProducer(kafka) as log:
        start = time.perf_counter()
        await log.append_many(items, topic=topic)
        produce = len(items) / (time.perf_counter() - start)
    group = f"bench-ringlog-{uuid.uuid4().hex[:6]}"
    async with LogConsumer(kafka, [topic], group_id=group) as consumer:
        start, seen = time.perf_counter(), 0
        while seen < len(items):
            batch = await consumer.getmany(timeout_ms=1000)
            seen += len(batch.records)
        consume = seen / (time.perf_counter() - start)
        await consumer.commit(batch.next_offsets())
    return Result("ringlog", produce, consume)


async def run(n: int, kafka: KafkaSettings) -> list[Result]:
    """Run both paths on fresh single-partition topics and delete them afterwards."""
    tag = uuid.uuid4().hex[:8]
    specs = [TopicSpec(f"raw-{tag}", "", "", 1), TopicSpec(f"ringlog-{tag}", "", "", 1)]
    await ensure_topics(kafka, specs, prefix="bench.")
    items = envelopes(n)
    raw_values = [(e.key.encode(), encode(e)) for e in items]
    # the inputs live for the whole run; keep the cyclic GC from re-scanning them on every
    # collection, which would charge the benchmark's own fixtures to whichever path runs
    gc.collect()
    gc.freeze()
    try:
        raw = await raw_path(kafka, f"bench.raw-{tag}", raw_values)
        ours = await ringlog_path(kafka, f"bench.ringlog-{tag}", items)
    finally:
        await delete_topics(kafka, [f"bench.{s.name}" for s in specs])
    return [raw, ours]


def main(argv: list[str] | None = None) -> None:
    """Parse N, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    args = parser.parse_args(argv)
    with bench_settings() as settings:
        raw, ours = asyncio.run(run(args.n, settings.kafka))
    print(f"log client, N={args.n}, broker {settings.kafka.bootstrap}")
    print(f"{'path':<14}{'produce rec/s':>16}{'consume rec/s':>16}")
    for r in (raw, ours):
        print(f"{r.name:<14}{r.produce_per_s:>16,.0f}{r.consume_per_s:>16,.0f}")
    print(
        f"{'ratio':<14}{ours.produce_per_s / raw.produce_per_s:>16.2f}"
        f"{ours.consume_per_s / raw.consume_per_s:>16.2f}"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
