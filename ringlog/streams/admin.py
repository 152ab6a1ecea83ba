"""Topic administration: create or check the declared topics, and list what a cluster holds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.streams.consumer import standalone_consumer
from ringlog.streams.offsets import Position, end_offsets
from ringlog.streams.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class EnsureResult:
    """What ``ensure_topics`` found or did for one declared topic."""

    name: str
    physical: str
    partitions_declared: int
    partitions_actual: int
    status: Literal["created", "exists", "mismatch"]


@dataclass(frozen=True)
class TopicInfo:
    """One topic as the cluster reports it; ``records`` is the exact number it holds."""

    name: str
    partitions: int
    records: int


@asynccontextmanager
async def admin_client(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """Yield a started admin client; an unreachable broker raises :class:`BrokerUnavailable`."""
    client = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-admin",
        request_timeout_ms=kafka.request_timeout_ms,
    )
    try:
        await asyncio.wait_for(client.start(), timeout=kafka.request_timeout_ms / 1000)
    except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as exc:
        await _close_quietly(client)
        raise BrokerUnavailable(kafka.bootstrap, _describe(exc)) from exc
    try:
        yield client
    finally:
        await client.close()


async def ensure_topics(
    kafka: KafkaSettings, specs: Sequence[TopicSpec], prefix: str | None = None
) -> list[EnsureResult]:
    """Create the declared topics that are missing and report how each existing one compares.

    A topic that exists with a different partition count is reported as ``mismatch``; it is
    never altered, because changing partitions moves keys between partitions.
    """
    prefix = kafka.topic_prefix if prefix is None else prefix
    by_physical = {f"{prefix}{s.name}": s for s in specs}
    async with admin_client(kafka) as admin:
        present = set(await admin.list_topics())
        existing = await partition_counts(admin, list(by_physical), present)
        missing = [p for p in by_physical if p not in existing]
        created: set[str] = set()
        if missing:
            new = [
                NewTopic(
                    p,
                    by_physical[p].partitions,
                    kafka.replication_factor,
                    topic_configs=by_physical[p].config(),
                )
                for p in missing
            ]
            response = await admin.create_topics(new)
            for topic, code, *_ in _topic_errors(response):
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise BrokerUnavailable(kafka.bootstrap, f"create {topic}: error {code}")
                if code == 0:
                    created.add(topic)
            existing.update(await partition_counts(admin, missing, set(missing)))
    results = []
    for physical, s in by_physical.items():
        actual = existing.get(physical, 0)
        if physical in created:
            status: Literal["created", "exists", "mismatch"] = "created"
        elif actual == s.partitions:
            status = "exists"
        else:
            status = "mismatch"
        results.append(EnsureResult(s.name, physical, s.partitions, actual, status))
    return results


async def topic_names(kafka: KafkaSettings) -> set[str]:
    """The names of every topic on the cluster (one metadata request; for readiness checks)."""
    async with admin_client(kafka) as admin:
        return set(await admin.list_topics())


async def list_topics(kafka: KafkaSettings, prefix: str | None = None) -> list[TopicInfo]:
    """List topics whose name starts with ``prefix`` with partition and exact record counts.

    A partition holds its end offset minus its start offset records (no topic is compacted and
    no record is transactional, so offsets are dense). The end is the exact one of
    :func:`~ringlog.streams.offsets.end_offsets`: on the embedded broker ListOffsets alone
    reports less (1 once a partition holds anything, with the log in object storage).
    """
    prefix = kafka.topic_prefix if prefix is None else prefix
    async with admin_client(kafka) as admin:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        counts = await partition_counts(admin, names, set(names))
    if not names:
        return []
    ends = await end_offsets(kafka, names)
    starts = await start_offsets(kafka, list(ends))
    records = dict.fromkeys(names, 0)
    for (topic, partition), end in ends.items():
        records[topic] += end - starts[(topic, partition)]
    return [TopicInfo(n, counts.get(n, 0), records[n]) for n in names]


async def start_offsets(kafka: KafkaSettings, positions: Sequence[Position]) -> dict[Position, int]:
    """The first offset still held by each partition (ListOffsets, earliest)."""
    if not positions:
        return {}
    consumer = standalone_consumer(kafka, "lister")
    tps = [TopicPartition(topic, partition) for topic, partition in positions]
    try:
        await asyncio.wait_for(consumer.start(), timeout=kafka.request_timeout_ms / 1000)
        starts = await consumer.beginning_offsets(tps)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(kafka.bootstrap, _describe(exc)) from exc
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): int(offset) for tp, offset in starts.items()}


async def delete_topics(kafka: KafkaSettings, physical_names: Sequence[str]) -> None:
    """Delete the named topics (used by tests and rebuilds); missing ones are ignored."""
    async with admin_client(kafka) as admin:
        present = set(await admin.list_topics())
        doomed = [n for n in physical_names if n in present]
        if doomed:
            await admin.delete_topics(doomed)


async def partition_counts(
    admin: AIOKafkaAdminClient, names: Sequence[str], present: Collection[str] | None = None
) -> dict[str, int]:
    """Partition counts of those ``names`` that exist (are in ``present``, when given): one
    describe request."""
    wanted = [n for n in names if present is None or n in present]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {
        d["topic"]: len(d["partitions"])
        for d in described
        if d.get("error_code", 0) == 0 and d.get("partitions")
    }


def _topic_errors(response: Any) -> list[tuple[str, int]]:
    # aiokafka renamed the attribute across versions (faust #633); accept both.
    errors = getattr(response, "topic_errors", None) or getattr(response, "topics", [])
    return [(e[0], e[1]) for e in errors]


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _close_quietly(client: AIOKafkaAdminClient) -> None:
    # the start failure is what the caller needs to see, not a failure to close
    with contextlib.suppress(Exception):
        await client.close()


async def group_members(kafka: KafkaSettings, group_id: str) -> int:
    """How many members consumer group ``group_id`` has now (0 when it is empty or unknown)."""
    async with admin_client(kafka) as admin:
        described = await admin.describe_consumer_groups([group_id])
    # DescribeGroups v0-v2 (what Tansu answers): (error, id, state, protocol type, protocol,
    # members); later versions add fields after the members
    return sum(len(group[5]) for response in described for group in response.groups)
