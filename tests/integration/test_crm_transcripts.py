"""On PostgreSQL the server builds interaction transcripts; they must equal Python's.

``refresh_transcripts`` aggregates the stored turns in SQL there (``string_agg`` in turn
order), and in Python (:func:`ringlog.projections.crm.rows.transcript`) on SQLite. Each
example stores arbitrary turns (any text, out of order, some calls without turns) and checks
the refreshed ``turns`` and ``transcript`` of every touched call against the Python text;
calls not named are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from ringlog.projections.crm.rows import transcript
from ringlog.projections.crm.schema import INTERACTIONS, METADATA, TURNS
from ringlog.projections.crm.store import refresh_transcripts
from tests.support.postgres import fresh_engine

pytestmark = pytest.mark.integration

REFS = ["call-a", "call-b", "call-c", "call-d"]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with fresh_engine("transcripts") as scoped:
        yield scoped


def _interaction(ref: str) -> dict[str, object]:
    return {
        "call_ref": ref,
        "session_id": "s",
        "phone": "+14155550123",
        "direction": "outbound",
        "outcome": "in_progress",
        "turns": 99,
        "transcript": "stale",
        "version": 0,
    }


turns = st.dictionaries(
    st.tuples(st.sampled_from(REFS[:3]), st.integers(0, 30)),
    st.tuples(
        st.sampled_from(["agent", "user"]),
        st.text(max_size=20).map(lambda s: s.replace("\x00", "")),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stored=turns, touched=st.sets(st.sampled_from(REFS), max_size=4))
def test_postgres_transcripts_equal_the_python_ones(
    engine: Engine, stored: dict[tuple[str, int], tuple[str, str]], touched: set[str]
) -> None:
    METADATA.drop_all(engine, tables=[INTERACTIONS, TURNS])
    METADATA.create_all(engine, tables=[INTERACTIONS, TURNS])
    with engine.begin() as c:
        c.execute(INTERACTIONS.insert(), [_interaction(ref) for ref in REFS])
        if stored:
            c.execute(
                TURNS.insert(),
                [
                    {"call_ref": r, "turn_index": i, "role": role, "text": t, "version": 0}
                    for (r, i), (role, t) in stored.items()
                ],
            )
        refresh_transcripts(c, touched)
    with engine.connect() as c:
        found = {
            r: (n, t)
            for r, n, t in c.execute(select(INTERACTIONS.c["call_ref", "turns", "transcript"]))
        }
    for ref in REFS:
        if ref in touched:
            mine = [(i, role, t) for (r, i), (role, t) in stored.items() if r == ref]
            assert found[ref] == (len(mine), transcript(mine)), ref
        else:
            assert found[ref] == (99, "stale"), ref
