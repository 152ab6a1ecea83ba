"""The CRM projection's pure rows, and the apply-if-newer store semantics on SQLite."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringlog.projections.base import Event
from ringlog.projections.crm.rows import (
    HANDLED,
    Upsert,
    appointment_id,
    direction,
    fields_json,
    patient_id,
    project,
    rows_for,
    transcript,
)
from ringlog.projections.crm.schema import INTERACTIONS, TASKS
from ringlog.projections.crm.store import CrmStore
from ringlog.schemas import (
    Appointment,
    CallRequested,
    DialogTurn,
    Envelope,
    EventModel,
    Patient,
    SessionCompleted,
    SessionDropped,
    SessionExpired,
    SessionIdentityFailed,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
)

PHONE = "+14155550123"
SESSION = "sess-1"
FIRST, SECOND = "in_first", "in_second"
T0 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)
DOB = dt.date(1815, 12, 10)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def env(payload: EventModel, minutes: int = 0) -> Envelope:
    return Envelope.new(payload, source="test", occurred_at=at(minutes))


def completed() -> SessionCompleted:
    return SessionCompleted(
        session_id=SESSION,
        phone=PHONE,
        call_ref=SECOND,
        call_refs=(FIRST, SECOND),
        appointment=Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main St"),
        patient=Patient(name="Ada Lovelace", date_of_birth=DOB),
    )


def session_story() -> list[Envelope]:
    """The seed story on ``sessions``: start, progress, drop; resume, progress, complete."""
    return [
        env(SessionStarted(session_id=SESSION, phone=PHONE, call_ref=FIRST, stage="identity"), 0),
        env(SessionProgressed(session_id=SESSION, phone=PHONE, call_ref=FIRST, stage="date"), 1),
        env(
            SessionDropped(
                session_id=SESSION,
                phone=PHONE,
                call_ref=FIRST,
                stage="date",
                reason="caller_hangup",
                expires_at=at(24 * 60),
            ),
            2,
        ),
        env(
            SessionResumed(
                session_id=SESSION,
                phone=PHONE,
                call_ref=SECOND,
                stage="date",
                previous_call_refs=(FIRST,),
            ),
            10,
        ),
        env(SessionProgressed(session_id=SESSION, phone=PHONE, call_ref=SECOND, stage="time"), 11),
        env(completed(), 12),
    ]


def turn(call_ref: str, index: int, role: str, text: str) -> Envelope:
    return env(
        DialogTurn(
            call_ref=call_ref,
            call_id=f"retell-{call_ref}",
            session_id=SESSION,
            turn_index=index,
            role=role,
            text=text,
        )
    )


def dialog_story() -> list[Envelope]:
    return [
        turn(FIRST, 0, "agent", "Hello, how can I help?"),
        turn(FIRST, 1, "user", "I'd like a flu shot."),
        turn(FIRST, 2, "agent", "Which date suits you?"),
        turn(SECOND, 0, "agent", "Welcome back! You were booking a flu shot."),
        turn(SECOND, 1, "user", "Next Tuesday at half ten, Main St."),
    ]


def events(envelopes: list[Envelope], topic: str = "sessions", first: int = 0) -> list[Event]:
    return [Event(topic, 0, first + i, e) for i, e in enumerate(envelopes)]


# -- pure rows ---------------------------------------------------------------------------------


def test_started_and_resumed_open_an_in_progress_interaction() -> None:
    story = session_story()
    [started] = rows_for(story[0], 7)
    assert started.table == "interactions"
    assert started.version == 7
    assert started.values == {
        "call_ref": FIRST,
        "session_id": SESSION,
        "phone": PHONE,
        "direction": "inbound",
        "started_at": at(0),
        "ended_at": None,
        "outcome": "in_progress",
        "stage_reached": "identity",
        "turns": 0,
        "transcript": "",
        "version": 7,
    }
    assert set(started.update) == {
        "session_id",
        "phone",
        "direction",
        "started_at",
        "outcome",
        "stage_reached",
    }
    [resumed] = rows_for(story[3], 8)
    assert resumed.values["call_ref"] == SECOND
    assert resumed.values["outcome"] == "in_progress"
    assert resumed.values["started_at"] == at(10)


def test_progressed_owns_only_the_stage() -> None:
    [row] = rows_for(session_story()[1], 3)
    assert row.update == ("stage_reached",)
    assert row.values["stage_reached"] == "date"


def test_dropped_ends_its_call_as_dropped() -> None:
    [row] = rows_for(session_story()[2], 4)
    assert (row.values["outcome"], row.values["ended_at"], row.values["stage_reached"]) == (
        "dropped",
        at(2),
        "date",
    )
    assert set(row.update) == {"outcome", "ended_at", "stage_reached"}


def test_completed_writes_patient_appointment_and_completes_only_its_own_call() -> None:
    patient, appointment, interaction = rows_for(env(completed(), 12), 9)
    pid = patient_id(PHONE, DOB)
    assert patient == Upsert(
        "patients",
        {
            "patient_id": pid,
            "name": "Ada Lovelace",
            "date_of_birth": DOB,
            "phone": PHONE,
            "updated_at": at(12),
            "version": 9,
        },
        ("name", "date_of_birth", "phone", "updated_at"),
    )
    assert appointment.table == "appointments"
    assert appointment.values["appointment_id"] == appointment_id(SESSION)
    assert appointment.values["patient_id"] == pid
    assert (appointment.values["kind"], appointment.values["date"]) == (
        "flu_shot",
        dt.date(2024, 10, 8),
    )
    assert (appointment.values["time"], appointment.values["site"]) == ("10:30", "Main St")
    assert interaction.values["call_ref"] == SECOND
    assert interaction.values["outcome"] == "completed"
    assert all(r.values.get("call_ref") != FIRST for r in (patient, appointment, interaction))


def test_derived_ids_are_stable_and_distinct() -> None:
    assert patient_id(PHONE, DOB) == patient_id(PHONE, DOB)
    assert patient_id(PHONE, DOB) != patient_id(PHONE, dt.date(1815, 12, 11))
    assert patient_id(PHONE, DOB) != patient_id("+14155550124", DOB)
    assert appointment_id("s1") != appointment_id("s2")
    assert uuid.UUID(patient_id(PHONE, DOB)).version == 5


def test_dialog_turn_becomes_a_turn_row() -> None:
    [row] = rows_for(turn(FIRST, 2, "agent", "Which date?"), 5)
    assert row == Upsert(
        "turns",
        {"call_ref": FIRST, "turn_index": 2, "role": "agent", "text": "Which date?", "version": 5},
        ("role", "text"),
    )


def test_other_events_make_no_rows() -> None:
    assert rows_for(env(SessionExpired(session_id=SESSION, phone=PHONE)), 1) == []
    identity = SessionIdentityFailed(session_id=SESSION, phone=PHONE, call_ref=SECOND, fact="dob")
    assert rows_for(env(identity), 2) == []
    request = CallRequested(
        call_ref="c1", to_number=PHONE, from_number="+14155559876", agent_id="agent"
    )
    assert rows_for(env(request), 3) == []
    assert "call.requested" not in HANDLED
    assert {"session.completed", "dialog.turn", "session.expired"} <= HANDLED


def test_project_uses_each_events_offset_as_version() -> None:
    ops = project(events(session_story(), first=100))
    assert [op.version for op in ops] == [100, 101, 102, 103, 104, 105, 105, 105]


def test_transcript_is_in_turn_order_whatever_the_input_order() -> None:
    turns = [(2, "agent", "Which date?"), (0, "agent", "Hello"), (1, "user", "A flu shot")]
    expected = "agent: Hello\nuser: A flu shot\nagent: Which date?"
    for order in itertools.permutations(turns):
        assert transcript(order) == expected
    assert transcript([]) == ""


@pytest.mark.parametrize(
    ("call_ref", "expected"),
    [("retell:abc", "inbound"), ("in_0190", "inbound"), ("call_01HZX3", "outbound")],
)
def test_direction_from_call_ref(call_ref: str, expected: str) -> None:
    assert direction(call_ref) == expected


TASK = "task-1"


def task_story() -> list[Envelope]:
    """A task on ``tasks``: an incoming call, two writebacks, a reschedule, a delete."""
    return [
        env(
            TaskIncomingCall(
                task_id=TASK,
                from_number=PHONE,
                to_number="+14155559876",
                patient_ref="pat-7",
                notes="asked about flu shots",
            ),
            0,
        ),
        env(TaskFieldWriteback(task_id=TASK, fields={"status": "open", "priority": "high"}), 1),
        env(TaskFieldWriteback(task_id=TASK, fields={"status": "scheduled", "notes": None}), 2),
        env(TaskRescheduled(task_id=TASK, call_ref="call_1", scheduled_at=at(60)), 3),
        env(TaskDeleted(task_id=TASK, reason="patient moved away"), 4),
    ]


def test_task_events_are_handled() -> None:
    assert {
        "task.field_writeback",
        "task.rescheduled",
        "task.deleted",
        "task.incoming_call",
    } <= HANDLED


def test_incoming_call_makes_a_task_row_owning_the_call_details() -> None:
    [row] = rows_for(task_story()[0], 4)
    assert row.table == "tasks"
    assert row.values == {
        "task_id": TASK,
        "fields": "{}",
        "scheduled_at": None,
        "scheduled_call_ref": None,
        "deleted": False,
        "deleted_at": None,
        "deleted_reason": None,
        "incoming_from": PHONE,
        "incoming_to": "+14155559876",
        "incoming_notes": "asked about flu shots",
        "patient_ref": "pat-7",
        "last_event_type": "task.incoming_call",
        "updated_at": at(0),
        "version": 4,
    }
    assert set(row.update) == {
        "last_event_type",
        "updated_at",
        "incoming_from",
        "incoming_to",
        "incoming_notes",
        "patient_ref",
    }


def test_writeback_owns_no_task_column_but_writes_one_row_per_field() -> None:
    task, *fields = rows_for(task_story()[2], 6)
    assert task.table == "tasks"
    assert task.update == ("last_event_type", "updated_at")
    assert fields == [
        Upsert(
            "task_fields",
            {"task_id": TASK, "name": "notes", "value": "null", "version": 6},
            ("value",),
        ),
        Upsert(
            "task_fields",
            {"task_id": TASK, "name": "status", "value": '"scheduled"', "version": 6},
            ("value",),
        ),
    ]


def test_reschedule_and_delete_own_their_columns() -> None:
    [moved] = rows_for(task_story()[3], 7)
    assert (moved.values["scheduled_at"], moved.values["scheduled_call_ref"]) == (
        at(60),
        "call_1",
    )
    assert set(moved.update) == {
        "last_event_type",
        "updated_at",
        "scheduled_at",
        "scheduled_call_ref",
    }
    [deleted] = rows_for(task_story()[4], 8)
    assert (deleted.values["deleted"], deleted.values["deleted_at"]) == (True, at(4))
    assert deleted.values["deleted_reason"] == "patient moved away"
    assert "incoming_from" not in deleted.update and "fields" not in deleted.update


def test_fields_json_is_sorted_whatever_the_order() -> None:
    pairs = [("status", '"open"'), ("max_attempts", "3"), ("notes", "null")]
    expected = '{"max_attempts":3,"notes":null,"status":"open"}'
    for order in itertools.permutations(pairs):
        assert fields_json(order) == expected
    assert fields_json([]) == "{}"


# -- store semantics (SQLite file, no server) --------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CrmStore]:
    crm = CrmStore(f"sqlite:///{tmp_path}/crm.db")
    yield crm
    crm.close()


def story_ops() -> tuple[list[Upsert], list[Upsert]]:
    return project(events(session_story())), project(events(dialog_story(), "dialog"))


async def test_story_gives_one_patient_one_appointment_and_two_interactions(
    store: CrmStore,
) -> None:
    sessions, dialog = story_ops()
    await store.apply("crm", sessions, {("sessions", 0): 6})
    await store.apply("crm", dialog, {("dialog", 0): 5})
    snap = store.snapshot()
    assert len(snap["crm_patients"]) == 1
    assert len(snap["crm_appointments"]) == 1
    by_ref = {row[0]: row for row in snap["crm_interactions"]}
    cols = [c.name for c in INTERACTIONS.columns]
    first, second = (dict(zip(cols, by_ref[r], strict=True)) for r in (FIRST, SECOND))
    assert (first["outcome"], first["stage_reached"], first["turns"]) == ("dropped", "date", 3)
    assert (second["outcome"], second["stage_reached"], second["turns"]) == (
        "completed",
        "completed",
        2,
    )
    assert first["transcript"] == (
        "agent: Hello, how can I help?\nuser: I'd like a flu shot.\nagent: Which date suits you?"
    )
    assert await store.load_checkpoint("crm") == {("sessions", 0): 6, ("dialog", 0): 5}


async def test_newer_version_wins_and_replays_change_nothing(store: CrmStore) -> None:
    sessions, dialog = story_ops()
    await store.apply("crm", sessions + dialog, {("sessions", 0): 6})
    final = store.snapshot()
    # the same events again, then older ones alone, then in reverse order: nothing changes
    await store.apply("crm", sessions + dialog, {("sessions", 0): 6})
    await store.apply("crm", sessions[:2], {("sessions", 0): 2})
    await store.apply("crm", list(reversed(sessions)), {("sessions", 0): 6})
    assert store.snapshot() == final
    # the checkpoint never moves backwards
    assert await store.load_checkpoint("crm") == {("sessions", 0): 6}


async def test_a_newer_write_replaces_an_older_one(store: CrmStore) -> None:
    older = rows_for(turn(FIRST, 0, "agent", "Hello"), 1)
    newer = rows_for(turn(FIRST, 0, "agent", "Hello there"), 2)
    await store.apply("crm", newer, {})
    await store.apply("crm", older, {})
    assert store.snapshot()["crm_interaction_turns"] == [(FIRST, 0, "agent", "Hello there", 2)]
    await store.apply("crm", rows_for(turn(FIRST, 0, "agent", "Hi"), 3), {})
    assert store.snapshot()["crm_interaction_turns"] == [(FIRST, 0, "agent", "Hi", 3)]


async def test_turns_and_session_events_commute(tmp_path: Path) -> None:
    """Turns before, after or between the session events give the same tables."""
    sessions, dialog = story_ops()
    orders = [
        [sessions, dialog],
        [dialog, sessions],
        [list(reversed(dialog)), sessions],
        [dialog[:2], sessions[:3], dialog[2:], sessions[3:]],
        [[op] for op in dialog[::-1]] + [sessions],
    ]
    snapshots = []
    for n, batches in enumerate(orders):
        crm = CrmStore(f"sqlite:///{tmp_path}/order{n}.db")
        try:
            for batch in batches:
                await crm.apply("crm", batch, {})
            snapshots.append(crm.snapshot())
        finally:
            crm.close()
    assert all(s == snapshots[0] for s in snapshots[1:])
    assert [row[8] for row in snapshots[0]["crm_interactions"]] == [3, 2]


def task_row(store: CrmStore) -> dict[str, object]:
    [row] = store.snapshot()["crm_tasks"]
    return dict(zip([c.name for c in TASKS.columns], row, strict=True))


async def test_task_story_merges_fields_and_keeps_the_tombstone(store: CrmStore) -> None:
    ops = project(events(task_story(), "tasks"))
    await store.apply("crm", ops, {("tasks", 0): 5})
    row = task_row(store)
    # later writes win per field; a field set to null stays, as null
    assert row["fields"] == '{"notes":null,"priority":"high","status":"scheduled"}'
    assert (row["deleted"], row["deleted_reason"], row["scheduled_call_ref"]) == (
        True,
        "patient moved away",
        "call_1",
    )
    assert (row["incoming_from"], row["patient_ref"]) == (PHONE, "pat-7")
    assert (row["last_event_type"], row["version"]) == ("task.deleted", 4)
    final = store.snapshot()
    # the same events again, older ones alone, all in reverse: nothing changes
    await store.apply("crm", ops, {("tasks", 0): 5})
    await store.apply("crm", ops[:2], {("tasks", 0): 2})
    await store.apply("crm", list(reversed(ops)), {("tasks", 0): 5})
    assert store.snapshot() == final


async def test_a_writeback_after_a_delete_keeps_the_task_deleted(store: CrmStore) -> None:
    story = task_story()
    later = env(TaskFieldWriteback(task_id=TASK, fields={"outcome": "declined"}), 5)
    await store.apply("crm", project(events([*story, later], "tasks")), {})
    row = task_row(store)
    assert row["deleted"] is True
    assert row["last_event_type"] == "task.field_writeback"
    assert row["fields"] == (
        '{"notes":null,"outcome":"declined","priority":"high","status":"scheduled"}'
    )


async def test_task_events_one_by_one_give_the_same_table(tmp_path: Path) -> None:
    """Per-event batches, or all at once (and any later replay), give the same bytes."""
    ops = project(events(task_story(), "tasks"))
    snapshots = []
    for n, batches in enumerate([[ops], [[op] for op in ops], [ops[:3], ops[3:], ops]]):
        crm = CrmStore(f"sqlite:///{tmp_path}/tasks{n}.db")
        try:
            for batch in batches:
                await crm.apply("crm", batch, {})
            snapshots.append(crm.snapshot())
        finally:
            crm.close()
    assert all(s == snapshots[0] for s in snapshots[1:])
