"""One fetched batch, projected and ready to write; consecutive batches merge into one."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic

from ringlog.projections.base import OpT
from ringlog.schemas import HEADER_TYPE
from ringlog.streams.consumer import LogRecord
from ringlog.streams.offsets import Position


@dataclass(frozen=True)
class Prepared(Generic[OpT]):
    """A batch's operations, its poison records, and the positions it moves the checkpoint to.

    ``records`` counts the log records behind it (applied, skipped and poison alike).
    ``sources`` are those the batch applies (not below the checkpoint), in log order per
    partition: the runner projects them again, one by one, when the target refuses the batch.
    """

    operations: list[OpT]
    poison: list[tuple[LogRecord, str]]
    positions: dict[Position, int]
    applied: collections.Counter[str]
    partitions: set[Position]
    records: int
    sources: list[LogRecord]

    def then(self, later: Prepared[OpT]) -> Prepared[OpT]:
        """This batch followed by ``later`` (fetched after it) as one batch: operations and
        sources in order, each partition's position the furthest of the two."""
        positions = dict(self.positions)
        for position, offset in later.positions.items():
            positions[position] = max(offset, positions.get(position, 0))
        return Prepared(
            operations=self.operations + later.operations,
            poison=self.poison + later.poison,
            positions=positions,
            applied=self.applied + later.applied,
            partitions=self.partitions | later.partitions,
            records=self.records + later.records,
            sources=self.sources + later.sources,
        )


def prepare(
    parts: Mapping[Position, list[LogRecord]],
    checkpoint: Mapping[Position, int],
    project: Callable[[list[LogRecord]], tuple[list[OpT], list[tuple[LogRecord, str]]]],
) -> Prepared[OpT]:
    """``parts`` (each partition's records in offset order) without the records below
    ``checkpoint``, projected by ``project`` (operations, poison). Pure.

    The checkpoint, positions and counts are worked out per partition; only the projection
    sees every record."""
    todo: dict[Position, list[LogRecord]] = {}
    for position, records in parts.items():
        start = checkpoint.get(position, 0)
        if records[0].offset < start:
            records = [r for r in records if r.offset >= start]
        if records:
            todo[position] = records
    sources = list(itertools.chain.from_iterable(todo.values()))
    operations, poison = project(sources)
    applied: collections.Counter[str] = collections.Counter()
    for (topic, _), records in todo.items():
        applied[topic] += len(records)
    return Prepared(
        operations=operations,
        poison=poison,
        positions={position: records[-1].offset + 1 for position, records in todo.items()},
        applied=applied,
        partitions=set(parts),
        records=sum(map(len, parts.values())),
        sources=sources,
    )


def event_type(record: LogRecord) -> str | None:
    """The record's event type: from its envelope, else from its headers (``None`` if absent)."""
    if record.envelope is not None:
        return record.envelope.type
    for name, value in record.headers:
        if name == HEADER_TYPE:
            return value.decode(errors="replace")
    return None
