"""The embedded log outlives a restart (the log keeper), a crash resets what may be ahead of it,
and each home's Redis keys are its own. Real stacks (`devstack.up`) in private homes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ringlog import devstack
from ringlog.calls.directory import CallDirectory
from ringlog.calls.known import KnownCall
from ringlog.config import HOME_ENV, Settings
from ringlog.devstack.archive import LogArchive
from ringlog.devstack.processes import is_alive
from ringlog.streams.offsets import end_offsets

pytestmark = pytest.mark.integration

Row = tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]


@pytest.fixture(name="homes")
def _homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Private homes (``homes("a")``); every stack started in one is stopped afterwards."""
    for var in ("RINGLOG_KAFKA_BOOTSTRAP", "RINGLOG_SQS_ENDPOINT_URL", "RINGLOG_SNOWFLAKE_HOST"):
        monkeypatch.delenv(var, raising=False)
    made: list[Path] = []

    def home(name: str) -> Path:
        path = tmp_path / name
        made.append(path)
        return path

    yield home
    for path in made:
        devstack.down(home=path)


def up(home: Path, monkeypatch: pytest.MonkeyPatch, said: list[str] | None = None) -> Settings:
    """Start the stack of ``home``; return the settings that reach it."""
    monkeypatch.setenv(HOME_ENV, str(home))
    devstack.up(Settings.load(), home=home, say=(said if said is not None else []).append)
    return Settings.load()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


async def write(bootstrap: str, topic: str, partitions: int, count: int, pad: bytes = b"") -> None:
    """``count`` records over ``partitions``: keyed and not, with headers, empty values, set
    timestamps, sent without waiting so the broker gets batches of many records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                None if i % 7 == 0 else f"value {i}".encode() * (1 + i % 5) + pad,
                key=None if i % 7 == 3 else f"key-{i % 11}".encode(),
                partition=i % partitions,
                timestamp_ms=1_700_000_000_000 + i,
                headers=[("n", str(i).encode())] if i % 2 else [],
            )
            for i in range(count)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[Row]]:
    """Every record of ``topic`` by partition, as (offset, timestamp, key, value, headers)."""
    ends = await end_offsets(Settings.load().kafka, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: dict[int, list[Row]] = {p: [] for p in range(partitions)}
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        while sum(len(v) for v in found.values()) < sum(ends.values()):
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                found[tp.partition] += [
                    (m.offset, m.timestamp, m.key, m.value, tuple(m.headers)) for m in messages
                ]
    finally:
        await consumer.stop()
    return found


def archived(home: Path, topic: str, partitions: int) -> int:
    archive = LogArchive(home / "log")
    return sum(archive.next_offset(topic, p) for p in range(partitions))


def test_the_log_outlives_a_restart_record_for_record(
    homes: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records written before `down` are read after `up` at the same offsets, with the same
    keys, values, headers and timestamps; the restart says it restored them."""
    home = homes("home")
    settings = up(home, monkeypatch)
    topic = f"keep-{uuid.uuid4().hex[:8]}"
    asyncio.run(write(settings.kafka.bootstrap, topic, 3, 3_000))
    before = asyncio.run(read_all(settings.kafka.bootstrap, topic, 3))
    assert wait_for(lambda: archived(home, topic, 3) == 3_000, 20)

    assert "log-keeper" in devstack.down(home=home)
    assert LogArchive(home / "log").clean
    settings = up(home, monkeypatch)

    after = asyncio.run(read_all(settings.kafka.bootstrap, topic, 3))
    assert after == before
    assert [len(after[p]) for p in range(3)] == [1_000, 1_000, 1_000]
    assert not LogArchive(home / "log").clean  # until the keeper stops again
    assert "log restored from the archive" in (home / "logs" / "log-keeper.log").read_text()

    # a deleted topic leaves the archive too, and the keeper does not bring it back
    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    async def names() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    asyncio.run(delete())
    assert wait_for(lambda: topic not in LogArchive(home / "log").topics(), 10)
    assert topic not in asyncio.run(names())


