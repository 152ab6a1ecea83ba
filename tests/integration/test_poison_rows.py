"""Errors decide the loop: the CRM projection on PostgreSQL, against the embedded broker.

A row PostgreSQL refuses (a value longer than its column, a NUL character in text) is a data
failure: after bounded retries the record that carries it goes to the dead-letter topic with
the error in its headers, its position is checkpointed, and the records after it on the same
partition — and in the same batch — are applied. A failure of the connection is transient:
it is retried for as long as it lasts, with the lag gauge rising, and nothing is dead-lettered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from ringlog.config import Settings
from ringlog.projections.base import RetryPolicy
from ringlog.projections.crm import crm_projection
from ringlog.projections.crm.rows import Upsert
from ringlog.projections.crm.schema import APPOINTMENTS, INTERACTIONS, PATIENTS
from ringlog.projections.crm.store import CrmStore
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.runner import ProjectionRunner
from ringlog.schemas import (
    Appointment,
    DialogTurn,
    Envelope,
    Patient,
    SessionCompleted,
    SessionDropped,
    SessionProgressed,
    SessionStarted,
)
from ringlog.streams.deadletter import HEADER_ERROR, HEADER_ORIGIN, HEADER_PROCESSOR
from ringlog.streams.offsets import Position, end_offsets
from ringlog.streams.producer import LogProducer, RecordPosition
from tests.support.crm import T0, crm_store, env, rows
from tests.support.logread import eventually, records
from tests.support.postgres import fresh_schemas
from tests.support.projections import applied, lag

pytestmark = pytest.mark.integration

PHONE = "+14155550123"
SESSION = "sess-poison"
FIRST, SECOND = "in_first", "in_second"
RETRY = RetryPolicy(backoff_s=0.01, backoff_max_s=0.05, data_attempts=3)


class Recorded:
    """The CRM store, recording every ``apply``: its positions and how it failed (``None``
    when it committed). While :attr:`down` is set, each apply fails as a dropped connection
    to PostgreSQL does."""

    def __init__(self, store: CrmStore) -> None:
        self.store = store
        self.down = False
        self.applies: list[tuple[dict[Position, int], str | None]] = []

    async def load_checkpoint(self, projection: str) -> dict[Position, int]:
        return await self.store.load_checkpoint(projection)

    async def apply(
        self, projection: str, operations: Sequence[Upsert], positions: Mapping[Position, int]
    ) -> None:
        if self.down:
            self.applies.append((dict(positions), "down"))
            closed = psycopg.OperationalError("server closed the connection unexpectedly")
            raise OperationalError("INSERT INTO crm_interactions …", {}, closed)
        try:
            await self.store.apply(projection, operations, positions)
        except Exception as exc:
            self.applies.append((dict(positions), type(exc).__name__))
            raise
        self.applies.append((dict(positions), None))

    @property
    def failures(self) -> int:
        return sum(1 for _, failed in self.applies if failed is not None)


# -- events -------------------------------------------------------------------------------------


def turn(call_ref: str, index: int, words: str) -> Envelope:
    said = DialogTurn(
        call_ref=call_ref,
        call_id=f"retell-{call_ref}",
        session_id=SESSION,
        turn_index=index,
        role="agent" if index % 2 == 0 else "user",
        text=words,
    )
    return env(said, index)


def before_poison() -> list[Envelope]:
    """The first call starts (``sessions``, keyed by phone: one partition), with its turns."""
    s = {"session_id": SESSION, "phone": PHONE}
    return [
        env(SessionStarted(**s, call_ref=FIRST, stage="identity"), 0),
        turn(FIRST, 0, "Hello, this is the clinic."),
        turn(FIRST, 1, "I'd like a flu shot."),
    ]


def after_poison() -> list[Envelope]:
    """On the same ``sessions`` partition: the first call progresses, a second one starts and
    drops; the second call's turns go to ``dialog``."""
    s = {"session_id": SESSION, "phone": PHONE}
    return [
        env(SessionProgressed(**s, call_ref=FIRST, stage="date"), 2),
        env(SessionStarted(**s, call_ref=SECOND, stage="identity"), 10),
        turn(SECOND, 0, "Welcome back."),
        turn(SECOND, 1, "Hello again."),
        env(
            SessionDropped(
                **s,
                call_ref=SECOND,
                stage="identity",
                reason="caller_hangup",
                expires_at=T0 + dt.timedelta(days=1),
            ),
            11,
        ),
    ]


