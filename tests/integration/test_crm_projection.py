"""The CRM projector against the embedded broker, on SQLite and on the local PostgreSQL.

Each test appends the seed-000 story (a call that drops, a call back that completes, and the
dialog turns of both) and runs the projection runner until it has applied the whole log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import delete

from ringlog.config import Settings
from ringlog.projections.base import Event, RetryPolicy
from ringlog.projections.crm import crm_projection, run_crm_projector
from ringlog.projections.crm import rows as crm_rows
from ringlog.projections.crm.rows import Upsert, appointment_id, patient_id
from ringlog.projections.crm.schema import (
    APPOINTMENTS,
    CHECKPOINTS,
    INTERACTIONS,
    PATIENTS,
    TASKS,
)
from ringlog.projections.crm.store import CrmStore
from ringlog.projections.runner import ProjectionRunner
from ringlog.schemas import (
    Appointment,
    DialogTurn,
    Envelope,
    Patient,
    SessionCompleted,
    SessionDropped,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
)
from ringlog.streams.deadletter import HEADER_ERROR, HEADER_ORIGIN, HEADER_PROCESSOR
from ringlog.streams.offsets import Position, end_offsets
from ringlog.streams.producer import LogProducer
from tests.support.crm import T0, crm_store, env, rows
from tests.support.logread import eventually, records
from tests.support.postgres import fresh_database
from tests.support.projections import applied, runner_for

pytestmark = pytest.mark.integration

PHONE = "+14155550123"
SESSION = "sess-000"
FIRST, SECOND = "in_first", "in_second"
DOB = dt.date(1815, 12, 10)
FIRST_TRANSCRIPT = (
    "agent: Hello, this is the clinic. How can I help?\n"
    "user: I'd like to book a flu shot.\n"
    "agent: Sure. Which date suits you?"
)
SECOND_TRANSCRIPT = (
    "agent: Welcome back! You were booking a flu shot. We were at selecting a date.\n"
    "user: Next Tuesday at half ten, Main St please.\n"
    "agent: Booked: Tuesday 8 October, 10:30 at Main St."
)


class Crash(Exception):
    """The process died."""


class CrashAfterApply(ProjectionRunner[Upsert]):
    """Dies after the target committed its first batch, before Kafka offsets are committed."""

    async def on_applied(self, positions: Mapping[Position, int]) -> None:
        raise Crash(f"killed after applying {dict(positions)}")


class FlakyStore:
    """A CRM store whose first ``failures`` writes fail, as a database restart would."""

    def __init__(self, store: CrmStore, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        return await self.store.load_checkpoint(projection)

    async def apply(
        self, projection: str, operations: Sequence[Upsert], positions: Mapping[Position, int]
    ) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("CRM database restarting")
        await self.store.apply(projection, operations, positions)


# -- the story ----------------------------------------------------------------------------------


def story() -> list[Envelope]:
    """Sessions and dialog events of both calls, interleaved as they happen."""
    s = {"session_id": SESSION, "phone": PHONE}

    def say(call_ref: str, index: int, role: str, words: str, minute: int) -> Envelope:
        turn = DialogTurn(
            call_ref=call_ref,
            call_id=f"retell-{call_ref}",
            session_id=SESSION,
            turn_index=index,
            role=role,
            text=words,
        )
        return env(turn, minute)

    first = FIRST_TRANSCRIPT.split("\n")
    second = SECOND_TRANSCRIPT.split("\n")
    return [
        env(SessionStarted(**s, call_ref=FIRST, stage="identity"), 0),
        say(FIRST, 0, "agent", first[0].removeprefix("agent: "), 0),
        say(FIRST, 1, "user", first[1].removeprefix("user: "), 1),
        env(SessionProgressed(**s, call_ref=FIRST, stage="date"), 1),
        say(FIRST, 2, "agent", first[2].removeprefix("agent: "), 1),
        env(
            SessionDropped(
                **s,
                call_ref=FIRST,
                stage="date",
                reason="caller_hangup",
                expires_at=T0 + dt.timedelta(days=1),
            ),
            2,
        ),
        env(
            SessionResumed(**s, call_ref=SECOND, stage="date", previous_call_refs=(FIRST,)),
            10,
        ),
        say(SECOND, 0, "agent", second[0].removeprefix("agent: "), 10),
        say(SECOND, 1, "user", second[1].removeprefix("user: "), 11),
        env(SessionProgressed(**s, call_ref=SECOND, stage="confirm"), 11),
        say(SECOND, 2, "agent", second[2].removeprefix("agent: "), 12),
        env(
            SessionCompleted(
                **s,
                call_ref=SECOND,
                call_refs=(FIRST, SECOND),
                appointment=Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main St"),
                patient=Patient(name="Ada Lovelace", date_of_birth=DOB),
            ),
            12,
        ),
    ]


async def append_story(settings: Settings) -> int:
    """Append the story; return how many records it has."""
    envelopes = story()
    async with LogProducer(settings.kafka) as log:
        await log.append_many(envelopes)
    return len(envelopes)


def task_story() -> list[Envelope]:
    """Two tasks on ``tasks``: one called in, written back twice and rescheduled; one deleted."""
    return [
        env(TaskIncomingCall(task_id="t-in", from_number=PHONE, to_number="+14155559876"), 0),
        env(TaskFieldWriteback(task_id="t-in", fields={"status": "open", "priority": "high"}), 1),
        env(TaskFieldWriteback(task_id="t-old", fields={"status": "open"}), 1),
        env(TaskFieldWriteback(task_id="t-in", fields={"status": "scheduled"}), 2),
        env(
            TaskRescheduled(task_id="t-in", call_ref=FIRST, scheduled_at=T0 + dt.timedelta(1)),
            3,
        ),
        env(TaskDeleted(task_id="t-old", reason="duplicate"), 4),
    ]


async def append_tasks(settings: Settings) -> int:
    """Append the task story; return how many records it has."""
    envelopes = task_story()
    async with LogProducer(settings.kafka) as log:
        await log.append_many(envelopes)
    return len(envelopes)


def assert_tasks_projected(store: CrmStore) -> None:
    """Fields merged per field (later wins), schedule and caller kept, the tombstone set."""
    found = {row["task_id"]: row for row in rows(store, TASKS)}
    assert set(found) == {"t-in", "t-old"}
    called = found["t-in"]
    assert called["fields"] == '{"priority":"high","status":"scheduled"}'
    assert (called["incoming_from"], called["scheduled_call_ref"]) == (PHONE, FIRST)
    assert naive(called["scheduled_at"]) == dt.datetime(2024, 10, 2, 9, 0)
    assert (called["deleted"], called["last_event_type"]) == (False, "task.rescheduled")
    old = found["t-old"]
    assert (old["deleted"], old["deleted_reason"], old["fields"]) == (
        True,
        "duplicate",
        '{"status":"open"}',
    )
    assert naive(old["deleted_at"]) == dt.datetime(2024, 10, 1, 9, 4)


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def crm_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A CRM database of this test's own: a SQLite file, or a fresh PostgreSQL schema."""
    with fresh_database(request.param, tmp_path, "crm_test") as url:
        yield url


