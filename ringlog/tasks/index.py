"""Which tasks exist: a fold of the log, caught up before it answers.

A task is *known* once the log holds any event for it: a record on ``tasks`` keyed by its id,
or a ``call.requested`` on ``calls`` whose ``task_ref`` is the id. It is *deleted* once a
``task.deleted`` is on ``tasks``; deletion is final (later events for the id do not revive it).

:class:`KnownTasks` is the pure fold. :class:`TaskIndex` keeps one in memory and, before each
answer, reads only what was appended to ``tasks`` and ``calls`` since its last read (from the
positions it stopped at, up to each partition's high watermark at the time of the read), so an
answer covers every writer — other API processes, ``POST /v1/calls``, replays — and every event
acknowledged before it was asked. The first answer of a process reads both topics from the
beginning; later ones read only the new tail. Only ``call.requested`` records are decoded;
the others are skipped by their ``ringlog-type`` header.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable, DecodeError, RetryableError
from ringlog.schemas import CallRequested, TaskDeleted, decode
from ringlog.schemas.codec import HEADER_TYPE
from ringlog.streams.consumer import standalone_consumer

TaskStatus = Literal["unknown", "live", "deleted"]
Position = tuple[str, int]

_CALL_REQUESTED = CallRequested.event_type.encode()
_TASK_DELETED = TaskDeleted.event_type


@dataclass
class KnownTasks:
    """The ids the log mentions as tasks and whether each was deleted (pure, no I/O)."""

    deleted: dict[str, bool] = field(default_factory=dict)

    def status(self, task_id: str) -> TaskStatus:
        """``unknown``, ``live`` or ``deleted``."""
        found = self.deleted.get(task_id)
        if found is None:
            return "unknown"
        return "deleted" if found else "live"

    def task_event(self, task_id: str, event_type: str | None) -> None:
        """Fold a record of ``tasks`` keyed by ``task_id`` (any type; undecodable ones too)."""
        if event_type == _TASK_DELETED:
            self.deleted[task_id] = True
        else:
            self.deleted.setdefault(task_id, False)

    def call_requested(self, task_ref: str | None) -> None:
        """Fold a ``call.requested`` that names ``task_ref`` (nothing when it names none)."""
        if task_ref:
            self.deleted.setdefault(task_ref, False)


class TaskIndex:
    """A :class:`KnownTasks` over this deployment's ``tasks`` and ``calls`` topics.

    Catch-ups in one process are serialised. :meth:`claim` lets one delete of a task run at a
    time in this process, so two concurrent deletes cannot both pass the check; deletes of one
    task racing in two processes can both be appended (a repeated ``task.deleted`` is harmless:
    every consumer treats it as the same tombstone).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        tasks_topic: str,
        calls_topic: str,
        budget_s: float = 10.0,
        max_records: int = 10_000,
    ) -> None:
        self._kafka = kafka
        self._tasks_topic = tasks_topic
        self._topics = (tasks_topic, calls_topic)
        self._budget_s = budget_s
        self._max_records = max_records
        self._known = KnownTasks()
        #: next offset to read per (topic, partition)
        self._positions: dict[Position, int] = {}
        self._lock = asyncio.Lock()
        self._claimed: set[str] = set()

    @property
    def positions(self) -> dict[Position, int]:
        """Where the index has read to: the next offset per ``(topic, partition)``."""
        return dict(self._positions)

    async def status(self, task_id: str) -> TaskStatus:
        """The task's status given everything acknowledged on the log before this call.

        Raises :class:`~ringlog.errors.RetryableError` when the broker does not answer, or when
        the catch-up did not finish within the budget (what it read is kept for the next call).
        """
        async with self._lock:
            await self._catch_up()
            return self._known.status(task_id)

    def claim(self, task_id: str) -> bool:
        """Claim the right to delete ``task_id`` in this process; False if already claimed."""
        if task_id in self._claimed:
            return False
        self._claimed.add(task_id)
        return True

    def release(self, task_id: str, *, deleted: bool) -> None:
        """End a claim; with ``deleted``, the task's ``task.deleted`` is on the log."""
        self._claimed.discard(task_id)
        if deleted:
            self._known.task_event(task_id, _TASK_DELETED)

    async def _catch_up(self) -> None:
        kafka = self._kafka
        consumer = standalone_consumer(kafka, "task-index")
        try:
            async with asyncio.timeout(self._budget_s):
                await consumer.start()
                await self._read_new(consumer)
        except TimeoutError as exc:
            raise RetryableError(
                "the task index is still reading the log; retry", retry_after=1.0
            ) from exc
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(kafka.bootstrap, str(exc) or type(exc).__name__) from exc
        finally:
            await consumer.stop()

    async def _read_new(self, consumer: AIOKafkaConsumer) -> None:
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise RetryableError(f"topic {topic} is missing", retry_after=1.0)
            partitions.extend(TopicPartition(topic, p) for p in sorted(numbers))
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, self._positions.get((tp.topic, tp.partition), 0))
        remaining = set(partitions)
        while remaining:
            fetched = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
            for tp, messages in fetched.items():
                self._fold(tp.topic, ((m.key, m.value, m.headers) for m in messages))
                if messages:
                    self._positions[(tp.topic, tp.partition)] = messages[-1].offset + 1
            for tp in list(remaining):
                # the high watermark comes from a fetch made during this read, so it covers
                # every record acknowledged before the read began
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    self._positions[(tp.topic, tp.partition)] = await consumer.position(tp)
                    remaining.discard(tp)
                    consumer.pause(tp)

    def _fold(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None, Iterable[tuple[str, bytes]]]],
    ) -> None:
        for key, value, headers in records:
            event_type = dict(headers).get(HEADER_TYPE)
            if topic == self._tasks_topic:
                if key:
                    self._known.task_event(
                        key.decode(), event_type.decode() if event_type else None
                    )
            elif event_type == _CALL_REQUESTED and value:
                try:
                    payload = decode(value).payload
                except DecodeError:
                    continue
                if isinstance(payload, CallRequested):
                    self._known.call_requested(payload.task_ref)