def poison(kind: str) -> Envelope:
    """A valid event whose CRM row PostgreSQL refuses (a row no later event of the batch
    rewrites: the store merges the writes of one row, and the last one is fine)."""
    s = {"session_id": SESSION, "phone": PHONE}
    if kind == "call ref longer than its column":
        return env(SessionStarted(**s, call_ref="r" * 129, stage="identity"), 1)
    if kind == "NUL character in text":
        return env(SessionStarted(**s, call_ref="in_nul", stage="iden\x00tity"), 1)
    if kind == "patient name longer than its column":
        patient = Patient(name="N" * 257, date_of_birth=dt.date(1815, 12, 10))
        slot = Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main St")
        completed = SessionCompleted(
            **s, call_ref=FIRST, call_refs=(FIRST,), appointment=slot, patient=patient
        )
        return env(completed, 1)
    raise AssertionError(kind)


#: each kind of refused row, and what PostgreSQL says about it
POISONS = {
    "call ref longer than its column": b"character varying(128)",
    "NUL character in text": b"NUL (0x00)",
    "patient name longer than its column": b"character varying(256)",
}


async def append(settings: Settings, envelopes: Sequence[Envelope]) -> list[RecordPosition]:
    async with LogProducer(settings.kafka) as log:
        return await log.append_many(envelopes)


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def store(unique: str) -> Iterator[CrmStore]:
    """A CRM store on a fresh schema of the test PostgreSQL."""
    with fresh_schemas(f"poison_{unique}") as (url,), crm_store(url) as crm:
        yield crm


def make_runner(
    settings: Settings, target: Any, group: str, *, lag_interval_s: float = 5.0
) -> ProjectionRunner[Upsert]:
    return ProjectionRunner(
        settings.kafka,
        crm_projection(settings),
        target,
        group_id=group,
        deadletter_topic=settings.topic("deadletter"),
        metrics=ProjectionMetrics(CollectorRegistry()),
        retry=RETRY,
        lag_interval_s=lag_interval_s,
    )


def metric(runner: ProjectionRunner[Upsert], name: str) -> float:
    return runner.metrics.registry.get_sample_value(name, {"projection": "crm"}) or 0.0


def deadlettered(runner: ProjectionRunner[Upsert]) -> float:
    return sum(
        s.value
        for m in runner.metrics.registry.collect()
        if m.name == "ringlog_projection_deadlettered"
        for s in m.samples
        if s.name.endswith("_total")
    )


async def assert_checkpoint_at_end(settings: Settings, store: CrmStore) -> None:
    """The checkpoint is at the end of every partition: dead-lettered records included."""
    ends = await end_offsets(settings.kafka, crm_projection(settings).topics)
    stored = await store.load_checkpoint("crm")
    assert {tp: end for tp, end in ends.items() if end} == stored


def assert_calls_after_the_poison_applied(store: CrmStore) -> None:
    """Both calls as the good events leave them, nothing of the poison."""
    first, second = rows(store, INTERACTIONS)
    assert (first["call_ref"], first["outcome"], first["stage_reached"]) == (
        FIRST,
        "in_progress",
        "date",
    )
    assert (second["call_ref"], second["outcome"], second["stage_reached"]) == (
        SECOND,
        "dropped",
        "identity",
    )
    assert (first["turns"], second["turns"]) == (2, 2)
    assert second["transcript"] == "agent: Welcome back.\nuser: Hello again."
    assert rows(store, PATIENTS) == [] and rows(store, APPOINTMENTS) == []


