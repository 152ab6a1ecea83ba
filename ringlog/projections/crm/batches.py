"""A batch of CRM upserts as few ``executemany`` calls as possible. Pure: no I/O.

Within one batch every upsert is newer than anything stored for its row: the batch and the
checkpoint commit together, records below the checkpoint are skipped, and every event that
touches one row comes from one partition (see :mod:`ringlog.projections.crm.rows`). So the
writes of one row can be merged into one upsert with the same effect as applying them in
order, and the merged upserts grouped by table and shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ringlog.projections.crm.rows import Upsert
from ringlog.projections.crm.schema import TABLES

#: primary-key column names by table
_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in table.primary_key.columns) for name, table in TABLES.items()
}

#: one ``executemany``: table, inserted columns, columns overwritten on conflict
Shape = tuple[str, tuple[str, ...], tuple[str, ...]]


def coalesce(operations: Sequence[Upsert]) -> list[Upsert]:
    """One upsert per row, equal in effect to applying ``operations`` in order.

    A later write of a row overlays only the columns it owns (``update``) and its version on
    the earlier ones, and only when its version is higher (a stored row with the same version
    would refuse it too). The inserted row is the first write's with those overlays, so a
    row that did not exist ends as the sequence would leave it; a row that did exists ends
    with every written column set by its latest writer.
    """
    merged: dict[tuple[str, tuple[Any, ...]], Upsert] = {}
    for op in operations:
        values = op.values
        key = (op.table, tuple([values[c] for c in _KEYS[op.table]]))
        prior = merged.get(key)
        if prior is None:
            merged[key] = op
        elif op.version > prior.version:
            overlaid = dict(prior.values)
            for column in op.update:
                overlaid[column] = values[column]
            overlaid["version"] = values["version"]
            owned = prior.update + tuple(c for c in op.update if c not in prior.update)
            merged[key] = Upsert(op.table, overlaid, owned)
    return list(merged.values())


def batches(operations: Sequence[Upsert]) -> list[tuple[Shape, list[Upsert]]]:
    """The coalesced upserts grouped by table and shape, tables in order of first write."""
    grouped: dict[Shape, list[Upsert]] = {}
    for op in coalesce(operations):
        grouped.setdefault((op.table, tuple(op.values), op.update), []).append(op)
    return list(grouped.items())
