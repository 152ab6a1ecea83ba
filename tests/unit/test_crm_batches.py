"""CRM upserts are merged per row and batched by shape without changing what they write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ringlog.projections.crm.batches import batches, coalesce
from ringlog.projections.crm.rows import Upsert

Table = dict[tuple[str, str], dict[str, Any]]


def turn(ref: str, index: int, version: int) -> Upsert:
    values = {"call_ref": ref, "turn_index": index, "role": "user", "text": "x", "version": version}
    return Upsert("turns", values, ("role", "text"))


def interaction(ref: str, version: int, **columns: object) -> Upsert:
    row = {"call_ref": ref, "version": version, "stage_reached": None, "outcome": "in_progress"}
    return Upsert("interactions", row | columns, tuple(columns))


def apply_in_order(stored: Table, ops: Sequence[Upsert]) -> Table:
    """What the database does with ``INSERT … ON CONFLICT DO UPDATE … WHERE version <``."""
    table: Table = {key: dict(row) for key, row in stored.items()}
    for op in ops:
        key = (op.table, str(op.values["call_ref"]))
        row = table.get(key)
        if row is None:
            table[key] = dict(op.values)
        elif row["version"] < op.version:
            row.update({c: op.values[c] for c in (*op.update, "version")})
    return table


writes = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=1, max_value=40),
        st.dictionaries(
            st.sampled_from(["stage_reached", "outcome", "ended_at"]),
            st.sampled_from(["date", "time", "dropped", "completed"]),
        ),
    ),
    max_size=25,
)


@given(
    ops=writes,
    stored=st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.tuples(st.integers(min_value=-5, max_value=0), st.sampled_from(["x", "y"])),
    ),
)
def test_merged_upserts_write_what_the_sequence_writes(
    ops: list[tuple[str, int, dict[str, str]]], stored: dict[str, tuple[int, str]]
) -> None:
    upserts = [interaction(ref, version, **columns) for ref, version, columns in ops]
    before = {
        ("interactions", ref): {"call_ref": ref, "version": v, "stage_reached": s, "outcome": s}
        for ref, (v, s) in stored.items()
    }
    merged = [op for _shape, run in batches(upserts) for op in run]
    assert apply_in_order(before, merged) == apply_in_order(before, upserts)
    assert len(merged) == len({ref for ref, _v, _c in ops})


def test_rows_of_one_shape_go_together_across_calls() -> None:
    ops = [
        turn("a", 0, 1),
        interaction("a", 2, outcome="dropped"),
        turn("b", 0, 3),
        turn("a", 1, 4),
    ]
    assert [(shape[0], [op.version for op in run]) for shape, run in batches(ops)] == [
        ("turns", [1, 3, 4]),
        ("interactions", [2]),
    ]


def test_later_writes_of_a_row_overlay_only_their_own_columns() -> None:
    first = interaction("a", 1, stage_reached="date")
    second = interaction("a", 2, outcome="dropped")
    third = interaction("a", 3, stage_reached="time")
    [merged] = coalesce([first, second, third])
    assert merged.values["stage_reached"] == "time"
    assert merged.values["outcome"] == "dropped"
    assert merged.version == 3
    assert set(merged.update) == {"stage_reached", "outcome"}


def test_a_write_no_newer_than_the_merged_row_is_dropped_as_the_database_would() -> None:
    [merged] = coalesce([interaction("a", 5, outcome="dropped"), interaction("a", 5, outcome="x")])
    assert merged.values["outcome"] == "dropped"