# -- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(POISONS))
async def test_a_row_postgresql_refuses_is_dead_lettered_and_the_partition_moves_on(
    topics: Settings, store: CrmStore, group_id: str, kind: str
) -> None:
    refused = poison(kind)
    envelopes = [*before_poison(), refused, *after_poison()]
    positions = await append(topics, envelopes)
    bad = positions[envelopes.index(refused)]
    later = [p for p in positions[envelopes.index(refused) + 1 :] if p.topic == bad.topic]
    assert later and all(p.partition == bad.partition for p in later)  # same partition, after

    target = Recorded(store)
    runner = make_runner(topics, target, group_id)
    await runner.run_until_caught_up(timeout_s=60)

    assert_calls_after_the_poison_applied(store)
    await assert_checkpoint_at_end(topics, store)
    assert applied(runner) == len(envelopes)  # the poison's position is checkpointed too
    assert deadlettered(runner) == 1
    [dead] = await records(topics.kafka, topics.topic("deadletter"))
    assert dead.envelope is not None and dead.envelope.event_id == refused.event_id
    headers = dict(dead.headers)
    assert headers[HEADER_PROCESSOR] == b"projection:crm"
    assert headers[HEADER_ORIGIN].decode() == f"{bad.topic}/{bad.partition}/{bad.offset}"
    assert headers[HEADER_ERROR].startswith(b"DataError: ")
    assert POISONS[kind] in headers[HEADER_ERROR]
    # the refused record was tried on its own, a bounded number of times, then set aside
    own = {(bad.topic, bad.partition): bad.offset + 1}
    alone = [failed for p, failed in target.applies if p == own]
    assert alone[-4:] == ["DataError"] * RETRY.data_attempts + [None], target.applies


async def test_one_refused_row_among_many_costs_a_few_transactions(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    """Sixty calls from sixty numbers (many partitions) and one refused row in the middle: the
    batch is written in halves, not record by record, and every good call lands."""
    calls = [
        env(
            SessionStarted(
                session_id=f"s{n}", phone=f"+1415555{n:04d}", call_ref=f"call-{n}", stage="x"
            ),
            n,
        )
        for n in range(60)
    ]
    refused = env(
        SessionStarted(session_id="s-bad", phone=PHONE, call_ref="r" * 200, stage="identity")
    )
    envelopes = [*calls[:30], refused, *calls[30:]]
    positions = await append(topics, envelopes)
    bad = positions[envelopes.index(refused)]

    target = Recorded(store)
    runner = make_runner(topics, target, group_id)
    await runner.run_until_caught_up(timeout_s=60)

    assert [row["call_ref"] for row in rows(store, INTERACTIONS)] == sorted(
        f"call-{n}" for n in range(60)
    )
    await assert_checkpoint_at_end(topics, store)
    assert applied(runner) == len(envelopes)
    [dead] = await records(topics.kafka, topics.topic("deadletter"))
    assert dict(dead.headers)[HEADER_ORIGIN].decode() == f"{bad.topic}/{bad.partition}/{bad.offset}"
    assert len(target.applies) <= 30, target.applies  # record by record would take 61+


async def test_a_lost_connection_is_retried_without_end_and_nothing_is_dead_lettered(
    topics: Settings, store: CrmStore, group_id: str
) -> None:
    """The connection fails far more often than ``data_attempts``; the same batch is retried
    whole each time (never split), the lag gauge keeps rising with new records, and once the
    database is back everything is applied and nothing dead-lettered."""
    envelopes = [*before_poison(), *after_poison()]
    await append(topics, envelopes)
    target = Recorded(store)
    target.down = True
    runner = make_runner(topics, target, group_id, lag_interval_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:

        async def outage() -> tuple[int, float]:
            assert not task.done(), task
            return target.failures, lag(runner)

        await eventually(outage, lambda f: f[0] >= 4 * RETRY.data_attempts and f[1] >= 8)
        more = [turn(FIRST, 2, "Which date suits you?"), turn(SECOND, 2, "Goodbye.")]
        await append(topics, more)
        # the lag gauge keeps being measured (and rises) while the write is retried
        await eventually(outage, lambda f: f[1] == len(envelopes) + len(more))
        target.down = False
        await runner.caught_up(timeout_s=60)
    finally:
        stop.set()
        await task

    failed = [p for p, failure in target.applies if failure is not None]
    assert {failure for _, failure in target.applies} == {"down", None}
    assert len(failed) >= 4 * RETRY.data_attempts
    assert all(p == failed[0] for p in failed)  # the whole batch every time
    assert metric(runner, "ringlog_projection_apply_retries_total") == len(failed)
    assert deadlettered(runner) == 0
    assert await records(topics.kafka, topics.topic("deadletter")) == []
    await assert_checkpoint_at_end(topics, store)
    assert applied(runner) == len(envelopes) + len(more)
    first, second = rows(store, INTERACTIONS)
    assert (first["turns"], second["turns"]) == (3, 3)
    assert (first["stage_reached"], second["outcome"]) == ("date", "dropped")