@pytest.fixture
def store(crm_url: str) -> Iterator[CrmStore]:
    with crm_store(crm_url) as crm:
        yield crm


def make_runner(
    settings: Settings,
    target: Any,
    group: str,
    *,
    cls: type[ProjectionRunner[Upsert]] = ProjectionRunner,
    max_records: int = 5_000,
) -> ProjectionRunner[Upsert]:
    retry = RetryPolicy(backoff_s=0.01, backoff_max_s=0.05)
    return runner_for(
        settings,
        crm_projection(settings),
        target,
        group,
        retry=retry,
        cls=cls,
        max_records=max_records,
    )


def naive(value: dt.datetime | None) -> dt.datetime | None:
    """The instant as naive UTC (SQLite returns naive datetimes, PostgreSQL aware ones)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def assert_story_projected(store: CrmStore) -> None:
    """One patient, one appointment, two interactions: the first dropped, the second booked."""
    [patient] = rows(store, PATIENTS)
    assert patient["patient_id"] == patient_id(PHONE, DOB)
    assert (patient["name"], patient["date_of_birth"], patient["phone"]) == (
        "Ada Lovelace",
        DOB,
        PHONE,
    )
    [appointment] = rows(store, APPOINTMENTS)
    assert appointment["appointment_id"] == appointment_id(SESSION)
    assert appointment["patient_id"] == patient["patient_id"]
    assert (appointment["kind"], appointment["date"], appointment["time"]) == (
        "flu_shot",
        dt.date(2024, 10, 8),
        "10:30",
    )
    assert (appointment["site"], appointment["session_id"]) == ("Main St", SESSION)
    first, second = rows(store, INTERACTIONS)
    assert (first["call_ref"], first["outcome"], first["stage_reached"]) == (
        FIRST,
        "dropped",
        "date",
    )
    assert (second["call_ref"], second["outcome"], second["stage_reached"]) == (
        SECOND,
        "completed",
        "completed",
    )
    assert naive(first["started_at"]) == dt.datetime(2024, 10, 1, 9, 0)
    assert naive(first["ended_at"]) == dt.datetime(2024, 10, 1, 9, 2)
    assert naive(second["ended_at"]) == dt.datetime(2024, 10, 1, 9, 12)
    assert (first["turns"], first["transcript"]) == (3, FIRST_TRANSCRIPT)
    assert (second["turns"], second["transcript"]) == (3, SECOND_TRANSCRIPT)
    assert {i["session_id"] for i in (first, second)} == {SESSION}
    assert {i["direction"] for i in (first, second)} == {"inbound"}


async def assert_checkpoint_at_end(settings: Settings, store: CrmStore) -> None:
    """The target's checkpoint is at the end of every partition, and so are group offsets."""
    ends = await end_offsets(settings.kafka, crm_projection(settings).topics)
    stored = await store.load_checkpoint("crm")
    assert {tp: stored.get(tp, 0) for tp in ends} == ends
    assert {tp: end for tp, end in ends.items() if end} == stored


