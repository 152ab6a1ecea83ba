"""The timeline view's table (``view_timeline``), read by its primary key
``(topic, partition, offset)``: the statements the console's reads of timeline rows share.

* :func:`row_select`: the columns of a :class:`~ringlog.views.store.TimelineRow`;
* :func:`rows_at`: the rows at given places;
* :func:`offset_ranges`: per partition, the offsets between two checkpoints (bounded);
* :func:`pages`: a page of rows of each of several offset ranges, read backwards, every range
  in one ``UNION ALL`` statement.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Select, TextClause, and_, or_, select, text

from ringlog.console.queries.topics import Place, Position
from ringlog.views.store import TIMELINE, TimelineRow

#: Offsets ``from <= offset < below`` of one partition: ``(topic, partition, from, below)``.
OffsetRange = tuple[str, int, int, int]


def row_select() -> Select[Any]:
    """The columns of a :class:`TimelineRow`, in its order."""
    t = TIMELINE.c
    return select(t.topic, t.partition, t.offset, t.call_ref, t.recorded_at, t.event_id, t.event)


def rows_at(connection: Connection, places: Sequence[Place]) -> list[TimelineRow]:
    """The rows at ``places``: per partition, ``topic = … AND partition = … AND offset
    IN (…)`` (SQLite scans the table for a row-value ``IN``; this it finds by key)."""
    t = TIMELINE.c
    offsets: dict[Position, list[int]] = {}
    for topic, partition, offset in places:
        offsets.setdefault((topic, partition), []).append(offset)
    query = row_select().where(
        or_(
            *(
                and_(t.topic == topic, t.partition == partition, t.offset.in_(sorted(found)))
                for (topic, partition), found in sorted(offsets.items())
            )
        )
    )
    return [TimelineRow(*row) for row in connection.execute(query)]


def offset_ranges(
    before: Mapping[Position, int], after: Mapping[Position, int], per_partition: int
) -> list[OffsetRange]:
    """The offsets from ``before`` up to ``after`` (checkpoints; a partition not in ``before``
    from its start), per partition the last ``per_partition`` at most, in partition order; a
    partition with none is left out."""
    ranges: list[OffsetRange] = []
    for (topic, partition), upto in sorted(after.items()):
        start = max(before.get((topic, partition), 0), upto - per_partition)
        if upto > start:
            ranges.append((topic, partition, start, upto))
    return ranges


def pages(
    connection: Connection,
    columns: Sequence[Column[Any]],
    ranges: Sequence[tuple[str, int, int | None, int | None]],
    limit: int,
) -> list[Any]:
    """For each ``(topic, partition, from, below)``: the timeline rows of that partition with
    ``from <= offset < below`` (``None``: unbounded), the highest offsets first, at most
    ``limit`` — ``columns`` of them, every range in one statement (``UNION ALL``), each read
    backwards along the primary key. The statement's text is made once per shape (SQLAlchemy's
    own cache key of an 18-part union costs more than the query)."""
    if not ranges:
        return []
    shape = tuple((start is not None, below is not None) for _, _, start, below in ranges)
    names = tuple(column.name for column in columns)
    statement = _pages_statement(connection.dialect.name, names, shape).columns(*columns)
    params: dict[str, Any] = {"limit": limit}
    for i, (topic, partition, start, below) in enumerate(ranges):
        params |= {f"t{i}": topic, f"p{i}": partition, f"s{i}": start, f"b{i}": below}
    return [tuple(row) for row in connection.execute(statement, params)]


@functools.lru_cache(maxsize=256)
def _pages_statement(
    dialect: str, names: tuple[str, ...], shape: tuple[tuple[bool, bool], ...]
) -> TextClause:
    """The text of :func:`pages` for one shape of ranges (``dialect``: only a cache key)."""

    def q(name: str) -> str:
        return f'"{name}"'

    selected = ", ".join(q(name) for name in names)
    parts = []
    for i, (start, below) in enumerate(shape):
        where = [f"{q('topic')} = :t{i}", f"{q('partition')} = :p{i}"]
        if start:
            where.append(f"{q('offset')} >= :s{i}")
        if below:
            where.append(f"{q('offset')} < :b{i}")
        parts.append(
            f"SELECT * FROM (SELECT {selected} FROM {q(TIMELINE.name)} "
            f"WHERE {' AND '.join(where)} ORDER BY {q('offset')} DESC LIMIT :limit) AS r{i}"
        )
    return text(" UNION ALL ".join(parts))


__all__ = ["OffsetRange", "offset_ranges", "pages", "row_select", "rows_at"]
