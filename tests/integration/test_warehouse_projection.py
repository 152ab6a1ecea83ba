"""The warehouse projector against the embedded broker and the fakesnow server.

Every test appends a known story (outbound calls, inbound sessions, dialog turns, ABT, tasks)
under its own topic prefix and projects it into a Snowflake database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ringlog.config import Settings
from ringlog.devstack.ports import free_port
from ringlog.projections.base import RetryPolicy
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.warehouse import (
    NAME,
    WarehouseError,
    WarehouseStore,
    hash_phone,
    run_warehouse_projector,
    warehouse_projection,
    warehouse_store,
)
from ringlog.projections.warehouse.rows import Operation
from ringlog.schemas import (
    AbtEvent,
    Appointment,
    CallDispatched,
    CallDispatchFailed,
    CallRequested,
    DialogTurn,
    Envelope,
    EventModel,
    Patient,
    RetellCallAnalyzed,
    RetellCallEnded,
    RetellCallStarted,
    SessionCompleted,
    SessionDropped,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
    abt_id_for,
)
from ringlog.streams.offsets import Position, end_offsets
from ringlog.streams.producer import LogProducer
from tests.support.examples import retell_call
from tests.support.logread import eventually
from tests.support.projections import applied, lag, runner_for

pytestmark = pytest.mark.integration

DAY1 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2024, 10, 2, 9, 0, tzinfo=dt.UTC)
CLINIC = "+14155559876"
PATIENTS = {"A": "+14155550101", "B": "+14155550102", "C": "+14155550103", "D": "+14155550104"}
CALLERS = {"S1": "+14155550201", "S2": "+14155550202", "S3": "+14155550203"}


# -- the story ----------------------------------------------------------------------------------


def env(payload: EventModel, at: dt.datetime, minutes: float = 0) -> Envelope:
    return Envelope.new(payload, source="test", occurred_at=at + dt.timedelta(minutes=minutes))


def hook(name: str, ref: str, at: dt.datetime, minutes: float, **changes: Any) -> Envelope:
    model = {
        "call_started": RetellCallStarted,
        "call_ended": RetellCallEnded,
        "call_analyzed": RetellCallAnalyzed,
    }[name]
    start = int((at + dt.timedelta(minutes=1)).timestamp() * 1000)
    call = retell_call(name) | {
        "call_id": f"retell-{ref}",
        "metadata": {"call_ref": ref},
        "start_timestamp": start,
    }
    if name != "call_started":
        call |= {"end_timestamp": start + 90_000, "duration_ms": 90_000}
    call |= changes
    return env(model.from_body({"event": name, "call": call}), at, minutes)


def outbound(ref: str, patient: str, at: dt.datetime) -> Envelope:
    request = CallRequested(
        call_ref=ref,
        to_number=PATIENTS[patient],
        from_number=CLINIC,
        agent_id="agent_flu",
        task_ref=f"task-{patient}",
    )
    return env(request, at)


def dispatched(ref: str, at: dt.datetime, minutes: float = 0.5) -> Envelope:
    return env(
        CallDispatched(call_ref=ref, retell_call_id=f"retell-{ref}", agent_id="a"), at, minutes
    )


def abt(ref: str, name: str, at: dt.datetime, minutes: float) -> Envelope:
    event = AbtEvent(
        abt_id=abt_id_for(ref, name), name=name, call_ref=ref, retell_call_id=f"retell-{ref}"
    )
    return env(event, at, minutes)


def calls_story() -> list[Envelope]:
    """Day 1: A completes, B never connects, C completes after a failed dispatch round.
    Day 2: D completes (Retell delivers its ``call_ended`` twice)."""
    story = []
    for ref, patient, at in (("out_a", "A", DAY1), ("out_c", "C", DAY1), ("out_d", "D", DAY2)):
        story += [outbound(ref, patient, at)]
        if ref == "out_c":
            failed = CallDispatchFailed(call_ref=ref, reason="429", permanent=False, attempts=4)
            story += [env(failed, at, 0.2)]
        story += [
            dispatched(ref, at),
            abt(ref, "voice_call_initiated", at, 0.6),
            hook("call_started", ref, at, 1),
            abt(ref, "call_started", at, 1.1),
            hook("call_ended", ref, at, 2.5),
            hook("call_analyzed", ref, at, 3),
            abt(ref, "call_completed", at, 3.1),
        ]
        if ref == "out_d":
            story += [hook("call_ended", ref, at, 2.6)]  # a duplicate delivery
    story += [
        outbound("out_b", "B", DAY1),
        dispatched("out_b", DAY1),
        abt("out_b", "voice_call_initiated", DAY1, 0.6),
        hook("call_ended", "out_b", DAY1, 1, call_status="not_connected", duration_ms=0),
    ]
    return story


def sessions_story() -> list[Envelope]:
    """S1 drops and resumes on a second call, then books; S2 books at once; S3 drops for good."""
    s1 = {"session_id": "S1", "phone": CALLERS["S1"]}
    s2 = {"session_id": "S2", "phone": CALLERS["S2"]}
    s3 = {"session_id": "S3", "phone": CALLERS["S3"]}
    appointment = Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main St")

    def done(s: dict[str, str], ref: str, refs: tuple[str, ...], at: dt.datetime) -> Envelope:
        patient = Patient(name=f"Patient {s['session_id']}", date_of_birth=dt.date(1980, 1, 1))
        return env(
            SessionCompleted(
                **s, call_ref=ref, call_refs=refs, appointment=appointment, patient=patient
            ),
            at,
            30,
        )

    def turn(ref: str, index: int, role: str, text: str, session: str) -> Envelope:
        said = DialogTurn(
            call_ref=ref,
            call_id=f"retell-{ref}",
            session_id=session,
            turn_index=index,
            role=role,
            text=text,
            stage="date",
            latency_ms=640.0 if role == "agent" else None,
        )
        return env(said, DAY1, 10 + index)

    expiry = DAY1 + dt.timedelta(days=1)
    return [
        env(SessionStarted(**s1, call_ref="in_1", stage="identity"), DAY1, 10),
        turn("in_1", 0, "agent", "Hello, this is the clinic.", "S1"),
        turn("in_1", 1, "user", "I'd like a flu shot.", "S1"),
        env(SessionProgressed(**s1, call_ref="in_1", stage="date"), DAY1, 11),
        env(
            SessionDropped(
                **s1, call_ref="in_1", stage="date", reason="caller_hangup", expires_at=expiry
            ),
            DAY1,
            12,
        ),
        env(
            SessionResumed(**s1, call_ref="in_2", stage="date", previous_call_refs=("in_1",)),
            DAY1,
            20,
        ),
        turn("in_2", 0, "agent", "Welcome back!", "S1"),
        done(s1, "in_2", ("in_1", "in_2"), DAY1),
        env(SessionStarted(**s2, call_ref="in_3", stage="identity"), DAY2, 10),
        done(s2, "in_3", ("in_3",), DAY2),
        env(SessionStarted(**s3, call_ref="in_4", stage="identity"), DAY2, 40),
        env(
            SessionDropped(
                **s3, call_ref="in_4", stage="identity", reason="caller_hangup", expires_at=expiry
            ),
            DAY2,
            41,
        ),
    ]


def tasks_story() -> list[Envelope]:
    """task-A gets fields and a new time; task-X is an incoming call, then deleted."""
    return [
        env(
            TaskFieldWriteback(task_id="task-A", fields={"outcome": "booked", "tries": 1}), DAY1, 50
        ),
        env(TaskRescheduled(task_id="task-A", call_ref="out_a", scheduled_at=DAY2), DAY1, 51),
        env(
            TaskIncomingCall(task_id="task-X", from_number=CALLERS["S3"], to_number=CLINIC), DAY2, 5
        ),
        env(TaskDeleted(task_id="task-X", reason="spam"), DAY2, 6),
    ]


def story() -> list[Envelope]:
    return calls_story() + sessions_story() + tasks_story()


async def append(settings: Settings, envelopes: list[Envelope]) -> int:
    async with LogProducer(settings.kafka) as producer:
        await producer.append_many(envelopes)
    return len(envelopes)


# -- fixtures and helpers -----------------------------------------------------------------------


def with_database(settings: Settings, database: str, **warehouse: Any) -> Settings:
    """``settings`` projecting into a Snowflake database of its own (fakesnow creates it)."""
    changes = {"database": database, **warehouse}
    return settings.model_copy(update={"warehouse": settings.warehouse.model_copy(update=changes)})


@pytest.fixture
def wsettings(topics: Settings, unique: str) -> Settings:
    return with_database(topics, f"WH_{unique.upper()}")


@pytest.fixture
def store(wsettings: Settings) -> Iterator[WarehouseStore]:
    target = warehouse_store(wsettings, login_timeout=10, network_timeout=30)
    yield target
    target.close()


def make_runner(
    settings: Settings,
    target: WarehouseStore,
    group: str,
    *,
    cls: type[ProjectionRunner[Operation]] = ProjectionRunner,
    max_records: int = 5_000,
) -> ProjectionRunner[Operation]:
    retry = RetryPolicy(backoff_s=0.05, backoff_max_s=0.5)
    return runner_for(
        settings,
        warehouse_projection(settings),
        target,
        group,
        retry=retry,
        cls=cls,
        max_records=max_records,
    )


def table(target: WarehouseStore, name: str, columns: str, order: str) -> list[tuple[Any, ...]]:
    return target.query(f"SELECT {columns} FROM {name} ORDER BY {order}")


def h(number: str) -> str:
    return hash_phone(number, b"change-me-in-production")


def assert_story_projected(target: WarehouseStore, total: int) -> None:
    """Every table holds exactly what the story says."""
    assert table(target, "CALL_EVENTS", "COUNT(*), COUNT(DISTINCT EVENT_ID)", "1") == [
        (total, total)
    ]
    calls = table(
        target,
        "CALLS",
        "CALL_REF, STATUS, CONNECTED, DISPATCH_ATTEMPTS, TASK_REF, TO_NUMBER_HASH,"
        " DURATION_MS, SUMMARY, COST, EVENTS",
        "CALL_REF",
    )
    summary = None  # Retell's summary may name the patient: withheld (see test_privacy)
    assert calls == [
        ("out_a", "ended", True, 1, "task-A", h(PATIENTS["A"]), 90_000, summary, 12.5, 5),
        ("out_b", "not_connected", False, 1, "task-B", h(PATIENTS["B"]), 0, None, None, 3),
        ("out_c", "ended", True, 5, "task-C", h(PATIENTS["C"]), 90_000, summary, 12.5, 6),
        ("out_d", "ended", True, 1, "task-D", h(PATIENTS["D"]), 90_000, summary, 12.5, 6),
    ]
    assert table(target, "CALLS", "COUNT_IF(REQUESTED_AT IS NULL)", "1") == [(0,)]
    sessions = table(
        target, "SESSIONS", "SESSION_ID, PHONE_HASH, STATUS, CALLS, RESUMED", "SESSION_ID"
    )
    assert sessions == [
        ("S1", h(CALLERS["S1"]), "completed", 2, True),
        ("S2", h(CALLERS["S2"]), "completed", 1, False),
        ("S3", h(CALLERS["S3"]), "dropped", 1, False),
    ]
    assert table(target, "SESSIONS", "COUNT_IF(COMPLETED_AT IS NULL)", "1") == [(1,)]
    turns = table(target, "DIALOG_TURNS", "CALL_REF, TURN_INDEX, ROLE, STAGE, TEXT", "1, 2")
    assert turns == [  # what was said is withheld unless RINGLOG_WAREHOUSE_TRANSCRIPTS
        ("in_1", 0, "agent", "date", None),
        ("in_1", 1, "user", "date", None),
        ("in_2", 0, "agent", "date", None),
    ]
    abts = target.query("SELECT NAME, COUNT(*) FROM ABT_EVENTS GROUP BY NAME ORDER BY NAME")
    assert abts == [("call_completed", 3), ("call_started", 3), ("voice_call_initiated", 4)]
    tasks = table(
        target,
        "TASKS",
        "TASK_ID, FIELDS:outcome::VARCHAR, DELETED, DELETE_REASON, INCOMING_FROM_HASH,"
        " LAST_EVENT_TYPE",
        "TASK_ID",
    )
    assert tasks == [
        ("task-A", "booked", False, None, None, "task.rescheduled"),
        ("task-X", None, True, "spam", h(CALLERS["S3"]), "task.deleted"),
    ]
    dump = str(target.snapshot())
    for number in (*PATIENTS.values(), *CALLERS.values(), CLINIC):
        assert number not in dump  # hashed everywhere, raw payloads included
    for personal in ("Patient S1", "1980-01-01", "Welcome back!", "flu shot."):
        assert personal not in dump  # names, dates of birth and utterances withheld


async def assert_checkpoint_at_end(settings: Settings, target: WarehouseStore) -> None:
    ends = await end_offsets(settings.kafka, warehouse_projection(settings).topics)
    stored = await target.load_checkpoint(NAME)
    assert {tp: end for tp, end in ends.items() if end} == stored


class Crash(Exception):
    """The process died."""


class CrashAfterApply(ProjectionRunner[Operation]):
    """Dies after the warehouse committed its first batch, before Kafka offsets are committed."""

    async def on_applied(self, positions: Mapping[Position, int]) -> None:
        raise Crash(f"killed after applying {dict(positions)}")


# -- tests --------------------------------------------------------------------------------------


async def test_a_mixed_stream_lands_in_every_table(
    wsettings: Settings, store: WarehouseStore, group_id: str
) -> None:
    total = await append(wsettings, story())
    runner = make_runner(wsettings, store, group_id)
    await runner.run_until_caught_up()

    assert applied(runner) == total
    assert_story_projected(store, total)
    await assert_checkpoint_at_end(wsettings, store)
    meta = store.query(
        "SELECT RECORD_METADATA:topic::VARCHAR, RECORD_METADATA:offset::NUMBER, TOPIC, VERSION"
        " FROM CALL_EVENTS WHERE TYPE = 'task.deleted'"
    )
    [(topic, offset, column_topic, version)] = meta
    assert topic == column_topic == wsettings.topic("tasks")
    assert offset == version


async def test_replaying_the_log_leaves_every_table_byte_for_byte_equal(
    wsettings: Settings, store: WarehouseStore, group_id: str
) -> None:
    total = await append(wsettings, story())
    await make_runner(wsettings, store, group_id).run_until_caught_up()
    before = store.snapshot()
    assert all(before[name] for name in before)

    # a fresh group with the checkpoint kept: everything is skipped
    kept = make_runner(wsettings, store, f"{group_id}-kept")
    await kept.run_until_caught_up()
    assert store.snapshot() == before

    # the checkpoint forgotten: every event is applied a second time and changes nothing
    store.forget_checkpoint(NAME)
    again = make_runner(wsettings, store, f"{group_id}-again", max_records=7)
    await again.run_until_caught_up()
    assert applied(again) == total
    assert store.snapshot() == before
    assert_story_projected(store, total)


async def test_a_checkpoint_only_moves_forward(store: WarehouseStore) -> None:
    await store.apply(NAME, [], {("t", 0): 10, ("t", 1): 4})
    await store.apply(NAME, [], {("t", 0): 5, ("t", 1): 6, ("u", 0): 1})
    assert await store.load_checkpoint(NAME) == {("t", 0): 10, ("t", 1): 6, ("u", 0): 1}
    assert await store.load_checkpoint("other") == {}


async def test_a_later_copy_of_an_event_or_abt_event_changes_nothing(
    wsettings: Settings, store: WarehouseStore, group_id: str
) -> None:
    """Append-only tables keep the first copy of a key: a copy in the same batch, and copies
    applied by a later batch, leave the row (its position and version) as first written."""
    at = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    event, tracked = outbound("out_x", "A", at), abt("out_x", "call_started", at, 1)
    await append(wsettings, [event, tracked, event])
    await make_runner(wsettings, store, group_id).run_until_caught_up()
    first = store.snapshot()
    rows = "SELECT EVENT_ID, VERSION, RECORD_METADATA:offset::NUMBER FROM CALL_EVENTS ORDER BY 1"
    assert store.query(rows) == sorted([(str(event.event_id), 0, 0), (str(tracked.event_id), 0, 0)])
    assert store.query("SELECT ABT_ID, VERSION FROM ABT_EVENTS") == [
        (str(abt_id_for("out_x", "call_started")), 0)
    ]

    await append(wsettings, [tracked, event])
    await make_runner(wsettings, store, f"{group_id}-2").run_until_caught_up()
    after = store.snapshot()
    assert after["CALL_EVENTS"] == first["CALL_EVENTS"]
    assert after["ABT_EVENTS"] == first["ABT_EVENTS"]


async def test_a_crash_between_warehouse_and_kafka_commit_neither_duplicates_nor_loses(
    wsettings: Settings, store: WarehouseStore, group_id: str
) -> None:
    total = await append(wsettings, story())
    doomed = make_runner(wsettings, store, group_id, cls=CrashAfterApply, max_records=5)
    with pytest.raises(Crash):
        await doomed.run_until_caught_up()
    first_batch = applied(doomed)
    assert 0 < first_batch < total
    assert sum((await store.load_checkpoint(NAME)).values()) == first_batch

    survivor = make_runner(wsettings, store, group_id, max_records=5)
    await survivor.run_until_caught_up()
    assert first_batch + applied(survivor) == total
    assert_story_projected(store, total)
    await assert_checkpoint_at_end(wsettings, store)


# -- outages ------------------------------------------------------------------------------------


class Link:
    """A TCP forwarder in front of the warehouse that can be cut and restored (an outage)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def link(wsettings: Settings) -> AsyncIterator[Link]:
    w = wsettings.warehouse
    assert w.host and w.port
    forwarder = Link(w.host, w.port)
    yield forwarder
    await forwarder.cut()


