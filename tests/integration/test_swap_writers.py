"""Live writers around a blue/green swap, interleaved on purpose (no broker).

A live batch (the sessions view's, the worker's call state) whose transaction read the stored
rows just before a swap held the live writers must not fold them onto the version the swap
replaces: it waits for the swap and
reads the version swapped in (or the swap waits for it). And a batch the live projector
sends after a swap, holding records the swapped-in version folded already (its projector
was behind), folds only those it has not: each event counts once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, Table, create_engine, event, select, text, update

from ringlog.calls.dispatch import DispatchPolicy
from ringlog.calls.state import apply as apply_call
from ringlog.projections import shadow as shadow_module
from ringlog.projections.base import Event
from ringlog.projections.shadow import Layout, Part
from ringlog.schemas import (
    CallDispatched,
    CallRequested,
    Envelope,
    SessionProgressed,
    SessionStarted,
)
from ringlog.sessions.state import SessionState, apply_all
from ringlog.streams.offsets import Position
from ringlog.views.store import CHECKPOINTS, SESSIONS, SESSIONS_VIEW, ViewStore
from ringlog.worker.schema import CALLS, OUTBOX, PROCESSOR, TASK_EVENTS, TASKS
from ringlog.worker.schema import CHECKPOINTS as WORKER_CHECKPOINTS
from ringlog.worker.store import WorkerStore
from tests.support.postgres import fresh_database, fresh_schemas

pytestmark = pytest.mark.integration

TOPIC = "t-sessions"
CALLS_TOPIC = "t-calls"
PHONE = "+14155550123"


def _events() -> list[Event]:
    """One number's session on partition 0 of :data:`TOPIC`: started, then two steps."""
    s = {"session_id": "s-1", "phone": PHONE, "call_ref": "in_1"}
    payloads = [
        SessionStarted(**s, stage="identity"),
        SessionProgressed(**s, stage="date", slots={"date": "monday"}),
        SessionProgressed(**s, stage="time", slots={"time": "9am"}),
    ]
    return [
        Event(TOPIC, 0, offset, Envelope.new(p, source="test")) for offset, p in enumerate(payloads)
    ]


def _folded(events: list[Event]) -> SessionState | None:
    return apply_all(None, [e.envelope for e in events])


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh CRM database: a schema of its own on PostgreSQL, or a SQLite file."""
    with fresh_database(request.param, tmp_path, "swap") as scoped:
        yield scoped


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh CRM database on PostgreSQL (the interleaving below is observed through its
    ``pg_locks``; on SQLite a transaction's read before its first write runs outside it, and
    :func:`~ringlog.projections.shadow.writing` takes the write lock first)."""
    with fresh_schemas(f"swap_{uuid.uuid4().hex[:8]}") as (scoped,):
        yield scoped


async def test_records_a_swapped_in_version_folded_already_are_folded_once(url: str) -> None:
    """The live projector was behind the version swapped in: its next batch holds a step
    that version has, and one it has not. The session counts each step once."""
    started, first, second = _events()
    live = ViewStore.open(url)
    try:
        target = live.sessions_target()
        # what the swap installed: the fold up to ``first``, checkpoint after it
        await target.apply(SESSIONS_VIEW, [started, first], {(TOPIC, 0): 2})
        # the live projector, still at offset 1, sends ``first`` again with ``second``
        await target.apply(SESSIONS_VIEW, [first, second], {(TOPIC, 0): 3})
        assert await live.session(PHONE, TOPIC) == _folded([started, first, second])
        assert await live.load_checkpoint(SESSIONS_VIEW) == {(TOPIC, 0): 3}
    finally:
        live.close()


def _wait_for_swap_lock(
    url: str, table: str, swapped: threading.Event, deadline_s: float = 30.0
) -> None:
    """Block until a transaction holds, or waits for, ``SHARE ROW EXCLUSIVE`` on the live
    ``table`` (the swap's hold on the live writers), or the swap is over."""
    probe = create_engine(url)
    query = text(
        "SELECT count(*) FROM pg_locks WHERE relation = CAST(:table AS regclass) "
        "AND mode = 'ShareRowExclusiveLock'"
    )
    try:
        end = time.monotonic() + deadline_s
        while True:
            with probe.connect() as connection:
                if swapped.is_set() or connection.execute(query, {"table": table}).scalar_one():
                    return
            if time.monotonic() > end:
                raise TimeoutError("the swap never asked for its lock")
            time.sleep(0.01)
    finally:
        probe.dispose()


@dataclass(frozen=True)
class Writer:
    """A live writer that folds onto stored rows, as the stale-read case drives it."""

    table: Table
    topic: str
    log: list[Event]
    open: Callable[[str, str | None], Any]  # (url, shadow) -> the store
    target: Callable[[Any], Any]  # the store's target
    projection: str
    layout: Layout
    state: Callable[[Any], Awaitable[object]]  # the stored state the log decides
    fold: Callable[[list[Event]], object]


