"""The worker's state store, one contract on SQLite and on PostgreSQL.

The store is the runtime's target: batches of events go in with their positions; the indexed
rows the loops read come out (due calls, leases under one cap, held calls, owed effects, known
tasks). No broker is needed: events are given as the runtime would hand them over.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, insert, text
from sqlalchemy import event as sql_event

from ringlog.calls.dispatch import DispatchPolicy
from ringlog.calls.tracking import abt_owed
from ringlog.projections.base import Event
from ringlog.schemas import (
    CallDispatched,
    CallRequested,
    Envelope,
    TaskDeleted,
    TaskFieldWriteback,
    TaskRescheduled,
)
from ringlog.schemas.base import EventModel
from ringlog.worker.schema import CALLS as CALL_ROWS
from ringlog.worker.schema import PROCESSOR
from ringlog.worker.store import WorkerStore
from tests.support.postgres import fresh_schemas

pytestmark = pytest.mark.integration

CALLS, TASKS, ABT = "p.calls", "p.tasks", "p.abt"
NOW = datetime.now(UTC)
_offsets = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WorkerStore]:
    policy = DispatchPolicy(max_live_calls=2, cooldown=timedelta(seconds=30))

    def make(url: str) -> WorkerStore:
        return WorkerStore(url, calls_topic=CALLS, tasks_topic=TASKS, abt_topic=ABT, policy=policy)

    if request.param == "sqlite":
        opened = make(f"sqlite:///{tmp_path / 'state.db'}")
        yield opened
        opened.close()
    else:
        with fresh_schemas(f"worker_{uuid.uuid4().hex[:8]}") as (url,):
            opened = make(url)
            yield opened
            opened.close()


def event(topic: str, payload: EventModel, *, at: datetime = NOW, partition: int = 0) -> Event:
    envelope = Envelope.new(payload, source="test", occurred_at=at)
    return Event(topic, partition, next(_offsets), envelope)


def requested(
    ref: str, *, task: str | None = None, due: datetime | None = None, partition: int = 0
) -> Event:
    return event(
        CALLS,
        CallRequested(
            call_ref=ref,
            to_number="+14155550123",
            from_number="+14155559876",
            agent_id="agent",
            task_ref=task,
            scheduled_at=due,
        ),
        at=NOW - timedelta(minutes=1),
        partition=partition,
    )


async def fold(store: WorkerStore, *events: Event) -> None:
    positions: dict[tuple[str, int], int] = {}
    for e in events:
        positions[(e.topic, e.partition)] = e.offset + 1
    await store.apply(PROCESSOR, list(events), positions)


async def test_a_due_call_is_leased_once_and_released_by_its_outcome(store: WorkerStore) -> None:
    await fold(store, requested("a"), requested("later", due=NOW + timedelta(hours=1)))
    first = await store.claim_due([0], owner="w1", lease_ms=60_000)
    assert [s.call_ref for s in first] == ["a"], "only the due call"
    assert await store.claim_due([0], owner="w2", lease_ms=60_000) == [], "leased by w1"
    assert await store.next_due_ms([0]) is not None
    await fold(
        store, event(CALLS, CallDispatched(call_ref="a", retell_call_id="r-a", agent_id="x"))
    )
    state = await store.call("a")
    assert state is not None and state.dispatch == "dispatched" and state.live
    assert await store.claim_due([0], owner="w2", lease_ms=60_000) == []
    assert await store.claim_due([1], owner="w2", lease_ms=60_000) == [], "other partitions"


async def test_live_calls_and_leases_of_every_owner_share_one_cap(store: WorkerStore) -> None:
    await fold(store, requested("live"))
    await store.claim_due([0], owner="w1", lease_ms=60_000)
    await fold(
        store, event(CALLS, CallDispatched(call_ref="live", retell_call_id="r", agent_id="x"))
    )
    await fold(store, requested("b", due=NOW - timedelta(seconds=3)), requested("c", partition=1))
    # cap 2: one live call, so one more slot, given to the oldest due across owners' claims
    taken = await store.claim_due([0], owner="w1", lease_ms=60_000)
    assert [s.call_ref for s in taken] == ["b"]
    assert await store.claim_due([1], owner="w2", lease_ms=60_000) == [], "the cap is shared"


async def test_an_expired_lease_lets_the_next_owner_place_the_call(store: WorkerStore) -> None:
    await fold(store, requested("a"))
    assert len(await store.claim_due([0], owner="dead", lease_ms=-1)) == 1
    again = await store.claim_due([0], owner="w2", lease_ms=60_000)
    assert [s.call_ref for s in again] == ["a"]


async def test_a_deletion_folded_before_its_request_holds_and_cancels_the_call(
    store: WorkerStore,
) -> None:
    await fold(store, event(TASKS, TaskDeleted(task_id="t1")))
    await fold(store, requested("doomed", task="t1"))
    assert await store.claim_due([0], owner="w", lease_ms=60_000) == [], "held by its effect"
    [effect] = await store.outbox([0])
    assert effect.type == "call.cancelled" and effect.key == "doomed"
    await fold(store, Event(CALLS, 0, next(_offsets), effect))
    assert await store.outbox([0]) == [], "folded effects leave the outbox"
    state = await store.call("doomed")
    assert state is not None and state.dispatch == "cancelled"
    assert await store.claim_due([0], owner="w", lease_ms=60_000) == []


async def test_a_reschedule_in_the_same_batch_as_its_request_moves_the_call(
    store: WorkerStore,
) -> None:
    later = NOW + timedelta(hours=2)
    await fold(
        store,
        requested("moved", task="t2"),
        event(TASKS, TaskRescheduled(task_id="t2", scheduled_at=later)),
    )
    [effect] = await store.outbox([0])
    await fold(store, Event(CALLS, 0, next(_offsets), effect))
    state = await store.call("moved")
    assert state is not None and state.request is not None
    assert state.request.due_at == later
    assert await store.next_due_ms([0]) == int(later.timestamp() * 1000)


async def test_tasks_are_known_from_either_topic_and_deletion_is_final(
    store: WorkerStore,
) -> None:
    assert await store.task_deleted("t") is None
    await fold(store, requested("r", task="named-by-call"))
    assert await store.task_deleted("named-by-call") is False
    await fold(store, event(TASKS, TaskDeleted(task_id="t")))
    await fold(store, event(TASKS, TaskFieldWriteback(task_id="t", fields={"status": "open"})))
    await fold(store, requested("r2", task="t"))
    assert await store.task_deleted("t") is True


async def test_owed_effects_are_found_until_folded_back(store: WorkerStore) -> None:
    await fold(store, requested("o"))
    await fold(store, event(CALLS, CallDispatched(call_ref="o", retell_call_id="r", agent_id="x")))
    [owing] = await store.owing([0])
    [abt] = abt_owed(owing)
    await fold(store, Event(ABT, 0, next(_offsets), Envelope.new(abt, source="t", key="o")))
    assert await store.owing([0]) == []
    checkpoint = await store.load_checkpoint(PROCESSOR)
    assert checkpoint[(ABT, 0)] > 0 and checkpoint[(CALLS, 0)] > 0


async def test_the_earliest_due_time_reads_the_due_index_not_the_ended_calls(
    store: WorkerStore,
) -> None:
    """The dispatcher asks for the earliest due time every round: with many ended calls (no
    due time) in the store, the answer reads one index entry per partition, not every call."""
    ended = [
        {
            "topic": CALLS,
            "call_ref": f"ended-{i}",
            "partition": i % 4,
            "version": 1,
            "state": "{}",
            "due_ms": None,
            "live": False,
            "owes": False,
            "task_ref": None,
        }
        for i in range(20_000)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(CALL_ROWS), ended)
    with store.engine.begin() as connection:  # as autovacuum would, after a bulk load
        connection.execute(text("ANALYZE worker_calls"))
    soon, sooner = NOW + timedelta(hours=2), NOW + timedelta(hours=1)
    await fold(store, requested("soon", due=soon, partition=1))
    await fold(store, requested("sooner", due=sooner, partition=3))

    statements: list[tuple[str, object]] = []

    def seen(_c: Connection, _cur: object, sql: str, params: object, *_: object) -> None:
        statements.append((sql, params))

    sql_event.listen(store.engine, "before_cursor_execute", seen)
    try:
        assert await store.next_due_ms([0, 1, 2]) == int(soon.timestamp() * 1000)
        assert await store.next_due_ms([0, 1, 2, 3]) == int(sooner.timestamp() * 1000)
        assert await store.next_due_ms([0, 2]) is None, "ended calls are never due"
    finally:
        sql_event.remove(store.engine, "before_cursor_execute", seen)

    if store.engine.dialect.name != "postgresql":
        return  # SQLite's plan does not say how many rows it read
    assert statements
    with store.engine.connect() as connection:
        for sql, params in statements:
            plan = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}",
                params,  # type: ignore[arg-type]
            ).scalar_one()
            read = _rows_read(plan if isinstance(plan, list) else orjson.loads(plan))
            assert read <= 8, f"{read} rows read for the earliest due time: {sql}"


def _rows_read(plan: object) -> int:
    """Rows the scans of a PostgreSQL JSON plan produced or filtered out, over their loops."""
    if isinstance(plan, list):
        return sum(_rows_read(p) for p in plan)
    if not isinstance(plan, dict):
        return 0
    node = plan.get("Plan", plan)
    own = 0
    if "Scan" in str(node.get("Node Type", "")):
        loops = int(node.get("Actual Loops", 1))
        own = (int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))) * loops
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


async def test_a_fold_committing_at_any_point_of_a_claim_never_exceeds_the_cap(
    store: WorkerStore,
) -> None:
    """The fold of a placement's outcome turns its lease into a live call in one commit; a
    claim running meanwhile must count both as one slot, wherever that commit falls. The
    fold is committed just before the claim's first, second, … statement, until the claim
    runs out of statements; each time one call is live, one in flight, and no third fits
    under the cap of two."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's claim holds the write lock: a fold waits for it to end")
    url = store.engine.url.render_as_string(hide_password=False)
    points = 0
    for k in itertools.count(1):
        racing = WorkerStore(
            url, calls_topic=f"race{k}.calls", tasks_topic=TASKS, abt_topic=ABT, policy=store.policy
        )
        try:
            taken = await _claim_with_fold_before(racing, k)
            if taken is None:
                break
            points += 1
            assert taken == [], f"a third call placed, the fold committed before statement {k}"
            state = await racing.call("b")
            assert state is not None and state.live
        finally:
            racing.close()
    assert points >= 2, "before the lock, and between the lock and the counts"