async def test_an_outage_stalls_the_projection_which_then_catches_up(
    wsettings: Settings, link: Link, group_id: str
) -> None:
    """The warehouse becomes unreachable mid-stream: writes are retried with backoff, lag grows,
    and when it answers again the projection catches up, nothing lost or doubled."""
    via_link = with_database(wsettings, wsettings.warehouse.database, port=link.port)
    target = warehouse_store(via_link, login_timeout=2, network_timeout=3, socket_timeout=2)
    await link.up()
    calls = calls_story()
    first = await append(wsettings, calls)
    runner = make_runner(via_link, target, group_id)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _value(applied(runner)), lambda n: n == first)

        await link.cut()
        rest = sessions_story() + tasks_story()
        await append(wsettings, rest)

        def retries() -> float:
            found = runner.metrics.registry.get_sample_value(
                "ringlog_projection_apply_retries_total", {"projection": NAME}
            )
            return found or 0.0

        await eventually(lambda: _value(retries()), lambda n: n >= 2, timeout_s=60)
        ends = await end_offsets(wsettings.kafka, runner.projection.topics)
        behind = sum(end - runner.checkpoint.get(tp, 0) for tp, end in ends.items())
        assert behind == len(rest)  # stalled: the runner holds the batch and retries it
        assert applied(runner) == first
        assert not task.done()
        # the lag gauge keeps being measured during the outage: it shows the stalled records
        await eventually(lambda: _value(lag(runner)), lambda n: n >= len(rest), timeout_s=30)

        await link.up()
        await eventually(lambda: _value(applied(runner)), lambda n: n == first + len(rest))
        await eventually(lambda: _value(lag(runner)), lambda n: n == 0, timeout_s=30)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        target.close()
    # read directly: a blocking read through the forwarder would stall this event loop
    check = warehouse_store(wsettings)
    try:
        assert_story_projected(check, first + len(rest))
        await assert_checkpoint_at_end(wsettings, check)
    finally:
        check.close()