async def committed(settings: Settings, group: str) -> dict[Position, int]:
    """The offsets the consumer group has committed (none when it never committed)."""
    ends = await end_offsets(settings.kafka, crm_projection(settings).topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        partitions = [TopicPartition(topic, partition) for topic, partition in ends]
        found = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): m.offset for tp, m in found.items() if m.offset >= 0}


# -- tests --------------------------------------------------------------------------------------


async def test_the_story_becomes_patient_appointment_and_interactions(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    total = await append_story(topics)
    runner = make_runner(topics, store, group_id)
    await runner.run_until_caught_up()

    assert_story_projected(store)
    await assert_checkpoint_at_end(topics, store)
    assert applied(runner) == total
    registry = runner.metrics.registry
    lags = [
        s.value
        for metric in registry.collect()
        if metric.name == "ringlog_projection_lag"
        for s in metric.samples
    ]
    assert lags and all(lag == 0 for lag in lags)
    # Kafka offsets follow the target's checkpoint once it committed
    assert await committed(topics, group_id) == await store.load_checkpoint("crm")


async def test_replaying_the_log_again_leaves_the_tables_equal(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    total = await append_story(topics)
    await make_runner(topics, store, group_id).run_until_caught_up()
    before = store.snapshot()

    # forget the checkpoint so every event is applied a second time, with a fresh group
    with store.engine.begin() as connection:
        connection.execute(delete(CHECKPOINTS))
    again = make_runner(topics, store, f"{group_id}-again")
    await again.run_until_caught_up()

    assert applied(again) == total
    assert store.snapshot() == before
    assert_story_projected(store)


async def test_tasks_are_projected_and_a_replay_leaves_the_tables_equal(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    total = await append_story(topics) + await append_tasks(topics)
    runner = make_runner(topics, store, group_id)
    await runner.run_until_caught_up()
    assert applied(runner) == total
    assert_tasks_projected(store)
    assert_story_projected(store)
    await assert_checkpoint_at_end(topics, store)
    before = store.snapshot()

    with store.engine.begin() as connection:
        connection.execute(delete(CHECKPOINTS))
    again = make_runner(topics, store, f"{group_id}-again", max_records=2)
    await again.run_until_caught_up()
    assert applied(again) == total
    assert store.snapshot() == before


async def test_a_crash_between_target_and_kafka_commit_neither_duplicates_nor_loses(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    total = await append_story(topics)
    doomed = make_runner(topics, store, group_id, cls=CrashAfterApply, max_records=3)
    with pytest.raises(Crash):
        await doomed.run_until_caught_up()
    first_batch = applied(doomed)
    assert 0 < first_batch < total
    # the target has the batch, Kafka does not know: the group committed nothing
    assert await committed(topics, group_id) == {}
    assert sum((await store.load_checkpoint("crm")).values()) == first_batch

    survivor = make_runner(topics, store, group_id, max_records=3)
    await survivor.run_until_caught_up()

    assert first_batch + applied(survivor) == total  # every record applied exactly once
    assert_story_projected(store)
    await assert_checkpoint_at_end(topics, store)
    assert await committed(topics, group_id) == await store.load_checkpoint("crm")


async def test_a_poison_record_is_dead_lettered_and_later_records_still_apply(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    sessions = topics.topic("sessions")
    async with LogProducer(topics.kafka) as log:
        poison = await log.append_raw(sessions, b"\x00{not an event", key=PHONE.encode())
    total = await append_story(topics)

    runner = make_runner(topics, store, group_id)
    await runner.run_until_caught_up()

    assert_story_projected(store)
    await assert_checkpoint_at_end(topics, store)
    assert applied(runner) == total + 1  # the poison's position is checkpointed too
    [dead] = await records(topics.kafka, topics.topic("deadletter"))
    headers = dict(dead.headers)
    assert dead.value == b"\x00{not an event"
    assert dead.key == PHONE.encode()
    assert headers[HEADER_PROCESSOR] == b"projection:crm"
    assert b"DecodeError" in headers[HEADER_ERROR]
    assert headers[HEADER_ORIGIN].decode() == f"{sessions}/{poison.partition}/{poison.offset}"


async def test_a_failing_target_is_retried_without_losing_records(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    total = await append_story(topics)
    runner = make_runner(topics, FlakyStore(store, failures=3), group_id)
    await runner.run_until_caught_up()

    assert_story_projected(store)
    assert applied(runner) == total
    retries = runner.metrics.registry.get_sample_value(
        "ringlog_projection_apply_retries_total", {"projection": "crm"}
    )
    assert retries == 3


async def test_an_event_the_projection_cannot_handle_is_dead_lettered(
    topics: Settings, tmp_path: Path, group_id: str
) -> None:
    """A decodable event whose projection raises is isolated; the rest of its batch applies."""

    def fussy(events: Sequence[Event]) -> list[Upsert]:
        for event in events:
            if isinstance(event.envelope.payload, SessionProgressed):
                raise ValueError(f"cannot project {event.envelope.payload.stage}")
        return crm_rows.project(events)

    total = await append_story(topics)
    store = CrmStore(f"sqlite:///{tmp_path}/crm.db")
    try:
        runner = make_runner(topics, store, group_id)
        runner.projection = replace(runner.projection, project=fussy)
        await runner.run_until_caught_up()

        assert applied(runner) == total
        await assert_checkpoint_at_end(topics, store)
        first, second = rows(store, INTERACTIONS)
        assert (first["outcome"], second["outcome"]) == ("dropped", "completed")
        assert len(rows(store, PATIENTS)) == 1
    finally:
        store.close()
    dead = await records(topics.kafka, topics.topic("deadletter"))
    assert len(dead) == 2  # the two session.progressed events
    for record in dead:
        assert record.envelope is not None
        assert record.envelope.type == "session.progressed"
        assert dict(record.headers)[HEADER_ERROR].startswith(b"ValueError: cannot project")


async def test_run_crm_projector_keeps_the_configured_database_in_step(
    topics: Settings, tmp_path: Path
) -> None:
    """The entry point of ``ringlog projector`` projects into ``settings.crm.url`` until stopped."""
    url = f"sqlite:///{tmp_path}/crm/crm.db"
    settings = topics.model_copy(update={"crm": topics.crm.model_copy(update={"url": url})})
    await append_story(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_crm_projector(settings, stop))
    store = CrmStore(url)
    try:

        async def outcomes() -> list[str]:
            assert not task.done(), task
            return [row["outcome"] for row in rows(store, INTERACTIONS)]

        await eventually(outcomes, lambda found: found == ["dropped", "completed"])
        assert_story_projected(store)
    finally:
        stop.set()
        await task
        store.close()
