"""Reading the log in batches (aiokafka ``getmany``) with manual commits.

Each record is decoded into an :class:`~ringlog.schemas.Envelope`. A record that does not
decode is not raised: it comes back with ``error`` set and the raw bytes intact, so the caller
can dead-letter it and carry on with the rest of the partition. Offsets are committed only when
the caller says so, after its effects are durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable, DecodeError
from ringlog.schemas import REGISTRY, Envelope, decode
from ringlog.schemas.codec import HEADER_TYPE, HEADER_VERSION, written_as_named
from ringlog.streams.lifecycle import AsyncService


class LogRecord(msgspec.Struct, frozen=True, gc=False):
    """One consumed record: its position, raw parts, and the decoded envelope or the error.

    A Struct, not a NamedTuple: one is made per record read, and a Struct is made in a third
    of the time (``msgspec.structs.replace`` copies one with changes). Untracked by the cyclic
    garbage collector (``gc=False``, as envelopes and payloads): nothing it holds can refer
    back to it, and a bulk fold keeps hundreds of thousands alive at once."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    envelope: Envelope | None
    error: DecodeError | None
    #: on a re-driven copy of a dead letter, the processor it is for (:data:`HEADER_REDRIVE_FOR`)
    redriven_for: str | None = None


#: On a re-driven copy of a dead letter: the one processor that applies it (``projection:crm``;
#: see :mod:`ringlog.streams.deadletter`).
HEADER_REDRIVE_FOR = "ringlog-redrive-for"


@dataclass(frozen=True)
class Batch:
    """Records from one ``getmany`` call, per ``(topic, partition)``, each list in offset
    order (never empty): a caller does per partition what it can, not per record."""

    parts: dict[tuple[str, int], list[LogRecord]]

    @property
    def records(self) -> list[LogRecord]:
        """Every record of the batch, partition after partition."""
        return [r for records in self.parts.values() for r in records]

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Return, per partition, the offset to commit once every record here is handled."""
        return {TopicPartition(t, p): rs[-1].offset + 1 for (t, p), rs in self.parts.items()}


@dataclass(frozen=True)
class Slice:
    """Slice ``index`` of ``of``: the partitions whose number is ``index`` modulo ``of``, on
    every topic read. Co-partitioned topics (``calls`` and ``abt``) share partition numbers,
    so a slice holds every record of its keys; ``of`` members reading one slice each read
    every partition once."""

    index: int
    of: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.of:
            raise ValueError(f"slice {self.index} of {self.of} does not exist")

    def holds(self, partition: int) -> bool:
        """Whether ``partition`` (of any topic) is in this slice."""
        return partition % self.of == self.index


def next_offsets(records: Iterable[LogRecord]) -> dict[tuple[str, int], int]:
    """Per ``(topic, partition)``, the offset after the last of ``records``: where reading
    resumes once they are all handled (what a checkpoint or an offset commit stores)."""
    positions: dict[tuple[str, int], int] = {}
    for r in records:
        follow(positions, r.topic, r.partition, r.offset)
    return positions


def follow(positions: dict[tuple[str, int], int], topic: str, partition: int, offset: int) -> None:
    """Raise the partition's next offset in ``positions`` past ``offset`` (never lower it)."""
    key = (topic, partition)
    if positions.get(key, 0) <= offset:
        positions[key] = offset + 1


def to_log_record(msg: ConsumerRecord[bytes, bytes]) -> LogRecord:
    """Decode one aiokafka record; decoding failures are captured, never raised.

    The headers are read in one pass: the type and version they name let the body be
    validated in one pass too (see :func:`ringlog.schemas.decode`)."""
    headers = msg.headers  # a tuple already: kept as it is
    event_type = version = redrive = None
    for name, value in headers:
        if name == HEADER_TYPE:
            event_type = value
        elif name == HEADER_VERSION:
            version = value
        elif name == HEADER_REDRIVE_FOR:
            redrive = value.decode(errors="replace")
    value = msg.value or b""
    try:
        envelope = decode(value, REGISTRY, written_as=written_as_named(event_type, version))
    except DecodeError as exc:
        return LogRecord(
            msg.topic, msg.partition, msg.offset, msg.timestamp, msg.key, value, headers, None,
            exc, redrive,
        )  # fmt: skip
    return LogRecord(
        msg.topic, msg.partition, msg.offset, msg.timestamp, msg.key, value, headers, envelope,
        None, redrive,
    )  # fmt: skip


