"""Blue/green rebuilds, ``--verify`` and replay positions, against the real broker, on
PostgreSQL and SQLite.

A rebuild under live traffic (a live projector writing, a reader reading) swaps in a version
that a fresh fold of the log then finds equal, while the reader never sees fewer rows than
before (no half-built version); a corrupted row is found by ``--verify`` and mended by a
rebuild; a rebuild interrupted before its swap leaves the live projection as it was, and a
rerun discards what a killed run left in its shadow. The warehouse's rebuilds (fakesnow) are
in ``test_warehouse_rebuild.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, func, select, text, update
from typer.testing import CliRunner

from ringlog.cli import app as cli_app
from ringlog.config import Settings
from ringlog.projections import rebuilds
from ringlog.projections import shadow as shadow_module
from ringlog.projections.rebuildable import Opened, Rebuildable, RebuildRefused, rebuildable
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.shadow import shadow_name
from ringlog.projections.slices import SliceFailed, fold_in_slices
from ringlog.projections.sql import sql_engine
from ringlog.streams.producer import LogProducer
from ringlog.views.store import SESSIONS
from ringlog.worker.schema import CALLS
from tests.support.logread import eventually
from tests.support.postgres import fresh_database
from tests.support.traffic import keep_appending, sessions_and_calls

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def on(request: pytest.FixtureRequest, topics: Settings, tmp_path: Path) -> Iterator[Settings]:
    """This test's settings with its CRM database on PostgreSQL or SQLite."""
    with fresh_database(request.param, tmp_path, "rebuild") as url:
        yield topics.model_copy(update={"crm": topics.crm.model_copy(update={"url": url})})


@contextlib.asynccontextmanager
async def _live(settings: Settings, name: str) -> AsyncIterator[ProjectionRunner[Any]]:
    """The live projector of ``name`` (a group of its own) on the live tables."""
    spec = rebuildable(name)
    opened = _open_live(settings, spec)
    stop = asyncio.Event()
    task = asyncio.create_task(opened.runner.run(stop))
    try:
        yield opened.runner
    finally:
        stop.set()
        await task
        opened.close()


def _open_live(settings: Settings, spec: Rebuildable) -> Opened:
    group = f"-live-{uuid.uuid4().hex[:6]}"
    if spec.name == "call-lifecycle":
        from ringlog.worker.app import worker_projection, worker_store

        store = worker_store(settings)
        runner: ProjectionRunner[Any] = ProjectionRunner(
            settings.kafka,
            worker_projection(store),
            store,
            group_id=settings.worker.app_id + group,
            deadletter_topic=settings.topic("deadletter"),
        )
        return Opened(runner, store.close)
    from ringlog.views import view_runners
    from ringlog.views.store import ViewStore

    views = ViewStore.open(settings.crm.url)
    (view,) = view_runners(settings, views, [spec.name], group_suffix=group)
    return Opened(view, views.close)


def _table(name: str) -> tuple[Table, str]:
    return (CALLS, "calls") if name == "call-lifecycle" else (SESSIONS, "sessions")


