"""Blue/green for SQL projections: a next version built in a shadow, swapped in at once.

A rebuild never touches the live tables while it works. It folds the log into a *shadow* of
the database (:func:`~ringlog.projections.sql.sql_engine` with ``shadow=``: the same tables in
a PostgreSQL schema, or a SQLite file attached beside the main one), with a checkpoint of its
own there. Readers and the live projector go on with the live tables meanwhile.

:func:`swap` then replaces, in **one transaction**, the live rows of the projection's tables
and its live checkpoint by the shadow's: readers see the old version until the commit and the
new one after it (MVCC on PostgreSQL, WAL snapshots on SQLite), never a half-built one. The
transaction first holds the live writers (:func:`holding_live`: ``LOCK TABLE … SHARE ROW
EXCLUSIVE`` on PostgreSQL, the write lock on SQLite; readers are not held), reads the live
position, lets the shadow fold up to it, then holds the shadow's writers too and copies. So
the new version is at or past the live position, and the live projector's next writes
(records the new version has) change nothing: every target ignores a record below its stored
checkpoint or older than the row it would replace. A target that reads stored rows to fold
onto them begins its transaction with :func:`writing`, so it never reads the version a swap
replaces and then writes after the swap.

:func:`compare` diffs the shadow against the live tables at exactly one position
(``--verify``), the same way. Tables shared by deployments (keyed by topic) are swapped and
compared for this deployment's topics only (:class:`Part`). The swap copies the rows
(``INSERT … SELECT``): its cost is the projection's size, paid while live writers wait;
readers never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Select,
    Table,
    delete,
    func,
    insert,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import NoSuchTableError

from ringlog.projections.checkpoint import read_checkpoint
from ringlog.projections.sql import shadow_file, sql_engine, table_name
from ringlog.streams.offsets import Position

T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    """One table of a projection; with ``topics``, only its rows whose ``topic`` column is one
    of them (a table several deployments share)."""

    table: Table
    topics: tuple[str, ...] | None = None

    def rows(self, table: Table) -> Select[Any]:
        """Every row of this part in ``table`` (the live one or its shadow twin)."""
        query = select(table)
        if self.topics is not None:
            query = query.where(table.c.topic.in_(self.topics))
        return query


@dataclass(frozen=True)
class Layout:
    """What a projection keeps in SQL: its tables, and the table holding its checkpoint under
    the name ``projection``."""

    projection: str
    parts: tuple[Part, ...]
    checkpoints: Table
    checkpoint_topics: tuple[str, ...]


@dataclass(frozen=True)
class Difference:
    """A row found on one side only: ``live`` (the live table) or ``rebuilt`` (the shadow)."""

    table: str
    side: str
    row: tuple[Any, ...]


@dataclass(frozen=True)
class Comparison:
    """The live and rebuilt positions at the time of a comparison, and the differences (only
    computed when the positions are equal)."""

    live: dict[Position, int]
    rebuilt: dict[Position, int]
    differences: list[Difference]
    counted: int

    @property
    def aligned(self) -> bool:
        """Whether both sides had folded exactly the same records."""
        return _nonzero(self.live) == _nonzero(self.rebuilt)


def twin(table: Table, shadow: str) -> Table:
    """``table`` as it lies in the shadow ``shadow`` (same columns, schema ``shadow``)."""
    return table.to_metadata(MetaData(), schema=shadow)


def positions(connection: Connection, layout: Layout, shadow: str | None) -> dict[Position, int]:
    """The projection's checkpoint, live (``shadow=None``; ``layout`` :func:`resolved`) or in
    the shadow."""
    table = layout.checkpoints if shadow is None else twin(layout.checkpoints, shadow)
    try:
        found = read_checkpoint(connection, table, layout.projection)
    except NoSuchTableError:  # pragma: no cover - tables are created with the store
        return {}
    return {tp: n for tp, n in found.items() if tp[0] in layout.checkpoint_topics}


#: Brings the shadow to (``exact``: exactly to) the live position it is given, while the live
#: writers are held (see :func:`holding_live`).
Settle = Callable[[dict[Position, int]], Awaitable[None]]


async def holding_live(
    engine: Engine,
    shadow: str,
    layout: Layout,
    settle: Settle,
    then: Callable[[Connection, Layout, dict[Position, int]], T],
) -> T:
    """Hold the live writers of ``layout`` (readers go on), read the live position, let
    ``settle`` bring the shadow to it (the shadow is written meanwhile: it is not held), then
    hold the shadow's writers too and run ``then(connection, live_layout, live_position)`` in
    the same transaction, committed when it returns.

    The transaction runs in a thread of its own (``engine`` must reach both sides: a shadow
    engine does); a live projector waits for it, for as long as ``settle`` takes."""
    loop = asyncio.get_running_loop()
    held: asyncio.Future[dict[Position, int]] = loop.create_future()
    settled, failed = threading.Event(), threading.Event()

    def transaction() -> T:
        with plain(engine).begin() as connection:
            live_layout = resolved(connection, layout)
            _hold(connection, [p.table for p in live_layout.parts] + [live_layout.checkpoints])
            live = positions(connection, live_layout, None)
            loop.call_soon_threadsafe(held.set_result, live)
            settled.wait()
            if failed.is_set():
                raise _Abandoned
            shadow_tables = [twin(p.table, shadow) for p in layout.parts]
            _hold(connection, [*shadow_tables, twin(layout.checkpoints, shadow)])
            return then(connection, live_layout, live)

    task = asyncio.ensure_future(asyncio.to_thread(transaction))
    try:
        await asyncio.wait((held, task), return_when=asyncio.FIRST_COMPLETED)
        if not held.done():
            return await task  # the transaction failed before it held anything
        await settle(held.result())
    except BaseException:
        failed.set()
        raise
    finally:
        settled.set()
        if failed.is_set():
            with contextlib.suppress(_Abandoned):
                await task
    return await task


class _Abandoned(Exception):
    """The shadow did not settle: the held transaction is rolled back."""


async def swap(
    engine: Engine, shadow: str, layout: Layout, settle: Settle | None = None
) -> dict[Position, int]:
    """Replace the live version of ``layout`` by the shadow's, in one transaction, and
    return the position swapped in.

    With ``settle`` (a rebuild under a live projector), the live writers are held while it
    brings the shadow at or past the live position (:func:`holding_live`): the live projector's
    next writes are records the new version has, which change nothing. Without it (a replay
    to a past position, its processor stopped), the live version is replaced as it is.
    """

    def replace(
        connection: Connection, live: Layout, at: dict[Position, int]
    ) -> dict[Position, int]:
        rebuilt = positions(connection, layout, shadow)
        behind = {tp: n for tp, n in at.items() if rebuilt.get(tp, 0) < n}
        if settle is not None and behind:
            raise RuntimeError(f"the shadow did not reach the live position: {behind} {rebuilt}")
        for part in live.parts:
            _replace(connection, part, twin(part.table, shadow))
        _replace(
            connection,
            Part(live.checkpoints, layout.checkpoint_topics),
            twin(layout.checkpoints, shadow),
            projection=layout.projection,
        )
        return rebuilt

    async def nothing(_at: dict[Position, int]) -> None:
        return None

    return await holding_live(engine, shadow, layout, settle or nothing, replace)


def counts(engine: Engine, layout: Layout) -> dict[str, int]:
    """Rows per live table of ``layout`` (this deployment's rows of a shared table)."""
    with plain(engine).begin() as connection:
        return {
            part.table.name: connection.execute(
                select(func.count()).select_from(part.rows(part.table).subquery())
            ).scalar_one()
            for part in resolved(connection, layout).parts
        }


def live_position(engine: Engine, layout: Layout) -> dict[Position, int]:
    """The live projection's checkpoint."""
    with plain(engine).begin() as connection:
        return positions(connection, resolved(connection, layout), None)


def resolved(connection: Connection, layout: Layout) -> Layout:
    """``layout`` with its live tables named so that ``connection`` finds them (on SQLite,
    ``main.<table>``: a shadow attached to the connection holds tables of the same names),
    and created when missing (a rebuild may come before any projector ran)."""
    if connection.dialect.name == "sqlite":
        layout = Layout(
            layout.projection,
            tuple(Part(twin(p.table, "main"), p.topics) for p in layout.parts),
            twin(layout.checkpoints, "main"),
            layout.checkpoint_topics,
        )
    for table in (*(p.table for p in layout.parts), layout.checkpoints):
        table.create(connection, checkfirst=True)
    return layout


async def compare(
    engine: Engine, shadow: str, layout: Layout, settle: Settle, *, limit: int = 20
) -> Comparison:
    """Diff the shadow's version of ``layout`` against the live one at one position: the live
    writers are held while ``settle`` folds the shadow to exactly the live position and while
    the rows are compared (:func:`holding_live`). At most ``limit`` differences are kept; all
    are counted."""

    def differences(connection: Connection, live: Layout, at: dict[Position, int]) -> Comparison:
        rebuilt = positions(connection, layout, shadow)
        found: list[Difference] = []
        counted = 0
        if _nonzero(at) == _nonzero(rebuilt):
            for part in live.parts:
                other = twin(part.table, shadow)
                for side, one, two in (("live", part.table, other), ("rebuilt", other, part.table)):
                    only = part.rows(one).except_(part.rows(two)).subquery()
                    rows = connection.execute(select(only)).all()
                    counted += len(rows)
                    found.extend(
                        Difference(part.table.name, side, tuple(r))
                        for r in rows[: max(0, limit - len(found))]
                    )
        return Comparison(at, rebuilt, found, counted)

    return await holding_live(engine, shadow, layout, settle, differences)


def discard(url: str, shadow: str) -> None:
    """Remove the shadow ``shadow`` of the database at ``url`` and all it holds: the
    PostgreSQL schema, or the SQLite file (no engine may have it open)."""
    if make_url(url).get_backend_name() == "sqlite":
        path = Path(shadow_file(url, shadow))
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            leftover.unlink(missing_ok=True)
        return
    engine = sql_engine(url)
    try:
        with engine.begin() as connection:
            prep = connection.dialect.identifier_preparer
            connection.execute(text(f"DROP SCHEMA IF EXISTS {prep.quote(shadow)} CASCADE"))
    finally:
        engine.dispose()


def shadow_name(url: str, deployment: str, projection: str) -> str:
    """The shadow a rebuild of ``projection`` uses in the database at ``url`` for the
    deployment named ``deployment`` (its topic prefix): one per projection, database and
    deployment, so a rerun finds (and discards) what an interrupted one left."""
    digest = hashlib.sha256(f"{url}|{deployment}".encode()).hexdigest()[:10]
    return f"rl_next_{projection.replace('-', '_')}_{digest}"


def _replace(
    connection: Connection, part: Part, source: Table, *, projection: str | None = None
) -> None:
    """Delete the part's live rows and insert the shadow's (of ``projection`` only, in a
    checkpoint table)."""
    live = part.table
    statement = delete(live)
    rows = part.rows(source)
    if part.topics is not None:
        statement = statement.where(live.c.topic.in_(part.topics))
    if projection is not None:
        statement = statement.where(live.c.projection == projection)
        rows = rows.where(source.c.projection == projection)
    connection.execute(statement)
    connection.execute(insert(live).from_select(list(live.c.keys()), rows))


def _hold(connection: Connection, tables: Sequence[Table]) -> None:
    """Hold the writers of ``tables`` until the transaction ends (readers go on): PostgreSQL
    ``LOCK TABLE … SHARE ROW EXCLUSIVE`` (waits for a write in flight, and for a
    :func:`writing` transaction); on SQLite, the write lock of each database they lie in."""
    _lock(connection, tables, "SHARE ROW EXCLUSIVE")


def writing(connection: Connection, tables: Sequence[Table]) -> None:
    """Begin a writer's transaction that reads what it folds into ``tables``: call it first,
    with the tables it writes in the order a swap holds them (parts, then the checkpoint).

    It waits for a swap or comparison holding them (:func:`holding_live`) to commit, and a
    swap starting meanwhile waits for this transaction; so what the transaction then reads
    (stored rows, the checkpoint) is the version its writes land on, never one a swap
    replaces under it. PostgreSQL ``LOCK TABLE … ROW EXCLUSIVE``, the lock its writes take
    anyway, taken before its reads (writers do not wait for each other, readers never); on
    SQLite, the write lock (a read before a transaction's first write runs outside it)."""
    _lock(connection, tables, "ROW EXCLUSIVE")


def _lock(connection: Connection, tables: Sequence[Table], mode: str) -> None:
    """Lock ``tables`` (as ``connection`` names them: a shadow's translated) in ``mode`` on
    PostgreSQL, in the order given; on SQLite, a write statement that changes nothing takes
    the write lock of each database they lie in (the one lock there is)."""
    if connection.dialect.name == "postgresql":
        names = ", ".join(table_name(connection, t) for t in tables)
        connection.execute(text(f"LOCK TABLE {names} IN {mode} MODE"))
        return
    by_database = {t.schema: t for t in tables}
    for table in by_database.values():
        connection.execute(delete(table).where(text("0 = 1")))


def plain(engine: Engine) -> Engine:
    """``engine`` without a shadow's schema translation (live tables by their own names)."""
    return engine.execution_options(schema_translate_map=None)


def _nonzero(found: Mapping[Position, int]) -> dict[Position, int]:
    return {tp: n for tp, n in found.items() if n}


__all__ = [
    "Comparison",
    "Difference",
    "Layout",
    "Part",
    "Settle",
    "compare",
    "counts",
    "discard",
    "holding_live",
    "live_position",
    "plain",
    "positions",
    "shadow_name",
    "swap",
    "writing",
]