async def test_the_projector_waits_for_a_warehouse_that_is_down_at_start(
    wsettings: Settings, link: Link, unique: str
) -> None:
    """``run_warehouse_projector`` (what ``ringlog projector`` runs) retries its start until the
    warehouse answers, then projects everything."""
    via_link = with_database(wsettings, wsettings.warehouse.database, port=link.port)
    kafka = via_link.kafka.model_copy(update={"client_id": f"c{unique}"})
    via_link = via_link.model_copy(update={"kafka": kafka})
    total = await append(wsettings, story())
    stop = asyncio.Event()
    registry = CollectorRegistry()
    down = warehouse_store(via_link, login_timeout=1, network_timeout=2, socket_timeout=2)
    task = asyncio.create_task(
        run_warehouse_projector(
            via_link,
            stop,
            registry=registry,
            store=down,
            retry=RetryPolicy(backoff_s=0.2),
        )
    )
    check = warehouse_store(wsettings)

    async def failed_starts() -> float:
        assert not task.done(), task
        found = registry.get_sample_value(
            "ringlog_projection_apply_retries_total", {"projection": NAME}
        )
        return found or 0.0

    try:
        # the warehouse is down: the projector keeps failing to start, and keeps trying
        await eventually(failed_starts, lambda n: n >= 2, timeout_s=30)
        assert await check.load_checkpoint(NAME) == {}
        await link.up()

        async def events() -> int:
            assert not task.done(), task
            return int(check.query("SELECT COUNT(*) FROM CALL_EVENTS")[0][0])

        await eventually(events, lambda n: n == total, timeout_s=60)
        assert_story_projected(check, total)
    finally:
        stop.set()
        await task
        check.close()


