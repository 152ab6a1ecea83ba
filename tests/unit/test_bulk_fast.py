"""The cheaper bulk paths fold and write exactly what the per-event ones did.

* :func:`ringlog.sessions.state.apply_all` (fields changed in a dict, the state built once)
  against the per-event fold as it was written before (``dataclasses.replace`` per event);
* :func:`ringlog.views.store.sessions_folded` (each number folded at once) against the loop it
  replaced;
* :func:`ringlog.projections.sql.among` (keys bound as one JSON array on PostgreSQL, chunks of
  ``IN`` elsewhere) and :class:`ringlog.projections.sql.GrowthAnalyze` (ANALYZE as a table
  filled from empty grows) on SQLite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text
from sqlalchemy.dialects import postgresql

from ringlog.projections.base import Event
from ringlog.projections.sql import IN_CHUNK, GrowthAnalyze, among
from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.sessions import (
    Appointment,
    Patient,
    SessionCompleted,
    SessionDropped,
    SessionExpired,
    SessionIdentityFailed,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
)
from ringlog.sessions.state import SessionState, apply, apply_all
from ringlog.views.store import sessions_folded

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
PHONES = ("+14155550100", "+14155550101")


def reference_apply(state: SessionState | None, envelope: Envelope) -> SessionState | None:
    """The per-event fold as it was before ``apply_all`` (one ``replace`` per change)."""
    event = envelope.payload
    at = envelope.occurred_at
    if isinstance(event, SessionStarted):
        return SessionState(
            session_id=event.session_id,
            phone=event.phone,
            task=event.task,
            status="active",
            stage=event.stage,
            started_at=at,
            updated_at=at,
            call_refs=(event.call_ref,),
            active_call=event.call_ref,
        )
    session_id = getattr(event, "session_id", None)
    if state is None or session_id != state.session_id:
        return state
    state = replace(state, updated_at=max(at, state.updated_at), version=state.version + 1)
    if isinstance(event, SessionProgressed):
        slots = MappingProxyType({**state.slots, **event.slots})
        return replace(state, stage=event.stage, slots=slots)
    if isinstance(event, SessionDropped):
        return replace(
            state,
            status="dropped",
            stage=event.stage,
            active_call=None,
            expires_at=event.expires_at,
        )
    if isinstance(event, SessionResumed):
        refs = state.call_refs
        if event.call_ref not in refs:
            refs = (*refs, event.call_ref)
        return replace(
            state, status="active", stage=event.stage, active_call=event.call_ref, call_refs=refs
        )
    if isinstance(event, SessionIdentityFailed):
        return replace(state, status="superseded", active_call=None)
    if isinstance(event, SessionCompleted):
        return replace(state, status="completed", active_call=None, stage="done")
    if isinstance(event, SessionExpired):
        return replace(state, status="expired", active_call=None)
    return state


def payload(kind: int, phone: str, session: str, call: str, step: int) -> EventModel:
    ids = {"session_id": session, "phone": phone, "call_ref": call}
    slots = {f"k{step % 3}": f"v{step}"}
    made: list[EventModel] = [
        SessionStarted(**ids, stage="identity"),
        SessionProgressed(**ids, stage=f"step-{step}", slots=slots),
        SessionDropped(**ids, stage="name", reason="hangup", expires_at=T0 + dt.timedelta(1)),
        SessionResumed(**ids, stage="resumed"),
        SessionIdentityFailed(**ids, fact="date_of_birth"),
        SessionCompleted(
            **ids,
            call_refs=(call,),
            appointment=Appointment(date=dt.date(2026, 11, 30), time="10:30", site="main"),
            patient=Patient(name="Ada", date_of_birth=dt.date(1985, 12, 10)),
        ),
        SessionExpired(session_id=session, phone=phone),
    ]
    return made[kind]


#: (kind, number, session, call, seconds after T0): events in any order, times not monotone
steps = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.integers(0, 1),
        st.sampled_from(("s1", "s2")),
        st.sampled_from(("c1", "c2", "c3")),
        st.integers(0, 50),
    ),
    max_size=25,
)


def events(drawn: list[tuple[int, int, str, str, int]]) -> list[Event]:
    out = []
    for offset, (kind, number, session, call, seconds) in enumerate(drawn):
        phone = PHONES[number]
        envelope = Envelope.new(
            payload(kind, phone, session, call, offset),
            source="test",
            occurred_at=T0 + dt.timedelta(seconds=seconds),
        )
        out.append(Event("sessions", number, offset, envelope))
    return out


@settings(max_examples=300, deadline=None)
@given(steps)
def test_apply_all_is_apply_in_turn(drawn: list[tuple[int, int, str, str, int]]) -> None:
    envelopes = [e.envelope for e in events(drawn)]
    state: SessionState | None = None
    for envelope in envelopes:
        expected = reference_apply(state, envelope)
        assert apply(state, envelope) == expected
        state = expected
    assert apply_all(None, envelopes) == state


@settings(max_examples=200, deadline=None)
@given(steps, steps)
def test_apply_all_from_a_stored_state_leaves_it_unchanged(
    before: list[tuple[int, int, str, str, int]], after: list[tuple[int, int, str, str, int]]
) -> None:
    stored = apply_all(None, [e.envelope for e in events([(0, 0, "s1", "c1", 0), *before])])
    assert stored is not None
    frozen = (stored.to_json(), dict(stored.slots))
    expected: SessionState | None = stored
    for event in events(after):
        expected = reference_apply(expected, event.envelope)
    assert apply_all(stored, [e.envelope for e in events(after)]) == expected
    assert (stored.to_json(), dict(stored.slots)) == frozen


def test_apply_all_returns_the_state_itself_when_nothing_applies() -> None:
    stored = apply_all(None, [e.envelope for e in events([(0, 0, "s1", "c1", 0)])])
    other = events([(1, 0, "s2", "c1", 3)])  # another session's progress: ignored
    assert apply_all(stored, [e.envelope for e in other]) is stored
    assert apply_all(None, [e.envelope for e in other]) is None


def test_apply_all_never_changes_a_callers_slots() -> None:
    started = apply_all(None, [e.envelope for e in events([(0, 0, "s1", "c1", 0)])])
    assert started is not None
    mine = {"date": "2026-11-30"}
    stored = replace(started, slots=mine)  # type: ignore[arg-type]
    progressed = events([(1, 0, "s1", "c1", 5), (1, 0, "s1", "c1", 6)])
    folded = apply_all(stored, [e.envelope for e in progressed])
    assert folded is not None
    assert mine == {"date": "2026-11-30"}
    assert dict(folded.slots) == {"date": "2026-11-30", "k0": "v0", "k1": "v1"}


@settings(max_examples=200, deadline=None)
@given(steps, st.booleans())
def test_sessions_folded_is_the_per_event_loop(
    drawn: list[tuple[int, int, str, str, int]], with_stored: bool
) -> None:
    batch = events(drawn)
    stored: dict[str, SessionState] = {}
    if with_stored:
        first = apply_all(None, [e.envelope for e in events([(0, 0, "s1", "c1", 0)])])
        assert first is not None
        stored[PHONES[0]] = first
    states = dict(stored)
    expected: dict[str, tuple[SessionState, Event]] = {}
    for event in batch:
        phone = event.envelope.key
        folded = reference_apply(states.get(phone), event.envelope)
        if folded is not None:
            states[phone] = folded
            expected[phone] = (folded, event)
    assert sessions_folded(stored, batch) == expected


def _keys_table() -> tuple[Table, MetaData]:
    metadata = MetaData()
    table = Table(
        "keys",
        metadata,
        Column("topic", String, primary_key=True),
        Column("key", String, primary_key=True),
        Column("n", Integer),
    )
    return table, metadata


def test_among_finds_the_keys_in_chunks_on_sqlite() -> None:
    table, metadata = _keys_table()
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    keys = [f"k{i:05d}" for i in range(IN_CHUNK * 2 + 7)]
    with engine.begin() as connection:
        connection.execute(insert(table), [{"topic": "t", "key": k, "n": 1} for k in keys[::3]])
        chunks = among(connection, table.c.key, keys)
        assert len(chunks) == 3
        found = {
            key
            for chunk in chunks
            for (key,) in connection.execute(select(table.c.key).where(chunk))
        }
        assert among(connection, table.c.key, []) == []
    assert found == set(keys[::3])


def test_among_binds_one_json_array_on_postgresql() -> None:
    table, _ = _keys_table()

    class Dialect:
        name = "postgresql"

    class Connection:
        dialect = Dialect()

    (condition,) = among(Connection(), table.c.key, ["a", "b", "c"])  # type: ignore[arg-type]
    compiled = condition.compile(dialect=postgresql.dialect())
    assert "= ANY (ARRAY(SELECT json_array_elements_text(" in str(compiled)
    assert list(compiled.params.values()) == ['["a","b","c"]']


def test_growth_analyze_runs_at_growing_thresholds() -> None:
    table, metadata = _keys_table()
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    analyze = GrowthAnalyze((table,), first_rows=10, factor=4)
    ran = []
    with engine.begin() as connection:
        for batch in range(12):
            rows = [{"topic": "t", "key": f"{batch}-{i}", "n": i} for i in range(5)]
            connection.execute(insert(table), rows)
            ran.append(analyze.wrote(connection, len(rows)))
        stats = connection.execute(text("SELECT tbl FROM sqlite_stat1")).scalars().all()
    # 10 rows, then 40: at the 2nd and the 8th batch; next at 160
    assert [i for i, r in enumerate(ran) if r] == [1, 7]
    assert analyze.next_at == 160
    assert "keys" in stats