def _sessions_writer() -> Writer:
    return Writer(
        SESSIONS,
        TOPIC,
        _events()[:2],
        lambda url, shadow: ViewStore.open(url, shadow=shadow),
        lambda store: store.sessions_target(),
        SESSIONS_VIEW,
        Layout(SESSIONS_VIEW, (Part(SESSIONS, (TOPIC,)),), CHECKPOINTS, (TOPIC,)),
        lambda store: store.session(PHONE, TOPIC),
        _folded,
    )


def _calls_writer() -> Writer:
    ref = "call-1"
    payloads = [
        CallRequested(call_ref=ref, to_number=PHONE, from_number=PHONE, agent_id="agent-1"),
        CallDispatched(call_ref=ref, retell_call_id="retell-1", agent_id="agent-1"),
    ]
    log = [Event(CALLS_TOPIC, 0, i, Envelope.new(p, source="test")) for i, p in enumerate(payloads)]
    policy = DispatchPolicy(max_live_calls=10, cooldown=timedelta(seconds=1))
    parts = (
        Part(CALLS, (CALLS_TOPIC,)),
        Part(OUTBOX, (CALLS_TOPIC,)),
        Part(TASKS, ("t-tasks",)),
        Part(TASK_EVENTS, ("t-tasks",)),
    )

    def fold(events: list[Event]) -> object:
        state = None
        for e in events:
            state = apply_call(state, e.envelope)
        return state

    return Writer(
        CALLS,
        CALLS_TOPIC,
        log,
        lambda url, shadow: WorkerStore(
            url,
            calls_topic=CALLS_TOPIC,
            tasks_topic="t-tasks",
            abt_topic="t-abt",
            policy=policy,
            shadow=shadow,
        ),
        lambda store: store,
        PROCESSOR,
        Layout(PROCESSOR, parts, WORKER_CHECKPOINTS, (CALLS_TOPIC, "t-tasks")),
        lambda store: store.call(ref),
        fold,
    )


def _corrupt(engine: Engine, table: Table) -> None:
    """Change the stored row's state as no fold of the log would (its task, or its count of
    events), leaving its version as it was."""
    with engine.begin() as connection:
        raw = connection.execute(select(table.c.state)).scalar_one()
        state = orjson.loads(raw)
        state = {**state, "task": "corrupted"} if table is SESSIONS else {**state, "events": 99}
        connection.execute(update(table).values(state=orjson.dumps(state).decode()))


@pytest.mark.parametrize("writer", [_sessions_writer, _calls_writer], ids=["sessions", "calls"])
async def test_a_live_batch_that_read_before_a_swap_does_not_undo_it(
    pg_url: str, writer: Callable[[], Writer]
) -> None:
    """A live batch reads the stored row (a corrupted one), then a swap asks to hold the live
    writers, then the batch writes. The swap's mend survives: the row ends as a fresh fold
    of the log, the checkpoint past the batch."""
    url = pg_url
    w = writer()
    first, second = w.log
    shadow = f"rl_next_test_{uuid.uuid4().hex[:8]}"
    live, rebuilt = w.open(url, None), w.open(url, shadow)
    loop = asyncio.get_running_loop()
    read, fired, swapped = asyncio.Event(), threading.Event(), threading.Event()

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # the live batch has read the stored rows: let the swap start, and write only once
        # it asked for its lock (held, waited for, or already released)
        reading = statement.lstrip().upper().startswith("SELECT")
        if reading and w.table.name in statement and not fired.is_set():
            fired.set()
            loop.call_soon_threadsafe(read.set)
            _wait_for_swap_lock(url, w.table.name, swapped)

    try:
        await w.target(live).apply(w.projection, [first], {(w.topic, 0): 1})
        _corrupt(live.engine, w.table)
        await w.target(rebuilt).apply(w.projection, [first], {(w.topic, 0): 1})

        async def settle(at: dict[Position, int]) -> None:
            """Fold into the shadow what the live version has and the shadow has not."""
            have = (await rebuilt.load_checkpoint(w.projection)).get((w.topic, 0), 0)
            todo = [e for e in w.log if have <= e.offset < at.get((w.topic, 0), 0)]
            if todo:
                await w.target(rebuilt).apply(w.projection, todo, at)

        event.listen(live.engine, "after_cursor_execute", after)
        batch = asyncio.create_task(w.target(live).apply(w.projection, [second], {(w.topic, 0): 2}))
        await read.wait()
        position = await shadow_module.swap(rebuilt.engine, shadow, w.layout, settle)
        swapped.set()
        await batch
        event.remove(live.engine, "after_cursor_execute", after)
        assert await w.state(live) == w.fold([first, second])
        assert (await live.load_checkpoint(w.projection)).get((w.topic, 0)) == 2
        assert position.get((w.topic, 0)) == 2, "the swap waited for the batch it met"
    finally:
        live.close()
        rebuilt.close()
        shadow_module.discard(url, shadow)