async def _claim_with_fold_before(store: WorkerStore, k: int) -> list[str] | None:
    """Calls a, b, c due; a placed and live, b leased; claim, committing the fold of b's
    placement just before the claim's ``k``-th statement. The refs claimed (``None``: the
    claim ran fewer than ``k`` statements)."""
    topic = store.calls_topic
    due = [Event(topic, 0, next(_offsets), requested(r).envelope) for r in "abc"]
    await store.apply(PROCESSOR, due, {(topic, 0): due[-1].offset + 1})
    first = await store.claim_due([0], owner="w1", lease_ms=60_000)
    assert [s.call_ref for s in first] == ["a", "b"], "two slots, the oldest due first"
    live, placed = (
        event(topic, CallDispatched(call_ref=r, retell_call_id=r, agent_id="g")) for r in "ab"
    )
    await store.apply(PROCESSOR, [live], {(topic, 0): live.offset + 1})
    seen = 0

    def fold_before(_c: Connection, _cur: object, _sql: str, *_: object) -> None:
        nonlocal seen
        seen += 1
        if seen == k:  # runs on another connection of the pool, committed before going on
            store._apply(PROCESSOR, [placed], {(topic, 0): placed.offset + 1})

    sql_event.listen(store.engine, "before_cursor_execute", fold_before)
    try:
        taken = await store.claim_due([0], owner="w2", lease_ms=60_000)
    finally:
        sql_event.remove(store.engine, "before_cursor_execute", fold_before)
    return [s.call_ref for s in taken] if seen >= k else None
