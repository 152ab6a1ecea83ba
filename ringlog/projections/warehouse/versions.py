"""Blue/green for the warehouse: the next version built in a schema beside the live one.

The :class:`~ringlog.projections.rebuildable.Versions` of the warehouse projection. The shadow is
the schema ``<schema>_NEXT`` of the same database, written by a warehouse store connected to
it (the live projection code, fencing included, so an interrupted rebuild's session is ended
by the next). A running live projector carries on throughout, except while it is **held**
(:mod:`.holds`):

1. the rebuild takes the hold: from then on the live projector commits nothing (its batches
   wait), and every batch it committed before is in the live position read next;
2. the shadow is brought at or past that position (``settle``: the records the live
   projector applied since the shadow reached the log's head);
3. one transaction on a connection of its own ends the hold and swaps: it moves the hold's
   fence first (a live batch cannot commit from then until the swap commits), reads both
   checkpoints, and when the shadow is at or past the live position on every partition,
   writes the shadow's checkpoint over the live one, then every table's rows (``DELETE`` +
   ``INSERT … SELECT``). Readers see the old version until the commit and the new one after
   it (Snowflake and the fakesnow stand-in are MVCC), never a half-built one. The held live
   batches then write onto the new version records it already has, which changes nothing
   (every write is guarded by the row's ``VERSION`` and the checkpoint never moves back).

The checkpoint is written from the values read before the rows are copied: on Snowflake each
statement sees what was committed before it, so rows copied later are at or past it (the
shadow's runner may go on folding), never behind. If anything fails, the hold is ended and the
live version is untouched; a killed rebuild's hold expires after :data:`.holds.HOLD_S`.
:meth:`WarehouseVersions.compare` takes the hold likewise, folds the shadow to exactly the
live position and diffs both schemas with ``EXCEPT``, both ways, in one transaction.

Why copy and not repoint: readers and the projector address the tables by name; renaming
(``ALTER TABLE … SWAP WITH``) or repointing views is DDL, which commits by itself on
Snowflake, table by table, so readers could see one table of each version; the copy swaps
every table and the checkpoint in one transaction on both engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from ringlog.config import Settings
from ringlog.projections.bulk import BULK_MAX_RECORDS
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.shadow import Comparison, Difference, Settle
from ringlog.projections.warehouse import (
    NAME,
    TOPICS,
    WarehouseError,
    WarehouseStore,
    connect_kwargs,
    default_group_id,
    holds,
    warehouse_runner,
)
from ringlog.projections.warehouse.schema import CHECKPOINTS, TABLES, q, read_columns
from ringlog.streams.offsets import Position

#: How many times a swap or a comparison is tried before giving up. One try does, unless the
#: hold expired before the swap (the live projector went on) or the warehouse failed.
TRIES = 5


class _NotSwapped(Exception):
    """The shadow is behind the live position, or the hold was lost: roll back."""


class WarehouseVersions:
    """The live warehouse schema and its shadow ``<schema>_NEXT`` (see the module)."""

    #: one process folds it: against fakesnow, a second process's session ending ended the
    #: rebuild's own (401, "login again"); not tried against Snowflake
    sliced = False

    def __init__(self, settings: Settings, *, hold_s: int = holds.HOLD_S) -> None:
        self._settings = settings
        #: the longest a hold of the live projector lasts unless ended (a killed rebuild's)
        self.hold_s = hold_s
        self._holder = f"rebuild-{secrets.token_hex(6)}"
        warehouse = settings.warehouse
        self.live = warehouse.schema_name
        self.shadow = f"{warehouse.schema_name}_NEXT"
        self._topics = {settings.topic(t) for t in TOPICS}
        self._store = WarehouseStore(connect_kwargs(warehouse))
        self._next: WarehouseStore | None = None

    def open(self, group: str) -> ProjectionRunner[Any]:
        """A warehouse runner folding into a fresh ``<schema>_NEXT``."""
        self._store.query(f"DROP SCHEMA IF EXISTS {q(self.shadow)} CASCADE")
        self._store.query(f"CREATE SCHEMA {q(self.shadow)}")
        return self.join(group)

    def join(self, group: str) -> ProjectionRunner[Any]:
        """A warehouse runner folding into ``<schema>_NEXT`` as it is."""
        shadow = self._settings.warehouse.model_copy(update={"schema_name": self.shadow})
        self._next = WarehouseStore(connect_kwargs(shadow))
        return warehouse_runner(
            self._settings,
            self._next,
            group_id=default_group_id(self._settings) + group,
            max_records=BULK_MAX_RECORDS,
        )

    def leave(self) -> None:
        """Close the shadow's connection and the live one; the shadow stays."""
        self._close_next()
        self._store.close()

    def close(self) -> None:
        """Close the shadow's connection, drop the shadow schema, close the live one."""
        self._close_next()
        try:
            self._store.query(f"DROP SCHEMA IF EXISTS {q(self.shadow)} CASCADE")
        finally:
            self._store.close()

    def _close_next(self) -> None:
        if self._next is not None:
            self._next.close()
            self._next = None

    def live_position(self) -> dict[Position, int]:
        """The live warehouse projection's checkpoint (this deployment's topics)."""
        return self._position(self.live)

    async def swap(self, settle: Settle | None) -> dict[Position, int]:
        """Hold the live projector, bring the shadow at or past its position with ``settle``
        and replace the live tables by the shadow's (see the module); without ``settle``,
        whatever the positions (a replay, its projector stopped). Returns the position
        swapped in; ``TimeoutError`` after :data:`TRIES` tries (what ``settle`` raises at
        once)."""
        for _ in range(TRIES):
            try:
                async with self._held():
                    if settle is not None:
                        await settle(self.live_position())
                    return await asyncio.to_thread(self._swap, settle is not None)
            except (_NotSwapped, WarehouseError):
                continue  # the hold expired or was lost, or the warehouse failed: again
        raise TimeoutError("the live warehouse projection kept moving ahead of the swap")

    async def compare(self, settle: Settle, limit: int) -> Comparison:
        """Hold the live projector, fold the shadow to exactly its position with ``settle``
        and diff the two; ``TimeoutError`` after :data:`TRIES` tries."""
        for _ in range(TRIES):
            try:
                async with self._held():
                    await settle(self.live_position())
                    found = await asyncio.to_thread(self._compare, limit)
            except WarehouseError:
                continue
            if found.aligned:
                return found
        raise TimeoutError("the live warehouse projection kept moving during the comparison")

    def counts(self) -> dict[str, int]:
        """Rows per live table."""
        return {
            t.name: int(
                self._store.query(f"SELECT COUNT(*) FROM {self._in(self.live, t.name)}")[0][0]
            )
            for t in TABLES
        }

    # -- blocking internals -----------------------------------------------------------------------

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        """The live projector held for the block (:func:`.holds.take`); the hold is ended
        when the block ends (or taking it failed), unless the swap ended it."""
        try:
            await asyncio.to_thread(
                holds.take, self._store, self.live, NAME, self._holder, self.hold_s
            )
            yield
        finally:
            with contextlib.suppress(WarehouseError):  # it expires by itself
                await asyncio.to_thread(holds.end, self._store, self.live, NAME, self._holder)

    def _swap(self, ahead_of_live: bool) -> dict[Position, int]:
        with self._transaction():
            if self._store.changed(holds.release_sql(self.live), (NAME, self._holder)) != 1:
                raise _NotSwapped  # another rebuild took the hold over
            live, rebuilt = self._position(self.live), self._position(self.shadow)
            if ahead_of_live and any(rebuilt.get(tp, 0) < n for tp, n in live.items()):
                raise _NotSwapped  # the hold expired and the live projector went on
            topics = sorted(self._topics)
            marks = ", ".join("?" for _ in topics)
            self._store.query(
                f"DELETE FROM {self._in(self.live, CHECKPOINTS.name)} "
                f"WHERE {q('PROJECTION')} = ? AND {q('TOPIC')} IN ({marks})",
                (NAME, *topics),
            )
            if rebuilt:
                rows = sorted(rebuilt.items())
                self._store.query(
                    f"INSERT INTO {self._in(self.live, CHECKPOINTS.name)} "
                    f"({', '.join(q(n) for n in CHECKPOINTS.names)}) VALUES "
                    + ", ".join("(?, ?, ?, ?)" for _ in rows),
                    [v for (topic, partition), n in rows for v in (NAME, topic, partition, n)],
                )
            for table in TABLES:
                self._store.query(f"DELETE FROM {self._in(self.live, table.name)}")
                self._store.query(
                    f"INSERT INTO {self._in(self.live, table.name)} "
                    f"SELECT * FROM {self._in(self.shadow, table.name)}"
                )
            return rebuilt

    def _compare(self, limit: int) -> Comparison:
        with self._transaction():
            # the fence again: on Snowflake, no live batch commits until this transaction ends
            self._store.changed(holds.barrier_sql(self.live), (NAME, self._holder))
            live, rebuilt = self._position(self.live), self._position(self.shadow)
            found: list[Difference] = []
            counted = 0
            if {k: v for k, v in live.items() if v} == {k: v for k, v in rebuilt.items() if v}:
                for table in TABLES:
                    columns = read_columns(table)
                    for side, one, two in (
                        ("live", self.live, self.shadow),
                        ("rebuilt", self.shadow, self.live),
                    ):
                        rows = self._store.query(
                            f"SELECT {columns} FROM {self._in(one, table.name)} EXCEPT "
                            f"SELECT {columns} FROM {self._in(two, table.name)}"
                        )
                        counted += len(rows)
                        found.extend(
                            Difference(table.name, side, tuple(r))
                            for r in rows[: max(0, limit - len(found))]
                        )
            return Comparison(live, rebuilt, found, counted)

    def _position(self, schema: str) -> dict[Position, int]:
        rows = self._store.query(
            f"SELECT {q('TOPIC')}, {q('PARTITION')}, {q('NEXT_OFFSET')} "
            f"FROM {self._in(schema, CHECKPOINTS.name)} WHERE {q('PROJECTION')} = ?",
            (NAME,),
        )
        return {
            (str(topic), int(partition)): int(offset)
            for topic, partition, offset in rows
            if topic in self._topics
        }

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction on the live connection; rolled back when the block raises (a
        failed statement drops the connection, which rolls it back too)."""
        self._store.query("BEGIN")
        try:
            yield
        except BaseException:
            # a failed statement dropped the connection, and its transaction with it
            with contextlib.suppress(WarehouseError):
                self._store.query("ROLLBACK")
            raise
        self._store.query("COMMIT")

    @staticmethod
    def _in(schema: str, table: str) -> str:
        return f"{q(schema)}.{q(table)}"


__all__ = ["TRIES", "WarehouseVersions"]
