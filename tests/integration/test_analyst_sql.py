"""The analyst queries in the README (warehouse section), run as written against a story.

The story (see ``test_warehouse_projection``): on day 1 three outbound calls are requested and
two complete (one never connects); on day 2 one more is requested and completes. Three booking
sessions: S1 drops and is resumed by a second call, then books; S2 books on its first call; S3
drops and is never resumed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ringlog.config import Settings
from ringlog.projections.warehouse import WarehouseStore, warehouse_store
from tests.integration.test_warehouse_projection import append, make_runner, story, with_database

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "README.md"


def analyst_queries() -> dict[str, str]:
    """``-- name: x`` SQL blocks of the doc, by name."""
    blocks = re.findall(r"```sql\n-- name: (\w+)\n(.*?)```", DOC.read_text(), flags=re.S)
    return {name: sql.strip() for name, sql in blocks}


@pytest.fixture
async def projected(topics: Settings, unique: str, group_id: str) -> AsyncIterator[WarehouseStore]:
    settings = with_database(topics, f"AN_{unique.upper()}")
    store = warehouse_store(settings)
    await append(settings, story())
    await make_runner(settings, store, group_id).run_until_caught_up()
    yield store
    store.close()


def run(store: WarehouseStore, name: str) -> list[tuple[Any, ...]]:
    return [tuple(_plain(v) for v in row) for row in store.query(analyst_queries()[name])]


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def test_the_doc_has_the_four_queries() -> None:
    assert set(analyst_queries()) == {
        "completion_rate_by_day",
        "resume_rate",
        "attempts_per_booking",
        "abt_funnel",
    }


async def test_completion_rate_by_day(projected: WarehouseStore) -> None:
    assert run(projected, "completion_rate_by_day") == [
        (dt.date(2024, 10, 1), 3, 2, 0.667),
        (dt.date(2024, 10, 2), 1, 1, 1.0),
    ]


async def test_resume_rate(projected: WarehouseStore) -> None:
    assert run(projected, "resume_rate") == [(2, 1, 0.5, 1)]


async def test_attempts_per_booking(projected: WarehouseStore) -> None:
    assert run(projected, "attempts_per_booking") == [(2, 1.5, 2)]


async def test_abt_funnel(projected: WarehouseStore) -> None:
    assert run(projected, "abt_funnel") == [(4, 3, 3, 0.75, 1.0)]
