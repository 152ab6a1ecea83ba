"""How many processes a rebuild folds in when the operator does not say
(:func:`ringlog.projections.slices.workers_for`)."""

from __future__ import annotations

import pytest

from ringlog.projections import slices
from ringlog.projections.slices import AUTO_MIN_RECORDS, workers_for


def _target(partitions: int, records: int) -> dict[tuple[str, int], int]:
    """Two co-partitioned topics of ``partitions`` partitions holding ``records`` in all."""
    positions = [(topic, p) for topic in ("calls", "abt") for p in range(partitions)]
    each, rest = divmod(records, len(positions))
    target = dict.fromkeys(positions, each)
    target[positions[0]] += rest
    return target


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process may run on four cores."""
    monkeypatch.setattr(slices.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)


@pytest.mark.usefixtures("four_cores")
def test_a_small_fold_runs_in_one_process() -> None:
    assert workers_for(_target(6, AUTO_MIN_RECORDS - 100)) == 1


@pytest.mark.usefixtures("four_cores")
def test_a_large_fold_takes_a_process_per_core() -> None:
    assert workers_for(_target(6, AUTO_MIN_RECORDS)) == 4


@pytest.mark.usefixtures("four_cores")
def test_never_more_processes_than_partition_numbers() -> None:
    assert workers_for(_target(3, 10 * AUTO_MIN_RECORDS)) == 3
