"""The ``ringlog projector`` process killed with SIGKILL inside a target transaction, then
restarted, ends with exactly the tables a clean projection of the same log produces.

Each test appends a few thousand events (many sessions, calls and tasks) in three phases,
runs the real CLI as a child process, and three times stops it *inside* a write transaction
and kills it with SIGKILL, restarting it after each kill:

* CRM on PostgreSQL: the projector's connection is found in ``pg_stat_activity`` by its
  ``application_name``. The first kill comes while its first transaction has written its rows
  and waits for the checkpoint table, which the test holds locked (between the write and the
  commit); the next two come while a transaction that has written (``backend_xid`` is set)
  is writing rows rather than the checkpoint (mid-batch). The process is frozen with SIGSTOP
  and the transaction seen still open and not committing before the SIGKILL, so the kill
  cannot come after the commit.
* Warehouse on fakesnow: the projector reaches the warehouse through a tap that reads the
  connector's HTTP requests and holds one statement of a transaction (``COMMIT`` of the first
  batch, a mid-batch ``INSERT``, ``COMMIT`` of a later batch); the process is killed while
  that request is pending, so the server-side transaction is open with every earlier
  statement applied.

After the last restart the checkpoints must reach the end of the log, and every table
(checkpoints included) must equal, row for row, a clean uninterrupted projection of the same
topics into a fresh target by the same code (``crm_runner`` / ``warehouse_runner``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, create_engine, text

from ringlog.config import HOME_ENV, Settings
from ringlog.projections.crm import crm_projection, crm_runner
from ringlog.projections.crm import default_group_id as crm_group_id
from ringlog.projections.crm.store import CrmStore
from ringlog.projections.warehouse import (
    NAME as WAREHOUSE,
)
from ringlog.projections.warehouse import (
    default_group_id as warehouse_group_id,
)
from ringlog.projections.warehouse import (
    warehouse_projection,
    warehouse_runner,
    warehouse_store,
)
from ringlog.schemas import (
    AbtEvent,
    Appointment,
    CallDispatched,
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
from tests.support.postgres import POSTGRES_URL, fresh_schemas
from tests.support.projector_process import Held, ProjectorProcess, SnowflakeTap

pytestmark = pytest.mark.integration

#: Booking sessions in the story; each brings two calls, six turns, a task and an outbound call.
SESSIONS = 240
T0 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)
CLINIC = "+14155559876"
#: How long a restarted projector may take to reach the end of the log.
RECOVERY_S = 30.0


# -- the story ----------------------------------------------------------------------------------


def _env(payload: EventModel, minutes: float) -> Envelope:
    return Envelope.new(payload, source="test", occurred_at=T0 + dt.timedelta(minutes=minutes))


def _session(i: int) -> tuple[list[Envelope], list[Envelope]]:
    """Session ``i``'s ``sessions`` events and its calls' turns: a call that drops at the date,
    a call back that completes (one in four drops again)."""
    s = {"session_id": f"S{i}", "phone": f"+1415{i:07d}"}
    first, second = f"in_{i}_a", f"in_{i}_b"
    sessions = [
        _env(SessionStarted(**s, call_ref=first, stage="identity"), i),
        _env(SessionProgressed(**s, call_ref=first, stage="date", slots={"name": "N"}), i + 1),
        _env(
            SessionDropped(
                **s,
                call_ref=first,
                stage="date",
                reason="caller_hangup",
                expires_at=T0 + dt.timedelta(days=1),
            ),
            i + 2,
        ),
        _env(
            SessionResumed(**s, call_ref=second, stage="date", previous_call_refs=(first,)), i + 9
        ),
        _env(SessionProgressed(**s, call_ref=second, stage="confirm"), i + 10),
    ]
    if i % 4 == 3:
        end: EventModel = SessionDropped(
            **s,
            call_ref=second,
            stage="confirm",
            reason="caller_hangup",
            expires_at=T0 + dt.timedelta(days=2),
        )
    else:
        end = SessionCompleted(
            **s,
            call_ref=second,
            call_refs=(first, second),
            appointment=Appointment(date=dt.date(2024, 10, 8), time="10:30", site=f"Site {i % 7}"),
            patient=Patient(name=f"Patient {i}", date_of_birth=dt.date(1950 + i % 50, 1, 1)),
        )
    sessions.append(_env(end, i + 11))
    turns = []
    for ref, start in ((first, i), (second, i + 9)):
        for index, role in enumerate(("agent", "user", "agent")):
            turn = DialogTurn(
                call_ref=ref,
                call_id=f"retell-{ref}",
                session_id=f"S{i}",
                turn_index=index,
                role=role,
                text=f"{role} line {index} of {ref}",
                stage="date",
                latency_ms=500.0 + index if role == "agent" else None,
            )
            turns.append(_env(turn, start + index / 10))
    return sessions, turns


def _task(i: int) -> list[Envelope]:
    """Task ``i``: called in, written back twice, rescheduled; one in five deleted."""
    task = f"task-{i}"
    events = [
        _env(TaskIncomingCall(task_id=task, from_number=f"+1415{i:07d}", to_number=CLINIC), i),
        _env(TaskFieldWriteback(task_id=task, fields={"status": "open", "priority": "low"}), i),
        _env(TaskFieldWriteback(task_id=task, fields={"status": "scheduled"}), i + 1),
        _env(
            TaskRescheduled(task_id=task, call_ref=f"out_{i}", scheduled_at=T0 + dt.timedelta(1)),
            i + 2,
        ),
    ]
    if i % 5 == 0:
        events.append(_env(TaskDeleted(task_id=task, reason="duplicate"), i + 3))
    return events


def _hook(name: str, ref: str, minutes: float) -> Envelope:
    model = {
        "call_started": RetellCallStarted,
        "call_ended": RetellCallEnded,
        "call_analyzed": RetellCallAnalyzed,
    }[name]
    start = int((T0 + dt.timedelta(minutes=minutes)).timestamp() * 1000)
    call = retell_call(name) | {
        "call_id": f"retell-{ref}",
        "metadata": {"call_ref": ref},
        "start_timestamp": start,
    }
    if name != "call_started":
        call |= {"end_timestamp": start + 60_000, "duration_ms": 60_000}
    return _env(model.from_body({"event": name, "call": call}), minutes)


def _outbound(i: int) -> list[Envelope]:
    """Outbound call ``out_i``: requested, dispatched, started, ended, analysed, with ABT."""
    ref = f"out_{i}"

    def abt(name: str, minutes: float) -> Envelope:
        event = AbtEvent(
            abt_id=abt_id_for(ref, name), name=name, call_ref=ref, retell_call_id=f"retell-{ref}"
        )
        return _env(event, minutes)

    request = CallRequested(
        call_ref=ref,
        to_number=f"+1415{i:07d}",
        from_number=CLINIC,
        agent_id="agent_flu",
        task_ref=f"task-{i}",
    )
    dispatched = CallDispatched(call_ref=ref, retell_call_id=f"retell-{ref}", agent_id="a")
    return [
        _env(request, i),
        _env(dispatched, i + 0.5),
        abt("voice_call_initiated", i + 0.6),
        _hook("call_started", ref, i + 1),
        abt("call_started", i + 1.1),
        _hook("call_ended", ref, i + 2),
        _hook("call_analyzed", ref, i + 3),
        abt("call_completed", i + 3.1),
    ]


def story(*, calls: bool) -> list[list[Envelope]]:
    """The story in three phases. Every entity's events are split in thirds, so each phase
    adds to entities the earlier phases created (later batches update stored rows)."""
    streams: list[list[Envelope]] = []
    for i in range(SESSIONS):
        sessions, turns = _session(i)
        streams += [sessions, turns, _task(i)]
        if calls:
            streams.append(_outbound(i))
    return [
        [e for s in streams for e in s[len(s) * k // 3 : len(s) * (k + 1) // 3]] for k in range(3)
    ]


def expected_crm_counts() -> dict[str, int]:
    """Rows the story gives each CRM table (checks the reference is not vacuous)."""
    completed = sum(1 for i in range(SESSIONS) if i % 4 != 3)
    return {
        "crm_patients": completed,
        "crm_appointments": completed,
        "crm_interactions": 2 * SESSIONS,
        "crm_interaction_turns": 6 * SESSIONS,
        "crm_tasks": SESSIONS,
        "crm_task_fields": 2 * SESSIONS,
    }


async def append(settings: Settings, envelopes: Sequence[Envelope]) -> None:
    async with LogProducer(settings.kafka) as producer:
        await producer.append_many(envelopes)


# -- waiting and comparing ----------------------------------------------------------------------


async def reach_end(
    load: Callable[[], Awaitable[dict[Position, int]]],
    ends: Mapping[Position, int],
    projector: ProjectorProcess,
    *,
    what: str,
    evidence: Callable[[], str] = lambda: "",
    timeout_s: float = RECOVERY_S,
) -> None:
    """Wait until the positions ``load`` returns reach ``ends``.

    Fails at once if the projector exits, and after ``timeout_s`` with the distance from the
    end, ``evidence()`` and the projector's output.
    """
    started = time.monotonic()
    while True:
        done = await load()
        behind = {tp: end - done.get(tp, 0) for tp, end in ends.items() if done.get(tp, 0) < end}
        if not behind:
            return
        if projector.returncode is not None:
            raise AssertionError(
                f"{what}: the projector exited ({projector.returncode})\n{projector.output()}"
            )
        if time.monotonic() - started > timeout_s:
            raise AssertionError(
                f"{what}: the projection did not reach the end of the log within {timeout_s}s; "
                f"{sum(behind.values())} records behind in {len(behind)} partitions\n"
                f"{evidence()}\n--- projector output (tail) ---\n{projector.output()}"
            )
        await asyncio.sleep(0.1)


def assert_same_tables(
    found: Mapping[str, list[tuple[Any, ...]]], reference: Mapping[str, list[tuple[Any, ...]]]
) -> None:
    """Every table has exactly the reference's rows (both ordered by key): nothing missing,
    nothing doubled, nothing different."""
    assert found.keys() == reference.keys()
    problems = []
    for name, expected in reference.items():
        got = found[name]
        if got != expected:
            extra = list((Counter(got) - Counter(expected)).elements())
            missing = list((Counter(expected) - Counter(got)).elements())
            problems.append(
                f"{name}: {len(got)} rows, reference {len(expected)}; {len(extra)} not in the "
                f"reference, e.g. {extra[:2]}; {len(missing)} missing, e.g. {missing[:2]}"
            )
    assert not problems, "\n".join(problems)


def applied_and_committed(
    load: Callable[[], Awaitable[dict[Position, int]]],
    settings: Settings,
    group: str,
    ends: Mapping[Position, int],
) -> Callable[[], Awaitable[dict[Position, int]]]:
    """Per partition, the lower of the target's checkpoint and the group's Kafka offset: at
    the end only once the projector applied everything *and* (so it is up and positioned)
    committed its offsets."""

    async def both() -> dict[Position, int]:
        checkpoint = await load()
        offsets = await group_offsets(settings, group, ends)
        return {tp: min(checkpoint.get(tp, 0), offsets.get(tp, 0)) for tp in ends}

    return both


async def group_offsets(
    settings: Settings, group: str, ends: Mapping[Position, int]
) -> dict[Position, int]:
    """The offsets consumer group ``group`` committed for the partitions of ``ends``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        partitions = [TopicPartition(topic, partition) for topic, partition in ends]
        found = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): m.offset for tp, m in found.items() if m.offset >= 0}


