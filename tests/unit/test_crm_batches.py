"""CRM upserts are batched without reordering the writes of any one row."""

from __future__ import annotations

from ringlog.projections.crm.rows import Upsert
from ringlog.projections.crm.store import _batches


def turn(ref: str, index: int, version: int) -> Upsert:
    values = {"call_ref": ref, "turn_index": index, "role": "user", "text": "x", "version": version}
    return Upsert("turns", values, ("role", "text"))


def interaction(ref: str, version: int, **columns: object) -> Upsert:
    return Upsert("interactions", {"call_ref": ref, "version": version, **columns}, tuple(columns))


def test_rows_of_one_shape_go_together_across_calls() -> None:
    ops = [
        turn("a", 0, 1),
        interaction("a", 2, outcome="dropped"),
        turn("b", 0, 3),
        turn("a", 1, 4),
    ]
    batches = _batches(ops)
    assert [(shape[0], [op.version for op in run]) for shape, run in batches] == [
        ("turns", [1, 3, 4]),
        ("interactions", [2]),
    ]


def test_the_writes_of_one_row_keep_their_order() -> None:
    first = interaction("a", 1, stage_reached="date")
    second = interaction("a", 2, outcome="dropped")
    third = interaction("a", 3, stage_reached="time")
    other = interaction("b", 4, stage_reached="date")
    batches = _batches([first, second, third, other])
    order = [op.version for _shape, run in batches for op in run]
    assert order.index(1) < order.index(2) < order.index(3)
    assert [op.version for op in batches[0][1]] == [1, 4], "b's write joins a's first one"
