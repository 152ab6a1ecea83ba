"""On PostgreSQL, the JSON-bound upsert path ends exactly where per-row upserts end.

Each example stores some rows, then upserts a batch (distinct keys, versions lower, equal
and higher than the stored ones, some columns NULL, any text: ``Text`` columns are bound
apart, as binary arrays) into two copies of the table:
one through ``bulk_upsert``, one through per-row ``INSERT … ON CONFLICT`` statements. The
tables must be equal, and a second bulk upsert of the same batch must change nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.dialects import postgresql

from ringlog.projections.bulk_upsert import bulk_upsert, distinct_keys
from ringlog.projections.checkpoint import BULK_MIN_ROWS, upsert_many
from tests.support.postgres import fresh_engine

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)


def _table(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("ref", String(32), primary_key=True),
        Column("turn", Integer, primary_key=True, autoincrement=False),
        Column("text", Text, nullable=False),
        Column("note", Text),
        Column("at", DateTime(timezone=True)),
        Column("version", BigInteger, nullable=False),
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with fresh_engine("bulk") as scoped:
        yield scoped


metadata = MetaData()
VIA_JSON = _table(metadata, "via_json")
PER_ROW = _table(metadata, "per_row")

keys = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5))
row_values = st.fixed_dictionaries(
    {
        "text": st.text(max_size=12).map(lambda s: s.replace("\x00", "")),
        "note": st.none() | st.text(max_size=12).map(lambda s: s.replace("\x00", "")),
        "at": st.none() | st.integers(0, 10_000).map(lambda m: T0 + dt.timedelta(minutes=m)),
        "version": st.integers(0, 3),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.dictionaries(keys, row_values, max_size=12),
    batch=st.dictionaries(keys, row_values, min_size=1, max_size=12),
    update=st.sampled_from([("text", "at"), ("text", "note"), ("at",)]),
)
def test_bulk_upsert_ends_where_per_row_upserts_end(
    engine: Engine,
    stored: dict[tuple[str, int], dict[str, Any]],
    batch: dict[tuple[str, int], dict[str, Any]],
    update: tuple[str, ...],
) -> None:
    metadata.drop_all(engine)
    metadata.create_all(engine)
    first = [{"ref": r, "turn": t, **v} for (r, t), v in stored.items()]
    rows = [{"ref": r, "turn": t, **v} for (r, t), v in batch.items()]
    assert distinct_keys(VIA_JSON, rows)
    with engine.begin() as c:
        for table in (VIA_JSON, PER_ROW):
            if first:
                c.execute(table.insert(), first)
        bulk_upsert(c, VIA_JSON, rows, update=(*update, "version"), version="version")
        # the same batch again in this transaction changes nothing (equal versions lose)
        bulk_upsert(c, VIA_JSON, rows, update=(*update, "version"), version="version")
        for row in rows:
            statement = postgresql.insert(PER_ROW)
            c.execute(
                statement.on_conflict_do_update(
                    index_elements=["ref", "turn"],
                    set_={n: statement.excluded[n] for n in (*update, "version")},
                    where=PER_ROW.c.version < statement.excluded.version,
                ),
                row,
            )
    with engine.connect() as c:
        via_json = c.execute(select(VIA_JSON).order_by("ref", "turn")).all()
        per_row = c.execute(select(PER_ROW).order_by("ref", "turn")).all()
    assert via_json == per_row


def test_upsert_many_takes_the_bulk_path_only_for_distinct_keys(engine: Engine) -> None:
    """Repeated keys in one call go row by row, in order (the later version wins)."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    rows = [
        {"ref": "a", "turn": i % 3, "text": f"v{i}", "note": None, "at": None, "version": i}
        for i in range(BULK_MIN_ROWS + 10)
    ]
    assert not distinct_keys(VIA_JSON, rows)
    with engine.begin() as c:
        upsert_many(c, VIA_JSON, rows, update=("text", "version"), version="version")
    with engine.connect() as c:
        found = c.execute(select(VIA_JSON.c.turn, VIA_JSON.c.text).order_by("turn")).all()
    last = {i % 3: f"v{i}" for i in range(BULK_MIN_ROWS + 10)}
    assert [tuple(r) for r in found] == sorted(last.items())