def with_client_id(settings: Settings, client_id: str) -> Settings:
    """``settings`` with a Kafka client id of its own: the projector's consumer groups are
    ``<client_id>-projector-<name>``, so a fresh id gives fresh groups."""
    kafka = settings.kafka.model_copy(update={"client_id": client_id})
    return settings.model_copy(update={"kafka": kafka})


def child_env(settings: Settings, stack_home: Path) -> dict[str, str]:
    """What a projector child needs to join this test's stack, topics and consumer groups."""
    return {
        HOME_ENV: str(stack_home),
        "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "RINGLOG_KAFKA_CLIENT_ID": settings.kafka.client_id,
    }


# -- CRM on PostgreSQL --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A backend of the projector as ``pg_stat_activity`` shows it."""

    pid: int
    state: str | None
    #: when its open transaction began (``None``: no transaction open)
    xact_start: dt.datetime | None
    #: the transaction's id, assigned on its first write (``None``: nothing written yet)
    xid: str | None
    wait_event_type: str | None
    query: str


_ACTIVITY = text(
    "SELECT pid, state, xact_start, backend_xid::text, wait_event_type, query "
    "FROM pg_stat_activity WHERE application_name = :app"
)


def blocked_on_a_lock(backend: Backend) -> bool:
    """The transaction waits for a lock (one the test holds)."""
    return backend.wait_event_type == "Lock"


