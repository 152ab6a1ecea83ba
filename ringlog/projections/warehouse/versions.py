"""Blue/green for the warehouse: the next version built in a schema beside the live one.

The :class:`~ringlog.projections.rebuildable.Versions` of the warehouse projection. The shadow is
the schema ``<schema>_NEXT`` of the same database, written by a warehouse store connected to
it (the live projection code, fencing included, so an interrupted rebuild's session is ended
by the next). The swap is one transaction on a connection of its own: the live checkpoint and
the shadow's are read, and when the shadow is at or past the live position on every partition,
every table's rows are replaced by the shadow's (``DELETE`` + ``INSERT … SELECT``) and the
checkpoint with them. Readers see the old version until the commit (Snowflake and the
fakesnow stand-in are MVCC). A live projector committing meanwhile makes one of the two
transactions fail on the rows both write (a conflict on Snowflake's table locks, or
fakesnow's optimistic check); the swap is then tried again from the new live position.
:meth:`WarehouseVersions.compare` diffs both schemas with ``EXCEPT``, both ways, in one
transaction at one position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
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
    warehouse_runner,
)
from ringlog.projections.warehouse.schema import CHECKPOINTS, TABLES, q, read_columns
from ringlog.streams.offsets import Position

#: How many times a swap or a comparison is tried before giving up (each try waits for the
#: shadow to reach the live position again; a try fails when the live projector commits
#: between the read of its position and the swap).
TRIES = 30


class WarehouseVersions:
    """The live warehouse schema and its shadow ``<schema>_NEXT`` (see the module)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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
        shadow = self._settings.warehouse.model_copy(update={"schema_name": self.shadow})
        self._next = WarehouseStore(connect_kwargs(shadow))
        return warehouse_runner(
            self._settings,
            self._next,
            group_id=default_group_id(self._settings) + group,
            max_records=BULK_MAX_RECORDS,
        )

    def close(self) -> None:
        """Close the shadow's connection, drop the shadow schema, close the live one."""
        if self._next is not None:
            self._next.close()
            self._next = None
        try:
            self._store.query(f"DROP SCHEMA IF EXISTS {q(self.shadow)} CASCADE")
        finally:
            self._store.close()

    def live_position(self) -> dict[Position, int]:
        """The live warehouse projection's checkpoint (this deployment's topics)."""
        return self._position(self.live)

    async def swap(self, settle: Settle | None) -> dict[Position, int]:
        """Replace the live tables by the shadow's once it is at or past the live position
        (with ``settle``; without, whatever the positions). Returns the position swapped in;
        ``TimeoutError`` after :data:`TRIES` conflicting tries."""
        for _ in range(TRIES):
            if settle is not None:
                await settle(self.live_position())
            try:
                done = await asyncio.to_thread(self._swap, settle is not None)
            except WarehouseError:
                continue  # the live projector committed first: try again from its position
            if done is not None:
                return done
        raise TimeoutError("the live warehouse projection kept moving ahead of the swap")

    async def compare(self, settle: Settle, limit: int) -> Comparison:
        """Diff the shadow against the live tables once both are at one position."""
        for _ in range(TRIES):
            await settle(self.live_position())
            try:
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

    def _swap(self, ahead_of_live: bool) -> dict[Position, int] | None:
        with self._transaction():
            live, rebuilt = self._position(self.live), self._position(self.shadow)
            if ahead_of_live and any(rebuilt.get(tp, 0) < n for tp, n in live.items()):
                return None
            for table in TABLES:
                self._store.query(f"DELETE FROM {self._in(self.live, table.name)}")
                self._store.query(
                    f"INSERT INTO {self._in(self.live, table.name)} "
                    f"SELECT * FROM {self._in(self.shadow, table.name)}"
                )
            topics = sorted(self._topics)
            marks = ", ".join("?" for _ in topics)
            self._store.query(
                f"DELETE FROM {self._in(self.live, CHECKPOINTS.name)} "
                f"WHERE {q('PROJECTION')} = ? AND {q('TOPIC')} IN ({marks})",
                (NAME, *topics),
            )
            self._store.query(
                f"INSERT INTO {self._in(self.live, CHECKPOINTS.name)} "
                f"SELECT * FROM {self._in(self.shadow, CHECKPOINTS.name)} "
                f"WHERE {q('PROJECTION')} = ? AND {q('TOPIC')} IN ({marks})",
                (NAME, *topics),
            )
            return rebuilt

    def _compare(self, limit: int) -> Comparison:
        with self._transaction():
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