def test_the_archive_is_exact_while_topics_are_made_and_read_during_the_writes(
    homes: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Topics made one after another while the keeper archives, and the archive read by another
    process all along (as `dev status` or a test does): every record reaches the archive, once,
    at its offset, equal to the log."""
    home = homes("home")
    settings = up(home, monkeypatch)
    topics = [f"keep-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    stop = threading.Event()
    polls = 0

    failures: list[BaseException] = []

    def poll() -> None:
        nonlocal polls
        try:
            while not stop.is_set():
                for topic in topics:
                    archived(home, topic, 4)
                    list(LogArchive(home / "log").records(topic, polls % 4))
                polls += 1
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for topic in topics:
            asyncio.run(write(settings.kafka.bootstrap, topic, 4, 12_000, pad=b"p" * 300))
        assert wait_for(lambda: all(archived(home, t, 4) == 12_000 for t in topics), 30), [
            archived(home, t, 4) for t in topics
        ]
    finally:
        stop.set()
        reader.join()
    assert not failures, failures
    assert polls > 10
    for topic in topics:
        log = asyncio.run(read_all(settings.kafka.bootstrap, topic, 4))
        archive = LogArchive(home / "log")
        kept = {
            p: [
                (r.offset, r.timestamp_ms, r.key, r.value, r.headers)
                for r in archive.records(topic, p)
            ]
            for p in range(4)
        }
        assert kept == {
            p: [(o, t, k, v, tuple(h)) for o, t, k, v, h in rows] for p, rows in log.items()
        }


def test_a_keeper_killed_makes_the_next_start_reset_what_may_be_ahead_of_the_log(
    homes: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keeper killed (no clean mark): the next `up` says so and deletes the CRM/views file,
    the warehouse and this home's Redis keys (not another's); the archived log is back."""
    home = homes("home")
    settings = up(home, monkeypatch)
    topic = f"keep-{uuid.uuid4().hex[:8]}"
    asyncio.run(write(settings.kafka.bootstrap, topic, 2, 200))
    assert wait_for(lambda: archived(home, topic, 2) == 200, 20)
    with sqlite3.connect(home / "crm.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS ahead (n INTEGER)")
    shared = redis.Redis.from_url(settings.redis.url)
    mine = f"{settings.redis.key_prefix}session:+14155550100"
    other = f"ringlog:elsewhere-{uuid.uuid4().hex[:6]}:session:+14155550100"
    shared.set(mine, b"1")
    shared.set(other, b"1", ex=60)

    keeper = devstack.up(Settings.load(), home=home)["log-keeper"].process
    assert keeper is not None
    os.kill(keeper.pid, signal.SIGKILL)
    assert wait_for(lambda: not is_alive(keeper), 10)
    devstack.down(home=home)
    said: list[str] = []
    settings = up(home, monkeypatch, said)

    assert any("did not stop cleanly" in line for line in said), said
    assert not (home / "crm.db").exists() or "ahead" not in _tables(home / "crm.db")
    if not devstack.up(Settings.load(), home=home)["redis"].managed:  # the shared Redis
        assert not shared.exists(mine)
        assert shared.exists(other)
    shared.delete(other)
    shared.close()
    restored = asyncio.run(read_all(settings.kafka.bootstrap, topic, 2))
    assert sum(len(v) for v in restored.values()) == 200


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_two_homes_on_one_machine_do_not_see_each_others_redis_keys(
    homes: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call announced through one home's settings is unknown through the other's."""
    first = up(homes("first"), monkeypatch)
    second = up(homes("second"), monkeypatch)
    assert first.redis.key_prefix != second.redis.key_prefix
    call = KnownCall(f"call_{uuid.uuid4().hex}", "ref-1", "outbound", "phone_call", "+14155550123")

    async def lookups() -> tuple[KnownCall | None, KnownCall | None]:
        import redis.asyncio as aioredis

        found = []
        clients = [aioredis.Redis.from_url(s.redis.url) for s in (first, second)]
        try:
            directories = [
                CallDirectory(c, prefix=s.redis.key_prefix, max_call=dt.timedelta(minutes=5))
                for c, s in zip(clients, (first, second), strict=True)
            ]
            await directories[0].announce(call)
            for directory in directories:
                found.append(await directory.get(call.call_id))
        finally:
            for client in clients:
                await client.aclose()
        return found[0], found[1]

    in_first, in_second = asyncio.run(lookups())
    assert in_first == call
    assert in_second is None