def standalone_consumer(
    kafka: KafkaSettings, role: str, *, fetch_bytes: int | None = None
) -> AIOKafkaConsumer:
    """A consumer in no group (nothing committed), for reading end offsets or whole topics.

    ``role`` is added to the client id the broker sees. Fetches use the configured sizes, or
    ``fetch_bytes`` for both limits (reads of a few records). Not started.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-{role}",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=kafka.request_timeout_ms,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        fetch_max_bytes=fetch_bytes or kafka.fetch_max_bytes,
        max_partition_fetch_bytes=fetch_bytes or kafka.max_partition_fetch_bytes,
    )


class LogConsumer(AsyncService):
    """A consumer-group member reading batches of decoded records; commits are manual.

    Partitions are assigned by range, topic by topic: topics with the same partition count
    (``calls`` and ``abt``, both keyed by call ref) give a member the same partition numbers,
    so one member holds all of a key's records. ``alone`` (a rebuild's reader, the only one of
    its group by construction) takes every partition at start without joining the group, and
    commits its offsets under ``group_id`` all the same: a join costs ~2 s on the embedded
    broker. With ``only`` too, it takes the partitions of that :class:`Slice` (a rebuild
    spread over processes, one slice each)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        *,
        group_id: str | None,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        max_records: int = 5_000,
        alone: bool = False,
        only: Slice | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._max_records = max_records
        #: every partition assigned at start, no group membership (see :meth:`start`)
        self._alone = alone
        self._only = only
        self._consumer = AIOKafkaConsumer(
            *([] if alone else self._topics),
            bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-consumer",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            request_timeout_ms=max(kafka.request_timeout_ms, kafka.session_timeout_ms + 5_000),
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            fetch_max_bytes=kafka.fetch_max_bytes,
            max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        self._started = False

    async def start(self) -> None:
        """Join the group; raises :class:`BrokerUnavailable` naming the address."""
        # joining a group takes up to a session timeout on top of the usual round trips
        timeout_s = (self._kafka.request_timeout_ms + self._kafka.session_timeout_ms) / 1000
        try:
            await asyncio.wait_for(self._consumer.start(), timeout_s)
            if self._alone:
                await self._consumer._client.force_metadata_update()
                self._consumer.assign(
                    [
                        TopicPartition(topic, p)
                        for topic in self._topics
                        for p in sorted(self._consumer.partitions_for_topic(topic) or ())
                        if self._only is None or self._only.holds(p)
                    ]
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._consumer.stop()
            raise BrokerUnavailable(self._kafka.bootstrap, str(exc) or type(exc).__name__) from exc
        self._started = True

    async def stop(self) -> None:
        """Leave the group without committing anything."""
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def getmany(self, timeout_ms: int = 1_000) -> Batch:
        """Return the next batch (possibly empty after ``timeout_ms``), decoded."""
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self._max_records)
        return Batch(
            {
                (tp.topic, tp.partition): [to_log_record(m) for m in msgs]
                for tp, msgs in fetched.items()
                if msgs
            }
        )

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offset to read per partition), or the current position."""
        if offsets is None:
            await self._consumer.commit()
        elif offsets:
            await self._consumer.commit(offsets)

    async def committed(self, tp: TopicPartition) -> int | None:
        """Return the group's committed offset for ``tp``, if any."""
        result: int | None = await self._consumer.committed(tp)
        return result

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        """Move the read position of an assigned partition (used to resume from a checkpoint)."""
        self._consumer.seek(tp, offset)

    async def at_end(self, tp: TopicPartition) -> bool:
        """Whether every record of ``tp`` up to the high watermark of its last fetch has
        been returned (``False`` before a first fetch answered)."""
        highwater = self._consumer.highwater(tp)
        return highwater is not None and await self._consumer.position(tp) >= highwater

    def pause(self, tps: Iterable[TopicPartition]) -> None:
        """Fetch nothing more from ``tps`` until :meth:`resume`."""
        self._consumer.pause(*tps)

    def resume(self, tps: Iterable[TopicPartition]) -> None:
        """Fetch from paused ``tps`` again."""
        self._consumer.resume(*tps)

    def assignment(self) -> set[TopicPartition]:
        """Return the partitions currently assigned to this member."""
        return set(self._consumer.assignment())
