"""Blue/green rebuilds of the warehouse (fakesnow behind the real Snowflake connector), with
and without a running warehouse projector.

``--verify`` finds a row changed behind the projection's back and a rebuild mends it; a
rebuild under a running projector and live traffic loses nothing (a fresh fold of the log
then finds the live tables equal) while a reader never sees a table shrink (no half-built
version); a rebuild's hold stops the live projector's writes until the hold ends, is ended
when its swap fails, and expires when its rebuild was killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ringlog.config import Settings
from ringlog.projections import rebuilds
from ringlog.projections.rebuildable import RebuildRefused
from ringlog.projections.warehouse import (
    NAME,
    WarehouseStore,
    holds,
    warehouse_runner,
    warehouse_store,
)
from ringlog.projections.warehouse.versions import WarehouseVersions
from ringlog.streams.offsets import Position
from ringlog.streams.producer import LogProducer
from tests.integration.test_warehouse_projection import with_database
from tests.support.logread import eventually
from tests.support.traffic import keep_appending, sessions_and_calls

pytestmark = pytest.mark.integration

#: one statement, so the three counts are of one snapshot
_COUNTS = (
    'SELECT (SELECT COUNT(*) FROM "SESSIONS"), (SELECT COUNT(*) FROM "CALLS"), '
    '(SELECT COUNT(*) FROM "CALL_EVENTS")'
)


@pytest.fixture
def own(topics: Settings, unique: str) -> Settings:
    """``topics`` with a fakesnow database and a warehouse projector group of this test's
    own (the broker keeps listing other tests' departed projectors in the default group)."""
    settings = with_database(topics, f"WH_{unique.upper()}")
    kafka = settings.kafka.model_copy(update={"client_id": f"c{unique}"})
    return settings.model_copy(update={"kafka": kafka})


@pytest.fixture
def reader(own: Settings) -> Iterator[WarehouseStore]:
    """A connection of the warehouse's readers (an analyst's: it holds nothing)."""
    store = warehouse_store(own, login_timeout=10, network_timeout=30)
    yield store
    store.close()


def _counts(store: WarehouseStore) -> tuple[int, int, int]:
    ((sessions, calls, events),) = store.query(_COUNTS)
    return int(sessions), int(calls), int(events)


def _stage(store: WarehouseStore, session: str) -> str:
    ((stage,),) = store.query('SELECT "STAGE" FROM "SESSIONS" WHERE "SESSION_ID" = ?', (session,))
    return str(stage)


async def test_the_warehouse_is_verified_and_rebuilt_blue_green(
    own: Settings, reader: WarehouseStore
) -> None:
    """``--verify`` finds a row changed behind the projection's back; a rebuild (built in
    ``<schema>_NEXT``) swaps in a version a fresh fold finds equal, and the shadow schema and
    the hold are gone."""
    async with LogProducer(own.kafka) as log:
        await log.append_many(sessions_and_calls(10))
    store = warehouse_store(own, login_timeout=10, network_timeout=30)
    try:
        await warehouse_runner(
            own, store, group_id=f"live-{own.kafka.client_id}"
        ).run_until_caught_up(60)
    finally:
        store.close()
    assert (await rebuilds.verify(own, "warehouse", timeout_s=60)).counted == 0
    ((session,),) = reader.query('SELECT "SESSION_ID" FROM "SESSIONS" LIMIT 1')
    reader.query('UPDATE "SESSIONS" SET "STAGE" = ? WHERE "SESSION_ID" = ?', ("x", session))
    found = await rebuilds.verify(own, "warehouse", timeout_s=60)
    assert found.counted == 2, found
    assert {(d.table, d.side) for d in found.differences} == {
        ("SESSIONS", "live"),
        ("SESSIONS", "rebuilt"),
    }
    done = await rebuilds.rebuild(own, "warehouse", timeout_s=60)
    assert done.rows["SESSIONS"] == 10 and done.rows["CALLS"] == 10, done.rows
    assert _stage(reader, session) == "date"
    assert (await rebuilds.verify(own, "warehouse", timeout_s=60)).counted == 0
    schemas = reader.query("SELECT schema_name FROM information_schema.schemata")
    assert own.warehouse.schema_name + "_NEXT" not in {s for (s,) in schemas}
    assert reader.query('SELECT "HOLDER" FROM "PROJECTION_HOLDS"') == [(None,)]


async def test_a_rebuild_under_a_running_projector_and_traffic_loses_nothing(
    own: Settings, reader: WarehouseStore
) -> None:
    """While events keep coming, the live warehouse projector folds them and a reader counts
    rows: the rebuild swaps in a version that mends a corrupted row, the reader's counts never
    drop, the projector goes on after the swap, and once traffic stops every event sent is
    in the warehouse and a fresh fold of the log equals it."""
    async with LogProducer(own.kafka) as log:
        await log.append_many(sessions_and_calls(100))
        store = warehouse_store(own, login_timeout=10, network_timeout=30)
        live = warehouse_runner(own, store)  # the projector's own group
        halt = asyncio.Event()
        running = asyncio.create_task(live.run(halt))
        try:
            await live.caught_up(60)
            ((session,),) = reader.query('SELECT "SESSION_ID" FROM "SESSIONS" LIMIT 1')
            reader.query('UPDATE "SESSIONS" SET "STAGE" = ? WHERE "SESSION_ID" = ?', ("x", session))
            stop = asyncio.Event()

            async def read() -> list[tuple[int, int, int]]:
                seen: list[tuple[int, int, int]] = []
                while not stop.is_set():
                    seen.append(await asyncio.to_thread(_counts, reader))
                    await asyncio.sleep(0.01)
                return seen

            sending = asyncio.create_task(keep_appending(log, stop))
            reading = asyncio.create_task(read())
            try:
                done = await rebuilds.rebuild(own, "warehouse", timeout_s=120)
                swapped = sum(done.position.values())

                async def applied() -> int:
                    return sum((await store.load_checkpoint(NAME)).values())

                # the projector writes again after the swap: its checkpoint passes the swap's
                await eventually(applied, lambda n: n > swapped, timeout_s=60, interval_s=0.05)
            finally:
                stop.set()
                sent, seen = await sending, await reading
            await live.caught_up(60)
        finally:
            halt.set()
            await running
            store.close()
    assert sent > 0 and done.folded.records >= 300, (sent, done.folded)
    assert len(seen) > 1
    for table, column in zip(
        ("SESSIONS", "CALLS", "CALL_EVENTS"), zip(*seen, strict=True), strict=True
    ):
        assert list(column) == sorted(column), f"a reader saw {table} shrink: a half-built table"
    total = 100 + sent
    assert _counts(reader) == (total, total, 3 * total), "events lost"
    assert _stage(reader, session) == "date", "the rebuild swapped in a fresh fold"
    found = await rebuilds.verify(own, "warehouse", timeout_s=120)
    assert found.aligned and found.counted == 0, found


async def test_a_hold_stops_the_projectors_writes_until_it_ends_fails_or_expires(
    own: Settings, reader: WarehouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A projector's batch waits, writing nothing, while a rebuild holds the projection, and
    lands once the hold ends; a swap that fails ends its hold and changes nothing; the hold
    of a rebuild killed before its swap expires by itself."""
    position: Position = (own.topic("calls"), 0)
    live_schema = own.warehouse.schema_name
    live = warehouse_store(own, login_timeout=10, network_timeout=30)
    live.hold(NAME)
    try:
        await live.apply(NAME, [], {position: 5})
        holds.take(reader, live_schema, NAME, "rebuild-test", 60)
        batch = asyncio.create_task(live.apply(NAME, [], {position: 6}))
        with pytest.raises(TimeoutError):  # held: the batch neither lands nor gives up
            await asyncio.wait_for(asyncio.shield(batch), 1.0)
        assert await reader_checkpoint(reader) == 5
        holds.end(reader, live_schema, NAME, "rebuild-test")
        await asyncio.wait_for(batch, 10)
        assert await reader_checkpoint(reader) == 6

        def killed(*_args: object) -> None:
            raise RuntimeError("killed in the swap")

        versions = WarehouseVersions(own)
        try:
            with monkeypatch.context() as patched:
                patched.setattr(WarehouseVersions, "_swap", killed)
                with pytest.raises(RuntimeError, match="killed"):
                    await versions.swap(None)
        finally:
            versions.close()
        assert await reader_checkpoint(reader) == 6, "the failed rebuild changed nothing"
        await asyncio.wait_for(live.apply(NAME, [], {position: 7}), 2)  # its hold ended

        holds.take(reader, live_schema, NAME, "rebuild-killed", 2)  # and never ended
        await asyncio.wait_for(live.apply(NAME, [], {position: 8}), 10)
        assert await reader_checkpoint(reader) == 8
    finally:
        live.close()


async def reader_checkpoint(reader: WarehouseStore) -> int:
    """The live checkpoint's offset of this test's one partition."""
    found = await reader.load_checkpoint(NAME)
    (offset,) = found.values()
    return offset


async def test_the_warehouse_refuses_to_be_folded_by_several_processes(own: Settings) -> None:
    """``--workers`` above one is refused for the warehouse (one process folds it), before
    anything is folded."""
    with pytest.raises(RebuildRefused, match="folded by one process: leave out --workers"):
        await rebuilds.rebuild(own, "warehouse", timeout_s=60, workers=2)
