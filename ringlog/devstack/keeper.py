"""The log keeper of the embedded stack: the log survives a restart of the in-memory broker.

``python -m ringlog.devstack.keeper --archive <home>/log --bootstrap <broker> --port <p>``

1. **Restore.** When the broker holds no records and the archive
   (:mod:`ringlog.devstack.archive`) holds some, every archived topic is created again with
   its partition count and its records are written back, partition by partition in offset
   order, so each lands at the offset it had. The ends are checked against the archive;
   a difference stops the keeper with an error (the stack then does not start).
2. **Ready.** Only then the keeper listens on ``--port``: the stack waits for that before it
   starts anything that writes.
3. **Keep.** It reads every partition of every topic from the archive's end on and appends
   what it reads, synced to disk at least every :data:`SYNC_EVERY_S`. Topics made later are
   found by a metadata refresh every :data:`TOPICS_EVERY_S`; a deleted topic is dropped from
   the archive, one made again from scratch (its end below the archive's) is archived anew.
4. **Stop.** On SIGTERM it reads to the log's end (the writers are stopped first), syncs, and
   marks the archive clean. Killed instead, the mark is missing at the next start, and the
   stack resets the stores that may be ahead of the archive (:mod:`ringlog.devstack.stack`).

Cost: each record is read once and written once; a restart writes the whole archive back
(measured in ``bench/README.md``). Production runs on Kafka, whose log is durable itself.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from ringlog.config import KafkaSettings
from ringlog.devstack.archive import ArchivedRecord, LogArchive
from ringlog.devstack.supervise import run_until_stopped
from ringlog.streams.offsets import end_offsets

log = structlog.get_logger("ringlog.keeper")

#: Appended records are on disk this long after they were read, at most.
SYNC_EVERY_S = 0.5
#: How often the keeper looks for topics made or deleted since.
TOPICS_EVERY_S = 1.0
#: On a stop, how long the keeper may read to the log's end before it gives up (unclean).
FINAL_READ_S = 2.5
#: Records written back per await during a restore.
RESTORE_WINDOW = 5_000


class RestoreError(Exception):
    """The broker did not take the archive back as it was."""


class Keeper:
    """Restores the archive into the broker, then archives everything written to it."""

    def __init__(self, archive: LogArchive, bootstrap: str) -> None:
        self.archive = archive
        self.bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="ringlog-keeper",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        #: next offset to archive, per partition kept
        self._next: dict[TopicPartition, int] = {}

    async def start(self) -> int:
        """Connect and restore the archive when the broker is empty; return records restored."""
        await _retrying(self._consumer.start)
        present = await self._broker_topics()
        ends = await self._consumer.end_offsets(
            [TopicPartition(t, p) for t, n in present.items() for p in range(n)]
        )
        restored = 0
        if not any(ends.values()) and not self.archive.is_empty():
            restored = await self._restore()
            present = await self._broker_topics()
        self.archive.mark_clean(False)
        self._follow(present)
        return restored

    async def keep(self, stop: asyncio.Event) -> None:
        """Archive until ``stop`` is set, then read to the end and mark the archive clean."""
        last_topics = last_sync = time.monotonic()
        while not stop.is_set():
            await self._read_once(timeout_ms=200)
            now = time.monotonic()
            if now - last_sync >= SYNC_EVERY_S:
                self.archive.sync()
                last_sync = now
            if now - last_topics >= TOPICS_EVERY_S:
                self._follow(await self._broker_topics())
                last_topics = now
        complete = await self._read_to_end(FINAL_READ_S)
        self.archive.close()
        self.archive.mark_clean(complete)
        log.info("keeper stopped", complete=complete)

    async def stop(self) -> None:
        """Close the client."""
        await self._consumer.stop()

    # -- restore ----------------------------------------------------------------------------

    async def _restore(self) -> int:
        topics = self.archive.topics()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="ringlog-keeper")
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="ringlog-keeper",
            acks="all",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=16 * 1024 * 1024,
        )
        await producer.start()
        written = 0
        expected: dict[TopicPartition, int] = {}
        started = time.monotonic()
        try:
            for topic, partitions in topics.items():
                for partition in range(partitions):
                    count = await self._restore_partition(producer, topic, partition)
                    expected[TopicPartition(topic, partition)] = count
                    written += count
            await producer.flush()
        finally:
            await producer.stop()
        exact = await end_offsets(KafkaSettings(bootstrap=self.bootstrap), list(topics))
        wrong = {
            f"{tp.topic}/{tp.partition}": (exact.get((tp.topic, tp.partition)), n)
            for tp, n in expected.items()
            if exact.get((tp.topic, tp.partition)) != n
        }
        if wrong:
            raise RestoreError(f"the broker's ends differ from the archive's: {wrong}")
        log.warning(
            "log restored from the archive",
            records=written,
            topics=len(topics),
            seconds=round(time.monotonic() - started, 1),
        )
        return written

    async def _restore_partition(
        self, producer: AIOKafkaProducer, topic: str, partition: int
    ) -> int:
        pending: list[asyncio.Future[object]] = []
        count = 0
        for record in self.archive.records(topic, partition):
            if record.offset != count:
                raise RestoreError(
                    f"{topic}/{partition}: the archive has offset {record.offset} at {count}"
                )
            pending.append(
                await producer.send(
                    topic,
                    record.value,
                    key=record.key,
                    partition=partition,
                    timestamp_ms=record.timestamp_ms,
                    headers=list(record.headers),
                )
            )
            count += 1
            if len(pending) >= RESTORE_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return count

    # -- keep -------------------------------------------------------------------------------

    async def _broker_topics(self) -> dict[str, int]:
        """``{topic: partition count}`` on the broker now (metadata of all topics)."""
        client = self._consumer._client
        await client.force_metadata_update()
        found = {}
        for name in client.cluster.topics():
            partitions = client.cluster.partitions_for_topic(name)
            if partitions:
                found[name] = len(partitions)
        return found

    def _follow(self, present: Mapping[str, int]) -> None:
        """Keep exactly the topics on the broker: archive new ones, drop deleted ones."""
        archived = self.archive.topics()
        for topic in set(archived) - set(present):
            self.archive.forget(topic)
        for topic, partitions in present.items():
            if archived.get(topic) != partitions:
                if topic in archived:
                    self.archive.forget(topic)  # made again with another shape
                self.archive.declare(topic, partitions)
        wanted = {TopicPartition(t, p) for t, n in present.items() for p in range(n)}
        if wanted == set(self._next):
            return
        self._next = {
            tp: self._next.get(tp, self.archive.next_offset(tp.topic, tp.partition))
            for tp in wanted
        }
        self._consumer.assign(sorted(wanted))
        # assign() makes the client ask metadata for these topics by name, and a request by
        # name lets the broker create a topic that is missing (aiokafka sends
        # allow_auto_topic_creation=true and has no option for it): a topic deleted while
        # assigned would come back with the broker's default shape. An empty set asks for
        # all topics, which never creates one, and covers every topic the keeper reads.
        self._consumer._client.set_topics([])
        for tp, offset in self._next.items():
            self._consumer.seek(tp, offset)

    async def _read_once(self, timeout_ms: int) -> int:
        if not self._next:
            await asyncio.sleep(timeout_ms / 1000)
            return 0
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=20_000)
        except OffsetOutOfRangeError as exc:
            self._start_over(exc.args[0] if exc.args else {})
            return 0
        count = 0
        for tp, messages in batches.items():
            if tp not in self._next:
                continue
            records = [
                ArchivedRecord(
                    m.offset,
                    m.timestamp,
                    m.key,
                    m.value,
                    tuple((name, bytes(value)) for name, value in m.headers),
                )
                for m in messages
                if m.offset >= self._next[tp]
            ]
            self.archive.append(tp.topic, tp.partition, records)
            if records:
                self._next[tp] = records[-1].offset + 1
            count += len(records)
        return count

    def _start_over(self, positions: Mapping[TopicPartition, int]) -> None:
        """Partitions now shorter than their archive: the topic was made again; archive it
        anew from offset 0."""
        for topic in {tp.topic for tp in positions}:
            partitions = len([tp for tp in self._next if tp.topic == topic])
            self.archive.forget(topic)
            self.archive.declare(topic, partitions)
            for tp in [tp for tp in self._next if tp.topic == topic]:
                self._next[tp] = 0
                self._consumer.seek(tp, 0)
            log.warning("topic made again: archived anew", topic=topic)

    async def _read_to_end(self, budget_s: float) -> bool:
        """Read until every kept partition is archived to its end; False if the time ran out
        or the broker did not answer."""
        deadline = time.monotonic() + budget_s
        try:
            while time.monotonic() < deadline:
                ends = await asyncio.wait_for(
                    self._exact_ends(await self._consumer.end_offsets(list(self._next))),
                    max(0.1, deadline - time.monotonic()),
                )
                if all(self._next[tp] >= end for tp, end in ends.items()):
                    return True
                await self._read_once(timeout_ms=100)
        except (KafkaError, OSError, TimeoutError):
            log.warning("keeper: broker gone before the log was read to its end")
        return False

    async def _exact_ends(
        self, reported: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """The exact ends of partitions this consumer fetches: Tansu's ListOffsets can answer
        less than the end (it counts to the start of the last batch), the high watermark of
        the last fetch does not."""
        ends = dict(reported)
        for tp, end in reported.items():
            if end > 0:
                high = self._consumer.highwater(tp)
                if high is not None:
                    ends[tp] = max(end, high)
        return ends


async def _retrying(start: object, timeout_s: float = 30.0) -> None:
    """Call ``start`` until the broker answers (it may still be starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await start()  # type: ignore[operator]
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _serve_ready(port: int) -> asyncio.Server:
    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", port)


async def _main(archive_root: Path, bootstrap: str, port: int, stop: asyncio.Event) -> None:
    keeper = Keeper(LogArchive(archive_root), bootstrap)
    try:
        await keeper.start()
        server = await _serve_ready(port)
        try:
            await keeper.keep(stop)
        finally:
            server.close()
    finally:
        await keeper.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the keeper until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m ringlog.devstack.keeper")
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    args.archive.mkdir(parents=True, exist_ok=True)
    run_until_stopped(
        lambda stop: _main(args.archive, args.bootstrap, args.port, stop), name="log keeper"
    )


if __name__ == "__main__":
    main()