def _count(settings: Settings, name: str) -> int:
    table, topic = _table(name)
    engine = sql_engine(settings.crm.url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.topic == settings.topic(topic))
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _corrupt(settings: Settings, name: str) -> None:
    """Change one live row as no fold of the log would."""
    table, topic = _table(name)
    engine = sql_engine(settings.crm.url)
    try:
        with engine.begin() as connection:
            key = connection.execute(
                select(table.c[list(table.primary_key.columns.keys())[1]])
                .where(table.c.topic == settings.topic(topic))
                .limit(1)
            ).scalar_one()
            column = table.c[list(table.primary_key.columns.keys())[1]]
            connection.execute(
                update(table)
                .where(table.c.topic == settings.topic(topic), column == key)
                .values(version=table.c.version + 1000)
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", ["sessions", "call-lifecycle"])
async def test_a_rebuild_under_live_traffic_ends_equal_to_a_fresh_fold(
    on: Settings, name: str, workers: int
) -> None:
    """While events keep coming, a live projector folds them and a reader counts rows: the
    rebuild swaps in a version that mends a corrupted row, the reader's count never drops,
    and once traffic stops a fresh fold of the log equals the live projection, which holds a
    row for every number (call) sent. With two workers, two processes fold a slice of the
    partitions each before the rebuild's own runner takes over (the verify too)."""
    async with LogProducer(on.kafka) as log:
        await log.append_many(sessions_and_calls(100))
        async with _live(on, name) as live:
            await live.caught_up(60)
            _corrupt(on, name)
            stop = asyncio.Event()

            async def reader() -> list[int]:
                seen: list[int] = []
                while not stop.is_set():
                    seen.append(await asyncio.to_thread(_count, on, name))
                    await asyncio.sleep(0.01)
                return seen

            sending = asyncio.create_task(keep_appending(log, stop))
            reading = asyncio.create_task(reader())
            try:
                done = await rebuilds.rebuild(on, name, timeout_s=120, workers=workers)
                swapped = sum(done.position.values())

                async def applied() -> int:
                    return sum((await live.target.load_checkpoint(live.projection.name)).values())

                # traffic goes on after the swap: the live projector's checkpoint passes it
                await eventually(applied, lambda n: n > swapped, timeout_s=60, interval_s=0.05)
            finally:
                stop.set()
                sent, seen = await sending, await reading
            await live.caught_up(60)
    assert sent > 0 and done.folded.records >= 100 and done.position
    assert seen == sorted(seen), "a reader saw rows disappear: a half-built version"
    assert _count(on, name) == 100 + sent
    found = await rebuilds.verify(on, name, timeout_s=120, workers=workers)
    assert found.aligned and found.differences == [] and found.counted == 0


@pytest.mark.parametrize("on", ["postgresql"], indirect=True)
async def test_without_workers_a_large_log_is_folded_in_a_process_per_core(
    on: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``workers``, a rebuild and a verify fold in one process while the log is
    small, and in a process per core once it holds ``AUTO_MIN_RECORDS`` (lowered here);
    the rebuilt projection equals a fresh fold either way."""
    from ringlog.projections import slices

    sliced: list[int] = []

    async def counted(*args: Any, workers: int, **kwargs: Any) -> Any:
        sliced.append(workers)
        return await fold_in_slices(*args, workers=workers, **kwargs)

    monkeypatch.setattr(rebuilds, "fold_in_slices", counted)
    monkeypatch.setattr(slices.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    async with LogProducer(on.kafka) as log:
        await log.append_many(sessions_and_calls(30))
    small = await rebuilds.rebuild(on, "sessions", timeout_s=120)
    assert sliced == [] and small.folded.records >= 30
    monkeypatch.setattr(slices, "AUTO_MIN_RECORDS", 10)
    large = await rebuilds.rebuild(on, "sessions", timeout_s=120)
    found = await rebuilds.verify(on, "sessions", timeout_s=120)
    assert sliced == [2, 2] and large.folded.records == small.folded.records
    assert found.aligned and found.differences == [] and found.counted == 0
    assert _count(on, "sessions") == 30


async def test_a_slice_that_fails_fails_the_fold_and_stops_the_others(topics: Settings) -> None:
    """A fold in slices whose slice cannot fold (here: no such projection) raises what that
    slice raised, and leaves no process of it running."""
    with pytest.raises(RebuildRefused, match="no projection called 'no-such-projection'"):
        await fold_in_slices(
            topics, "no-such-projection", "-test", {(topics.topic("calls"), 0): 1}, workers=2
        )
    assert multiprocessing.active_children() == []


async def test_a_slice_process_that_fails_fails_the_fold_and_says_why(
    topics: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """A slice's process that cannot reach its target in time (here: an offset the log
    never reaches, on a partition of the second slice) ends with an error named on stderr
    in one line, and the fold fails naming the process."""
    failed = r"ringlog sessions slice 2/2 failed \(exit code 1\)"
    try:
        with pytest.raises(SliceFailed, match=failed):
            await fold_in_slices(
                topics,
                "sessions",
                "-test",
                {(topics.topic("sessions"), 1): 10**9},
                workers=2,
                timeout_s=2,
            )
    finally:
        rebuildable("sessions").versions(topics).close()  # discards the shadow they made
    assert "sessions slice 2/2: TimeoutError" in capfd.readouterr().err
    assert multiprocessing.active_children() == []


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "RINGLOG_CRM_URL": settings.crm.url,
    }
    result = CliRunner().invoke(cli_app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


async def test_verify_finds_a_corrupted_row_and_a_rebuild_mends_it(on: Settings) -> None:
    async with LogProducer(on.kafka) as log:
        await log.append_many(sessions_and_calls(20))
    async with _live(on, "sessions") as live:
        await live.caught_up(60)
    code, out = await asyncio.to_thread(_cli, on, "rebuild", "sessions", "--verify")
    assert code == 0, out
    assert "equals a fresh fold" in out
    _corrupt(on, "sessions")
    corrupted = _rows(on)
    code, out = await asyncio.to_thread(_cli, on, "rebuild", "sessions", "--verify")
    assert code == 1, out
    assert "view_sessions: only in the live version" in out
    assert "view_sessions: only in the rebuilt version" in out
    assert "2 row(s) differ" in out
    assert _rows(on) == corrupted, "--verify changed nothing"
    code, out = await asyncio.to_thread(_cli, on, "rebuild", "sessions")
    assert code == 0, out
    assert "view_sessions 20" in out
    assert _rows(on) != corrupted
    code, out = await asyncio.to_thread(_cli, on, "rebuild", "sessions", "--verify")
    assert code == 0, out


async def test_an_interrupted_rebuild_leaves_the_live_projection_and_a_rerun_starts_over(
    on: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LogProducer(on.kafka) as log:
        await log.append_many(sessions_and_calls(20))
    async with _live(on, "sessions") as live:
        await live.caught_up(60)
    _corrupt(on, "sessions")
    before = _rows(on)

    def killed(*_args: object, **_kwargs: object) -> bool:
        raise RuntimeError("killed just before the swap")

    with monkeypatch.context() as patched:
        patched.setattr(shadow_module, "swap", killed)
        with pytest.raises(RuntimeError, match="killed"):
            await rebuilds.rebuild(on, "sessions", timeout_s=60)
    assert _rows(on) == before
    # a SIGKILLed run leaves its shadow: junk in it must not reach the live view
    shadow = shadow_name(on.crm.url, on.kafka.topic_prefix, "sessions")
    junk = sql_engine(on.crm.url, shadow=shadow)
    try:
        from ringlog.projections.sql import create_tables
        from ringlog.views.store import CHECKPOINTS, METADATA

        create_tables(junk, METADATA)
        with junk.begin() as connection:
            connection.execute(
                SESSIONS.insert(),
                {
                    "topic": on.topic("sessions"),
                    "phone": "+19999999999",
                    "partition": 0,
                    "version": 10**9,
                    "open": True,
                    "state": "{}",
                },
            )
            connection.execute(
                CHECKPOINTS.insert(),
                {
                    "projection": "sessions",
                    "topic": on.topic("sessions"),
                    "partition": 0,
                    "next_offset": 10**9,
                },
            )
    finally:
        junk.dispose()
    done = await rebuilds.rebuild(on, "sessions", timeout_s=60)
    assert done.rows == {"view_sessions": 20}
    assert "+19999999999" not in {phone for phone, *_ in _rows(on)}
    assert (await rebuilds.verify(on, "sessions", timeout_s=60)).counted == 0
    if on.crm.url.startswith("postgresql"):
        engine = sql_engine(on.crm.url)
        try:
            with engine.connect() as connection:
                left = connection.execute(
                    text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": shadow}
                ).scalar_one()
        finally:
            engine.dispose()
        assert left == 0, "the shadow schema is discarded"
    else:
        leftover = Path(on.crm.url.removeprefix("sqlite:///") + f".{shadow}")
        assert not await asyncio.to_thread(leftover.exists), "the shadow file is discarded"


def _rows(settings: Settings) -> list[tuple[Any, ...]]:
    engine = sql_engine(settings.crm.url)
    try:
        with engine.connect() as connection:
            return [
                tuple(r)
                for r in connection.execute(
                    select(SESSIONS.c.phone, SESSIONS.c.version, SESSIONS.c.state)
                    .where(SESSIONS.c.topic == settings.topic("sessions"))
                    .order_by(SESSIONS.c.phone)
                )
            ]
    finally:
        engine.dispose()


async def test_replay_positions_are_checked_and_a_dry_run_changes_nothing(topics: Settings) -> None:
    async with LogProducer(topics.kafka) as log:
        await log.append_many(sessions_and_calls(5))
    code, out = await asyncio.to_thread(
        _cli, topics, "replay", "sessions", "--to-datetime", "2999-01-01T00:00:00Z"
    )
    assert code == 2 and "is in the future" in out, out
    code, out = await asyncio.to_thread(
        _cli, topics, "replay", "sessions", "--to-datetime", "2001-01-01T00:00:00Z"
    )
    assert code == 2 and "before the log's start" in out, out
    code, out = await asyncio.to_thread(_cli, topics, "replay", "sessions", "--by-duration", "soon")
    assert code == 1 and "not an ISO-8601 duration" in out, out
    code, out = await asyncio.to_thread(_cli, topics, "replay", "sessions")
    assert code == 1 and "one of --to-earliest" in out, out
    code, out = await asyncio.to_thread(
        _cli, topics, "replay", "sessions", "--by-duration", "P1D", "--dry-run"
    )
    assert code == 2 and "before the log's start" in out, out
    now = datetime.now(UTC).isoformat()
    code, out = await asyncio.to_thread(
        _cli, topics, "replay", "sessions", "--to-datetime", now, "--dry-run"
    )
    assert code == 0 and "dry run: nothing changed" in out, out
    assert "sessions" in out and "folded again" in out


@pytest.mark.parametrize("name", ["sessions", "call-lifecycle"])
def test_a_shadow_on_postgresql_is_unlogged_with_only_the_indexes_its_fold_reads(
    topics: Settings, tmp_path: Path, name: str
) -> None:
    """A rebuild's shadow writes no write-ahead log and maintains no index only the live
    tables' readers use (the swap copies the rows into the live tables, which keep theirs):
    the call state keeps its task index (the fold looks calls up by task), nothing else
    beyond the primary keys."""
    with fresh_database("postgresql", tmp_path, "shadowddl") as url:
        settings = topics.model_copy(update={"crm": topics.crm.model_copy(update={"url": url})})
        _open_live(settings, rebuildable(name)).close()  # the live tables
        versions = rebuildable(name).versions(settings)
        versions.open("-ddl-test")
        shadow = shadow_name(url, settings.kafka.topic_prefix, name)
        engine = sql_engine(url)
        try:
            with engine.connect() as connection:
                persistence = set(
                    connection.execute(
                        text(
                            "SELECT c.relpersistence FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind = 'r'"
                        ),
                        {"s": shadow},
                    ).scalars()
                )
                indexes = set(
                    connection.execute(
                        text(
                            "SELECT indexname FROM pg_indexes WHERE schemaname = :s "
                            "AND indexname NOT LIKE '%pkey'"
                        ),
                        {"s": shadow},
                    ).scalars()
                )
                live_indexes = set(
                    connection.execute(
                        text(
                            "SELECT indexname FROM pg_indexes WHERE schemaname = "
                            "current_schema() AND indexname NOT LIKE '%pkey'"
                        )
                    ).scalars()
                )
        finally:
            engine.dispose()
            versions.close()
    assert persistence == {"u"}
    expected = {"worker_calls_task"} if name == "call-lifecycle" else set()
    assert indexes == expected
    assert expected < live_indexes, "the live tables keep every index"