async def _value(value: float) -> float:
    return value


async def test_a_session_left_inside_a_transaction_does_not_block_the_next_holder(
    wsettings: Settings,
) -> None:
    """A projector killed inside its transaction leaves the session open on the server (the
    fakesnow server keeps it for good); the next store holding the projection ends it before
    writing, so its update of the same row commits instead of conflicting forever. A store
    that does not hold the projection ends nothing."""
    position: Position = ("calls", 0)
    killed = warehouse_store(wsettings, login_timeout=10, network_timeout=30)
    killed.hold(NAME)
    await killed.apply(NAME, [], {position: 5})
    killed.query("BEGIN")
    killed.query(
        'UPDATE "PROJECTION_CHECKPOINTS" SET "NEXT_OFFSET" = 7 WHERE "PROJECTION" = ?', (NAME,)
    )
    # ``killed`` is left as a killed process leaves it: never rolled back, never closed
    observer = warehouse_store(wsettings, login_timeout=10, network_timeout=4)
    successor = warehouse_store(wsettings, login_timeout=10, network_timeout=4)
    try:
        assert await observer.load_checkpoint(NAME) == {position: 5}
        blocked = warehouse_store(wsettings, login_timeout=10, network_timeout=4)
        with pytest.raises(WarehouseError):  # the open transaction still holds the row
            await blocked.apply(NAME, [], {position: 8})
        blocked.close()
        successor.hold(NAME)
        await successor.apply(NAME, [], {position: 9})
        assert await observer.load_checkpoint(NAME) == {position: 9}
        with pytest.raises(WarehouseError):  # the killed session was ended on the server
            killed.query("COMMIT")
    finally:
        for target in (killed, observer, successor):
            target.close()
