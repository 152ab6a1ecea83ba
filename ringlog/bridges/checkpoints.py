"""Where the bridge out keeps its checkpoint: a table in the CRM database (SQLite embedded,
PostgreSQL in production), beside the views' and the projections' own.

One row per bridge (named ``sqs-out:<queue>``), topic and partition holds the next offset
whose record SQS has not accepted yet. It is written only after SQS accepted every record
below it, never moves backwards (:func:`~ringlog.projections.checkpoint.write_checkpoint`),
and is what a restarted bridge seeks to; the consumer group's committed offsets follow it as
a courtesy (``ringlog lag`` reads them), as for every runtime target.

Scans: a read is the rows of one bridge (one per partition); a write upserts one row per
partition of the batch. Nothing grows with the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sqlalchemy import Engine, MetaData

from ringlog.projections.checkpoint import checkpoint_table, read_checkpoint, write_checkpoint
from ringlog.projections.sql import create_tables, sql_engine
from ringlog.streams.offsets import Position

METADATA = MetaData()
CHECKPOINTS = checkpoint_table(METADATA, "bridge_checkpoints")


class BridgeCheckpoints:
    """The bridges' checkpoint table at a SQLAlchemy URL; every call runs in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> BridgeCheckpoints:
        """Open the table at ``url`` (created when missing)."""
        engine = sql_engine(url)
        create_tables(engine, METADATA)
        return cls(engine)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    async def load(self, bridge: str) -> dict[Position, int]:
        """The next offset per ``(topic, partition)`` ``bridge`` has not delivered yet."""
        return await asyncio.to_thread(self._load, bridge)

    async def write(self, bridge: str, positions: Mapping[Position, int]) -> None:
        """Store ``positions`` for ``bridge`` in one transaction (an older offset never wins)."""
        if positions:
            await asyncio.to_thread(self._write, bridge, dict(positions))

    def _load(self, bridge: str) -> dict[Position, int]:
        with self.engine.connect() as connection:
            return read_checkpoint(connection, CHECKPOINTS, bridge)

    def _write(self, bridge: str, positions: dict[Position, int]) -> None:
        with self.engine.begin() as connection:
            write_checkpoint(connection, CHECKPOINTS, bridge, positions)
