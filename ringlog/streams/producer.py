"""Appending to the log: every append is acknowledged by all in-sync replicas before it returns.

The producer never retries behind the caller's back for longer than ``append_timeout_s``; a
broker that does not acknowledge in time raises :class:`BrokerUnavailable`, so an API can
answer 503 and the caller retries. Idempotence and transactions are enabled only when the
settings ask for them (the embedded Tansu broker refuses both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ringlog.config import KafkaSettings
from ringlog.errors import BrokerUnavailable
from ringlog.schemas import Envelope, encode, headers
from ringlog.schemas.codec import AsWritten
from ringlog.streams.consumer import follow
from ringlog.streams.lifecycle import AsyncService
from ringlog.streams.partitioner import partition_for
from ringlog.streams.topics import MAX_RECORD_BYTES

Headers = list[tuple[str, bytes]]
_GRACE_S = 1.0


@dataclass(frozen=True)
class RecordPosition:
    """Where an appended record landed."""

    topic: str
    partition: int
    offset: int


class LogProducer(AsyncService):
    """Appends envelopes (and, for quarantine, raw bytes) to the configured cluster.

    Use as ``async with LogProducer(settings) as log: await log.append(envelope)``.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._producer = self._make_producer()
        self._started = False
        self._starting = asyncio.Lock()
        #: the next offset after the last record this producer appended, per partition
        self.appended: dict[tuple[str, int], int] = {}

    def _make_producer(self) -> AIOKafkaProducer:
        kafka = self._kafka
        options: dict[str, Any] = {
            "bootstrap_servers": kafka.bootstrap,
            "client_id": kafka.client_id,
            "acks": "all",
            # aiokafka drops a batch it could not deliver within this time, so a failed append
            # is not delivered later behind the caller's back (a retry would then duplicate it)
            "request_timeout_ms": min(kafka.request_timeout_ms, int(kafka.append_timeout_s * 1000)),
            "enable_idempotence": kafka.enable_idempotence,
            "partitioner": partition_for,
            # a 2-hour call's webhook is ~1.4 MiB; aiokafka's default refuses records over 1 MiB
            "max_request_size": MAX_RECORD_BYTES,
        }
        return AIOKafkaProducer(**options)

    @property
    def started(self) -> bool:
        """Whether the producer is connected."""
        return self._started

    async def start(self) -> None:
        """Connect to the cluster; raises :class:`BrokerUnavailable` naming the address.

        Safe to call again after a failure: each attempt uses a fresh client.
        """
        async with self._starting:
            if self._started:
                return
            try:
                await asyncio.wait_for(
                    self._producer.start(), self._kafka.request_timeout_ms / 1000
                )
            except (KafkaError, OSError, TimeoutError) as exc:
                await self._producer.stop()
                self._producer = self._make_producer()
                reason = str(exc) or type(exc).__name__
                raise BrokerUnavailable(self._kafka.bootstrap, reason) from exc
            self._started = True

    async def stop(self) -> None:
        """Flush what is pending and disconnect; a producer that never connected (no append
        was made) is closed too, so nothing reports it as left open."""
        self._started = False
        await self._producer.stop()

    def topic_for(self, envelope: Envelope) -> str:
        """Return the physical topic an envelope belongs on (prefix + its family's topic)."""
        return f"{self._kafka.topic_prefix}{envelope.payload.topic}"

    async def append(
        self, envelope: Envelope, *, topic: str | None = None, as_written: AsWritten | None = None
    ) -> RecordPosition:
        """Append one envelope keyed by ``envelope.key`` and return where it landed.

        ``as_written`` stores the payload as it arrived, under the version it was written in
        (see :func:`ringlog.schemas.codec.encode`).
        """
        return await self.append_raw(
            topic or self.topic_for(envelope),
            encode(envelope, as_written=as_written),
            key=envelope.key.encode(),
            headers=headers(envelope, version=as_written[0] if as_written else None),
        )

    async def append_many(
        self, envelopes: Sequence[Envelope], *, topic: str | None = None
    ) -> list[RecordPosition]:
        """Append envelopes in order, batching the sends, and wait for every acknowledgement."""
        if not self._started:
            await self.start()
        futures = []
        try:
            for envelope in envelopes:
                futures.append(
                    await self._producer.send(
                        topic or self.topic_for(envelope),
                        encode(envelope),
                        key=envelope.key.encode(),
                        headers=headers(envelope),
                    )
                )
            timeout = self._kafka.append_timeout_s + _GRACE_S + len(futures) / 10_000
            metadata = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(self._kafka.bootstrap, str(exc) or type(exc).__name__) from exc
        for m in metadata:
            self._appended(m.topic, m.partition, m.offset)
        return [RecordPosition(m.topic, m.partition, m.offset) for m in metadata]

    async def append_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> RecordPosition:
        """Append bytes as given (quarantine, dead-letter); same acknowledgement guarantees.

        ``partition`` places the record there instead of the key's partition (a re-driven
        dead letter goes back where it was read)."""
        if not self._started:
            await self.start()

        try:
            # the producer's own timeout fires first; this is the backstop
            async with asyncio.timeout(self._kafka.append_timeout_s + _GRACE_S):
                future = await self._producer.send(
                    topic, value, key=key, headers=headers or [], partition=partition
                )
                meta = await future
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(self._kafka.bootstrap, str(exc) or type(exc).__name__) from exc
        self._appended(meta.topic, meta.partition, meta.offset)
        return RecordPosition(meta.topic, meta.partition, meta.offset)

    def _appended(self, topic: str, partition: int, offset: int) -> None:
        """Remember the furthest record appended to a partition (readers of views wait for it:
        a read after this process's write sees that write)."""
        follow(self.appended, topic, partition, offset)