def writing_rows(backend: Backend) -> bool:
    """The transaction is writing the projection's rows, not its checkpoint (mid-batch)."""
    return "crm_projection_checkpoints" not in backend.query


class PgWatch:
    """Finds the projector's write transaction in ``pg_stat_activity`` and kills it there."""

    def __init__(self, engine: Engine, app: str) -> None:
        self.engine = engine
        self.app = app

    def _backends(self, connection: Connection) -> list[Backend]:
        return [Backend(*row) for row in connection.execute(_ACTIVITY, {"app": self.app})]

    def _writing(self, connection: Connection) -> list[Backend]:
        """Backends in a transaction that has written (has an xid)."""
        return [b for b in self._backends(connection) if b.xact_start and b.xid]

    def kill_in_transaction(
        self,
        projector: ProjectorProcess,
        when: Callable[[Backend], bool],
        *,
        looking: Callable[[], object] | None = None,
        timeout_s: float = 30.0,
    ) -> Backend:
        """SIGKILL ``projector`` while its transaction has written rows and not committed.

        Polls for a backend of the projector whose open transaction has an xid (it wrote) and
        for which ``when`` holds, freezes the process (SIGSTOP), checks for 0.2 s that the
        same transaction stays open and is not running ``COMMIT`` (a frozen client cannot
        send one), then kills it. Returns the backend as it was seen. ``looking()`` is called
        after the first look.
        """
        deadline = time.monotonic() + timeout_s
        seen: list[Backend] = []
        with self.engine.connect() as connection:
            while time.monotonic() < deadline:
                assert projector.returncode is None, projector.output()
                found = [b for b in self._writing(connection) if when(b)]
                if looking is not None:
                    looking()
                    looking = None
                if not found:
                    seen = self._backends(connection) or seen
                    time.sleep(0.002)
                    continue
                backend = found[0]
                projector.freeze()
                if self._still_open(connection, backend):
                    projector.kill()
                    return backend
                projector.thaw()  # it was committing: try the next transaction
        raise AssertionError(
            f"no write transaction of the projector for {when.__name__} in {timeout_s}s; "
            f"last seen: {seen}"
        )

    async def kill_while(
        self,
        projector: ProjectorProcess,
        when: Callable[[Backend], bool],
        work: Callable[[], Awaitable[None]],
    ) -> Backend:
        """:meth:`kill_in_transaction` in a thread; ``work()`` once it is looking."""
        loop = asyncio.get_running_loop()
        looking = asyncio.Event()
        catching = asyncio.create_task(
            asyncio.to_thread(
                self.kill_in_transaction,
                projector,
                when,
                looking=lambda: loop.call_soon_threadsafe(looking.set),
            )
        )
        waiting = asyncio.create_task(looking.wait())
        await asyncio.wait({catching, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if looking.is_set():
            await work()
        return await catching

    def _still_open(self, connection: Connection, backend: Backend) -> bool:
        if backend.state == "active" and backend.query.lstrip().upper().startswith("COMMIT"):
            return False
        for _ in range(5):
            time.sleep(0.04)
            now = {b.pid: b for b in self._writing(connection)}.get(backend.pid)
            if now is None or (now.xact_start, now.xid) != (backend.xact_start, backend.xid):
                return False
        return True

    def wait_gone(self, pid: int, timeout_s: float = 15.0) -> None:
        """Wait until backend ``pid`` has ended (PostgreSQL rolls its transaction back)."""
        deadline = time.monotonic() + timeout_s
        with self.engine.connect() as connection:
            while time.monotonic() < deadline:
                alive = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
                if not alive:
                    return
                time.sleep(0.02)
        raise AssertionError(f"backend {pid} of the killed projector is still there")


@pytest.fixture
def crm_urls(unique: str) -> Iterator[tuple[str, str, str]]:
    """PostgreSQL URLs of two fresh schemas: the killed projector's (tagged with an
    ``application_name`` of its own), the test's reader of that schema, and the reference."""
    with fresh_schemas(f"crm_kill_{unique}", f"crm_ref_{unique}") as (kill, ref):
        yield (
            f"{kill}&application_name=ringlog-kill-{unique}",
            f"{kill}&application_name=ringlog-kill-{unique}-test",
            ref,
        )


async def test_crm_projector_killed_inside_its_transaction_recovers_exactly(
    topics: Settings,
    stack_home: Path,
    unique: str,
    tmp_path: Path,
    crm_urls: tuple[str, str, str],
) -> None:
    """``ringlog projector --only crm`` killed three times inside a PostgreSQL transaction
    (between the write and the commit, then twice mid-batch) and restarted: nothing of a
    killed transaction is committed, and the CRM ends equal to a clean projection, with the
    checkpoint and the group's Kafka offsets at the end of the log."""
    projector_url, reader_url, reference_url = crm_urls
    app = f"ringlog-kill-{unique}"
    phases = story(calls=False)
    crm_topics = crm_projection(topics).topics
    child = with_client_id(topics, f"c{unique}")
    group = crm_group_id(child)
    projector = ProjectorProcess(
        {**child_env(child, stack_home), "RINGLOG_CRM_URL": projector_url},
        tmp_path / "projector.log",
        only="crm",
    )
    store = CrmStore(reader_url)  # creates the tables, so the checkpoint table can be locked
    reference = CrmStore(reference_url)
    watch_engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    watch = PgWatch(watch_engine, app)
    locker = create_engine(reader_url)
    kills: list[Backend] = []
    try:
        # kill 1: the first transaction has written its rows and waits for the checkpoint
        # table (locked here): killed between the write and the commit
        await append(topics, phases[0])
        with locker.connect() as lock:
            lock.execute(text("LOCK TABLE crm_projection_checkpoints IN EXCLUSIVE MODE"))
            projector.start()
            kills.append(
                await asyncio.to_thread(watch.kill_in_transaction, projector, blocked_on_a_lock)
            )
            lock.rollback()
        await asyncio.to_thread(watch.wait_gone, kills[-1].pid)
        assert all(not rows for rows in store.snapshot().values()), "the killed batch committed"

        # kill 2: mid-batch, while phase 2 is being written
        projector.start()
        ends = await end_offsets(topics.kafka, crm_topics)
        both = applied_and_committed(lambda: store.load_checkpoint("crm"), topics, group, ends)
        await reach_end(both, ends, projector, what="the restart after kill 1")
        work = functools.partial(append, topics, phases[1])
        kills.append(await watch.kill_while(projector, writing_rows, work))
        before = await store.load_checkpoint("crm")  # the killed transaction cannot commit now
        await asyncio.to_thread(watch.wait_gone, kills[-1].pid)
        assert await store.load_checkpoint("crm") == before, "the killed batch committed"

        # kill 3: mid-batch again; restarted at once, while the old backend may still hold locks
        projector.start()
        work = functools.partial(append, topics, phases[2])
        kills.append(await watch.kill_while(projector, writing_rows, work))
        projector.start()

        ends = await end_offsets(topics.kafka, crm_topics)
        both = applied_and_committed(lambda: store.load_checkpoint("crm"), topics, group, ends)
        await reach_end(both, ends, projector, what="the last restart")
        assert projector.stop() == 0, projector.output()

        reference_group = f"g-{unique}-reference"
        clean = crm_runner(
            topics, reference, group_id=reference_group, registry=CollectorRegistry()
        )
        await clean.run_until_caught_up(timeout_s=60)
        expected = reference.snapshot()
        found = store.snapshot()
        stored = await store.load_checkpoint("crm")
        offsets = await group_offsets(topics, group, ends)
    finally:
        projector.kill()
        store.close()
        reference.close()
        locker.dispose()
        watch_engine.dispose()

    assert kills[0].wait_event_type == "Lock", kills
    assert len({k.pid for k in kills}) == 3, kills  # three transactions, each killed open
    at_end = {tp: end for tp, end in ends.items() if end}
    counts = {name: len(rows) for name, rows in expected.items()}
    assert counts == {**expected_crm_counts(), "crm_projection_checkpoints": len(at_end)}
    assert stored == at_end
    assert offsets == at_end  # the group's Kafka offsets followed the checkpoint
    assert_same_tables(found, expected)


# -- the warehouse on fakesnow ------------------------------------------------------------------


#: The phone-hash key of the warehouse test: the projector child reaches the warehouse through
#: the tap, which is not the embedded stack's address, so it refuses the default key.
TAP_HASH_KEY = "projector-kill-test-key"


def with_warehouse(settings: Settings, database: str) -> Settings:
    """``settings`` projecting into a warehouse database of its own, numbers hashed under
    :data:`TAP_HASH_KEY`."""
    w = settings.warehouse.model_copy(
        update={"database": database, "phone_hash_key": SecretStr(TAP_HASH_KEY)}
    )
    return settings.model_copy(update={"warehouse": w})


def server_errors_since(path: Path, offset: int) -> str:
    """The failed statements and their errors in the fakesnow server's log after byte
    ``offset``, each distinct line once with how often it appeared."""
    if not path.exists():
        return "(no fakesnow log: the warehouse is not the embedded one)"
    with path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    seen = Counter(
        line[:150] for line in lines if "Unhandled exception" in line or "Exception:" in line
    )
    return "--- fakesnow server errors since the restart ---\n" + "\n".join(
        f"{count} x {line}" for line, count in seen.items()
    )


def wedge_evidence(tap: SnowflakeTap, killed: Held, server_log: Path, offset: int) -> str:
    """What explains a restart that does not catch up: the server's errors since, what the
    killed transaction had run, and whether its session is still open on the server."""
    return (
        server_errors_since(server_log, offset)
        + "\n--- statements the killed transaction had run ---\n"
        + "\n".join(s[:100] for s in killed.transaction)
        + "\n--- the killed projector's session still answers on the server: "
        + f"{tap.session_answers(killed.authorization)} ---"
    )


#: Where each kill stops the warehouse transaction (the request the tap holds).
HOLDS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("COMMIT of the first batch", lambda sql: sql.strip().upper() == "COMMIT"),
    (
        "mid-batch: INSERT INTO DIALOG_TURNS",
        lambda sql: sql.startswith('INSERT INTO "DIALOG_TURNS" '),
    ),
    ("COMMIT of a later batch", lambda sql: sql.strip().upper() == "COMMIT"),
)


async def test_warehouse_projector_killed_inside_its_transaction_recovers_exactly(
    topics: Settings, stack_home: Path, unique: str, tmp_path: Path
) -> None:
    """``ringlog projector --only warehouse`` killed three times inside a warehouse
    transaction (see :data:`HOLDS`) and restarted: each restart catches up, and the warehouse
    ends equal to a clean projection, with the checkpoint and the group's Kafka offsets at the
    end of the log.

    The fakesnow server (0.12.1) keeps a killed client's session, and its open transaction,
    for good; before the restarted projector ended it (``warehouse.fencing``), its ``UPDATE``
    of rows that transaction had updated failed with DuckDB's "Conflict on update!" on every
    retry. On a failure the message shows the server's errors, the statements the killed
    transaction had run, and whether its session still answers.
    """
    w = topics.warehouse
    if w.host is None or w.port is None or w.protocol != "http":
        pytest.skip("needs the embedded fakesnow server (plain HTTP) to put the tap in front")
    killed = with_warehouse(topics, f"WHK_{unique.upper()}")
    clean = with_warehouse(topics, f"WHR_{unique.upper()}")
    phases = story(calls=True)
    wh_topics = warehouse_projection(topics).topics
    server_log = stack_home / "logs" / "warehouse.log"
    tap = SnowflakeTap(w.host, w.port)
    child = with_client_id(topics, f"c{unique}")
    group = warehouse_group_id(child)
    env = {
        **child_env(child, stack_home),
        "RINGLOG_SNOWFLAKE_DATABASE": killed.warehouse.database,
        "RINGLOG_SNOWFLAKE_HOST": "127.0.0.1",
        "RINGLOG_SNOWFLAKE_PORT": str(tap.port),
        "RINGLOG_SNOWFLAKE_PHONE_HASH_KEY": TAP_HASH_KEY,
    }
    projector = ProjectorProcess(env, tmp_path / "projector.log", only="warehouse")
    store = warehouse_store(killed, login_timeout=10, network_timeout=30)
    reference = warehouse_store(clean, login_timeout=10, network_timeout=30)
    held: list[Held] = []
    ends: dict[Position, int] = {}
    try:
        for number, (phase, (where, predicate)) in enumerate(zip(phases, HOLDS, strict=True)):
            if number:
                log_offset = server_log.stat().st_size if server_log.exists() else 0
                await reach_end(
                    applied_and_committed(
                        lambda: store.load_checkpoint(WAREHOUSE), topics, group, ends
                    ),
                    ends,
                    projector,
                    what=f"the restart after the kill at {HOLDS[number - 1][0]}",
                    evidence=functools.partial(
                        wedge_evidence, tap, held[-1], server_log, log_offset
                    ),
                )
            tap.hold(predicate)
            await append(topics, phase)
            ends = await end_offsets(topics.kafka, wh_topics)
            if not number:
                projector.start()
            held.append(await asyncio.to_thread(tap.wait_held, 30.0))
            # the projector waits for the held request: nothing more of it can commit
            committed = await store.load_checkpoint(WAREHOUSE)
            projector.kill()
            # nothing of the killed transaction became visible
            assert await store.load_checkpoint(WAREHOUSE) == committed, where
            if not number:
                assert all(not rows for rows in store.snapshot().values()), where
            projector.start()

        both = applied_and_committed(lambda: store.load_checkpoint(WAREHOUSE), topics, group, ends)
        await reach_end(both, ends, projector, what="the last restart")
        assert projector.stop() == 0, projector.output()
        runner = warehouse_runner(
            clean, reference, group_id=f"g-{unique}-reference", registry=CollectorRegistry()
        )
        await runner.run_until_caught_up(timeout_s=60)
        expected = reference.snapshot()
        found = store.snapshot()
        stored = await store.load_checkpoint(WAREHOUSE)
        offsets = await group_offsets(topics, group, ends)
    finally:
        projector.kill()
        tap.end_sessions()  # roll back what killed clients left open on the shared server
        tap.close()
        store.close()
        reference.close()

    assert all(expected.values()), {name: len(rows) for name, rows in expected.items()}
    assert len(expected["CALLS"]) == SESSIONS and len(expected["SESSIONS"]) == SESSIONS
    at_end = {tp: end for tp, end in ends.items() if end}
    assert stored == at_end
    assert offsets == at_end  # the group's Kafka offsets followed the checkpoint
    assert_same_tables(found, expected)
