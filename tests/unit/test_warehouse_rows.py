"""The warehouse projection's pure parts: phone hashing, redaction, withholding of personal
details, rows, folds and SQL text."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import orjson
import pytest

from ringlog.projections.base import Event
from ringlog.projections.warehouse import schema
from ringlog.projections.warehouse.folds import Stored, fold_rows
from ringlog.projections.warehouse.phones import hash_phone, phone_protector, redact
from ringlog.projections.warehouse.rows import (
    Fold,
    Row,
    earliest_by_key,
    latest_by_key,
    operations_for,
    project,
)
from ringlog.schemas import (
    AbtEvent,
    Appointment,
    CallDispatched,
    CallDispatchFailed,
    CallRequested,
    DialogTurn,
    Envelope,
    EventModel,
    Patient,
    RetellCallAnalyzed,
    RetellCallEnded,
    RetellCallInbound,
    RetellCallStarted,
    RetellWebhook,
    SessionCompleted,
    SessionDropped,
    SessionProgressed,
    SessionResumed,
    SessionStarted,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
    abt_id_for,
)
from tests.support.examples import CLINIC, PHONE, REF, RETELL_ID, example_events, retell_call

KEY = "test-key"
protect = phone_protector(KEY)
T0 = dt.datetime(2024, 10, 1, 9, 0, tzinfo=dt.UTC)


def h(number: str) -> str:
    return hash_phone(number, KEY.encode())


def env(payload: EventModel, minutes: int = 0) -> Envelope:
    return Envelope.new(payload, source="test", occurred_at=T0 + dt.timedelta(minutes=minutes))


def keyed_by_number(ringing: RetellCallInbound) -> Envelope:
    """A ringing keyed ``inbound:<caller>``, a key the warehouse still recognises; ringlog's
    own appends key a ringing by its call ref (``retell:<call_id>`` or a minted ``in_<hex>``)."""
    number = ringing.call_inbound.from_number
    return Envelope.new(ringing, source="test", occurred_at=T0, key=f"inbound:{number}")


def events(envelopes: Sequence[Envelope], topic: str = "t.calls", start: int = 0) -> list[Event]:
    return [Event(topic, 0, start + i, e) for i, e in enumerate(envelopes)]


def webhook(name: str, **changes: Any) -> Envelope:
    model = {
        "call_started": RetellCallStarted,
        "call_ended": RetellCallEnded,
        "call_analyzed": RetellCallAnalyzed,
    }[name]
    return env(model.from_body({"event": name, "call": retell_call(name) | changes}))


def requested() -> Envelope:
    return env(
        CallRequested(
            call_ref=REF,
            to_number=PHONE,
            from_number=CLINIC,
            agent_id="agent_flu",
            task_ref="task-9",
            patient_ref="pat-17",
            scheduled_at=T0 + dt.timedelta(hours=1),
        )
    )


def dispatched() -> Envelope:
    return env(CallDispatched(call_ref=REF, retell_call_id=RETELL_ID, agent_id="agent_flu"), 60)


def folded(
    table: str,
    evts: Sequence[Event],
    stored: Mapping[str, Stored] | None = None,
    *,
    transcripts: bool = False,
) -> list[dict[str, Any]]:
    ops = project(evts, protect, transcripts=transcripts)
    return fold_rows(table, stored or {}, [op for op in ops if isinstance(op, Fold)])


def as_stored(row: Mapping[str, Any]) -> Stored:
    """The row as the store reads it back: FOLD_STATE through JSON text."""
    return orjson.loads(orjson.dumps(row["FOLD_STATE"])), row["VERSION"]


# -- phone numbers ------------------------------------------------------------------------------


def test_hash_phone_is_a_keyed_deterministic_hmac() -> None:
    first = hash_phone(PHONE, b"k1")
    assert first == hash_phone(f" {PHONE} ", b"k1")
    assert first != hash_phone(PHONE, b"k2")
    assert first != hash_phone(CLINIC, b"k1")
    assert len(first) == 64 and int(first, 16) >= 0
    assert PHONE not in first


def test_hashing_can_be_switched_off() -> None:
    assert phone_protector(KEY, enabled=False)(PHONE) == PHONE
    assert phone_protector(KEY)(PHONE) == h(PHONE)


def test_redact_hashes_every_phone_number_and_nothing_else() -> None:
    call = redact(requested(), protect).payload
    assert isinstance(call, CallRequested)
    assert (call.to_number, call.from_number, call.task_ref) == (h(PHONE), h(CLINIC), "task-9")

    original = webhook("call_ended")
    hook = redact(original, protect)
    assert isinstance(hook.payload, RetellCallEnded)
    wire = hook.payload.to_wire()
    assert (wire["call"]["from_number"], wire["call"]["to_number"]) == (h(CLINIC), h(PHONE))
    sent = original.payload.to_wire()["call"]
    assert set(wire["call"]) == set(sent)  # nothing added, nothing Retell added dropped
    assert wire["call"]["transcript_object"] == sent["transcript_object"]  # words and all
    assert "transfer_destination" not in wire["call"]
    assert (hook.payload.call.from_number, hook.payload.call.to_number) == (h(CLINIC), h(PHONE))
    assert sent["from_number"] == CLINIC, "the body the original keeps is not changed"
    assert hook.event_id == original.event_id and hook.key == REF

    started = env(SessionStarted(session_id="s1", phone=PHONE, call_ref=REF, stage="identity"))
    session = redact(started, protect)
    assert session.key == h(PHONE) and session.payload.phone == h(PHONE)  # type: ignore[attr-defined]

    incoming = TaskIncomingCall(task_id="t1", from_number=PHONE, to_number=CLINIC)
    task = redact(env(incoming), protect).payload
    assert isinstance(task, TaskIncomingCall)
    assert (task.from_number, task.to_number) == (h(PHONE), h(CLINIC))

    ringing = RetellCallInbound.from_body(
        {"event": "call_inbound", "call_inbound": {"from_number": PHONE, "to_number": CLINIC}}
    )
    inbound = redact(env(ringing), protect)
    assert inbound.key.startswith("in_") and PHONE not in inbound.key  # a minted call ref
    assert inbound.payload.to_wire()["call_inbound"]["from_number"] == h(PHONE)
    assert isinstance(inbound.payload, RetellCallInbound)
    assert inbound.payload.call_inbound.to_number == h(CLINIC)
    assert ringing.to_wire()["call_inbound"]["from_number"] == PHONE
    by_number = redact(keyed_by_number(ringing), protect)
    assert by_number.key == f"inbound:{h(PHONE)}"

    turn = env(DialogTurn(call_ref=REF, call_id=RETELL_ID, turn_index=0, role="user", text="hi"))
    assert redact(turn, protect) is turn


def test_no_clear_number_reaches_any_row() -> None:
    story = [
        requested(),
        dispatched(),
        webhook("call_started"),
        webhook("call_ended"),
        env(SessionStarted(session_id="s1", phone=PHONE, call_ref=REF, stage="identity")),
        env(TaskIncomingCall(task_id="t1", from_number=PHONE, to_number=CLINIC)),
    ]
    evts = events(story)
    ops = project(evts, protect)
    text = orjson.dumps([op.values for op in ops if isinstance(op, Row)]).decode()
    for table in (schema.CALLS.name, schema.SESSIONS.name, schema.TASKS.name):
        text += orjson.dumps(folded(table, evts)).decode()
    assert PHONE not in text and CLINIC not in text
    assert h(PHONE) in text


def test_numbers_in_writebacks_metadata_and_failure_reasons_are_hashed() -> None:
    writeback = TaskFieldWriteback(
        task_id="t1", fields={"callback_number": PHONE, "outcome": "booked"}
    )
    fields = redact(env(writeback), protect).payload.fields  # type: ignore[attr-defined]
    assert fields == {"callback_number": h(PHONE), "outcome": "booked"}

    request = msgspec.structs.replace(requested().payload, metadata={"alt": PHONE, "k": "v"})
    call = redact(env(request), protect).payload
    assert isinstance(call, CallRequested) and call.metadata == {"alt": h(PHONE), "k": "v"}

    hook = webhook("call_ended", metadata={"call_ref": REF, "alt": PHONE})
    wire = redact(hook, protect).payload.to_wire()["call"]
    assert wire["metadata"] == {"call_ref": REF, "alt": h(PHONE)}

    failed = CallDispatchFailed(
        call_ref=REF, reason=f"422: {PHONE} is not callable", permanent=True, attempts=1
    )
    reason = redact(env(failed), protect).payload.reason  # type: ignore[attr-defined]
    assert reason == f"422: {h(PHONE)} is not callable"


def test_a_number_with_surrounding_spaces_is_hashed_as_the_number() -> None:
    values = {"a": f" {PHONE}", "b": f"{PHONE}\n", "c": "+12345", "d": "x"}
    request = msgspec.structs.replace(requested().payload, metadata=values)
    call = redact(env(request), protect).payload
    assert isinstance(call, CallRequested)
    assert call.metadata == {"a": h(PHONE), "b": h(PHONE), "c": "+12345", "d": "x"}, (
        "hashed as hash_phone reads a number (spaces removed); too short is not a number"
    )


NAME, DOB, SAID = "Ada Lovelace", "1815-12-10", "I'd like a flu shot."


def personal_story() -> list[Envelope]:
    """Every event that carries a name, a date of birth or an utterance."""
    s = {"session_id": "s1", "phone": PHONE}
    return [
        requested(),
        webhook("call_ended"),
        webhook("call_analyzed"),
        env(DialogTurn(call_ref=REF, call_id=RETELL_ID, turn_index=0, role="user", text=SAID)),
        env(SessionStarted(**s, call_ref=REF, stage="identity")),
        env(
            SessionProgressed(
                **s,
                call_ref=REF,
                stage="date",
                slots={"name": NAME, "date_of_birth": DOB},
                last_user_text=SAID,
                last_agent_text=f"Thanks {NAME}.",
            )
        ),
        env(
            SessionCompleted(
                **s,
                call_ref=REF,
                call_refs=(REF,),
                appointment=Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main St"),
                patient=Patient(name=NAME, date_of_birth=dt.date.fromisoformat(DOB)),
            )
        ),
        env(TaskFieldWriteback(task_id="t1", fields={"notes": f"{NAME} prefers mornings"})),
        env(TaskIncomingCall(task_id="t2", from_number=PHONE, to_number=CLINIC, notes=NAME)),
    ]


def written(evts: Sequence[Event], *, transcripts: bool) -> str:
    """Everything the warehouse would write for ``evts``, as JSON text."""
    ops = project(evts, protect, transcripts=transcripts)
    text = orjson.dumps([op.values for op in ops if isinstance(op, Row)]).decode()
    for table in (schema.CALLS.name, schema.SESSIONS.name, schema.TASKS.name):
        text += orjson.dumps(folded(table, evts, transcripts=transcripts)).decode()
    return text


def test_names_dates_of_birth_and_utterances_are_withheld_by_default() -> None:
    text = written(events(personal_story()), transcripts=False)
    for personal in (NAME, "Lovelace", DOB, SAID, "flu shot", "patient_name"):
        assert personal not in text, personal
    assert PHONE not in text and h(PHONE) in text
    assert "Main St" in text and "Positive" in text  # the facts analysts count stay


def test_the_transcripts_setting_keeps_them_and_still_hashes_numbers() -> None:
    text = written(events(personal_story()), transcripts=True)
    for personal in (NAME, DOB, SAID, "Patient booked a flu shot."):
        assert personal in text, personal
    assert PHONE not in text and CLINIC not in text


def test_withheld_retell_payloads_keep_an_allow_list_of_the_call() -> None:
    row = operations_for(Event("t.calls", 0, 1, webhook("call_analyzed")), protect)[0]
    assert isinstance(row, Row)
    call = row.values["PAYLOAD"]["call"]
    assert "transcript" not in call and "transcript_object" not in call
    assert "retell_llm_dynamic_variables" not in call
    assert call["call_analysis"] == {
        "user_sentiment": "Positive",
        "call_successful": True,
        "in_voicemail": False,
    }
    assert (call["call_id"], call["to_number"]) == (RETELL_ID, h(PHONE))
    assert call["latency"]["e2e"]["p50"] == 812.0


def test_redacted_retell_payloads_are_their_new_body_read_again() -> None:
    """A Retell payload is changed by rebuilding it from a new body (``from_body``): the typed
    view the fold reads agrees with the body the row writes, and the original's body is
    untouched."""
    retell = [p for p in example_events() if isinstance(p, RetellWebhook | RetellCallInbound)]
    assert len(retell) == 10
    for payload in retell:
        sent = copy.deepcopy(payload.to_wire())
        for transcripts in (False, True):
            event = Event("t.calls", 0, 1, Envelope.new(payload, source="test", key="k"))
            row, fold = operations_for(event, protect, transcripts=transcripts)
            assert isinstance(row, Row) and isinstance(fold, Fold)
            wire, redacted = row.values["PAYLOAD"], fold.envelope.payload
            assert redacted == type(payload).from_body(wire) and redacted.to_wire() == wire
            if isinstance(redacted, RetellWebhook):
                assert isinstance(payload, RetellWebhook)
                assert redacted.call.from_number == h(CLINIC), payload
                said = payload.call.transcript if transcripts else None
                assert redacted.call.transcript == said, payload
            else:
                assert isinstance(redacted, RetellCallInbound)
                assert redacted.call_inbound.from_number == h(PHONE), payload
            assert PHONE not in orjson.dumps(wire).decode()
        assert payload.to_wire() == sent, payload


# -- rows of each family ------------------------------------------------------------------------


def test_every_event_gets_a_call_events_row_with_record_metadata() -> None:
    envelope = requested()
    event = Event("t.calls", 4, 17, envelope)
    ops = operations_for(event, protect)
    assert isinstance(ops[0], Row) and ops[0].table == "CALL_EVENTS"
    row = ops[0].values
    assert row["EVENT_ID"] == str(envelope.event_id)
    assert (row["TYPE"], row["SCHEMA_VERSION"], row["KEY"]) == ("call.requested", 1, REF)
    assert (row["TOPIC"], row["VERSION"]) == ("t.calls", 17)
    assert row["OCCURRED_AT"] == envelope.occurred_at
    assert row["PAYLOAD"]["to_number"] == h(PHONE)
    meta = row["RECORD_METADATA"]
    assert (meta["topic"], meta["partition"], meta["offset"], meta["key"]) == (
        "t.calls",
        4,
        17,
        REF,
    )
    assert (meta["type"], meta["schema_version"]) == ("call.requested", 1)
    assert set(row) == set(schema.CALL_EVENTS.names)
    orjson.dumps(row)  # JSON-ready


def test_each_family_routes_to_its_table() -> None:
    abt = AbtEvent(abt_id=abt_id_for(REF, "call_started"), name="call_started", call_ref=REF)
    cases = {
        "calls": (requested(), Fold, "CALLS", REF),
        "sessions": (
            env(SessionStarted(session_id="s1", phone=PHONE, call_ref=REF, stage="identity")),
            Fold,
            "SESSIONS",
            "s1",
        ),
        "tasks": (env(TaskDeleted(task_id="t1")), Fold, "TASKS", "t1"),
        "dialog": (
            env(
                DialogTurn(
                    call_ref=REF,
                    call_id=RETELL_ID,
                    session_id="s1",
                    turn_index=2,
                    role="user",
                    text="Tuesday",
                    response_id=3,
                    stage="date",
                    latency_ms=812.5,
                )
            ),
            Row,
            "DIALOG_TURNS",
            None,
        ),
        "abt": (env(abt), Row, "ABT_EVENTS", None),
    }
    for family, (envelope, kind, table, key) in cases.items():
        first, second = operations_for(Event(f"t.{family}", 0, 5, envelope), protect)
        assert isinstance(first, Row) and first.table == "CALL_EVENTS"
        assert isinstance(second, kind) and second.table == table, family
        if isinstance(second, Fold):
            assert (second.key, second.version) == (key, 5)
        else:
            assert set(second.values) == set(schema.BY_NAME[table].names)
            assert second.values["VERSION"] == 5
    said = Event("t.dialog", 0, 5, cases["dialog"][0])
    withheld = operations_for(said, protect)[1]
    assert isinstance(withheld, Row) and withheld.values["TEXT"] is None
    turn = operations_for(said, protect, transcripts=True)[1]
    assert isinstance(turn, Row)
    assert {**turn.values, "OCCURRED_AT": None, "EVENT_ID": None} == {
        "CALL_REF": REF,
        "TURN_INDEX": 2,
        "RETELL_CALL_ID": RETELL_ID,
        "SESSION_ID": "s1",
        "ROLE": "user",
        "TEXT": "Tuesday",
        "RESPONSE_ID": 3,
        "STAGE": "date",
        "LATENCY_MS": 812.5,
        "OCCURRED_AT": None,
        "EVENT_ID": None,
        "VERSION": 5,
    }
    abt_row = operations_for(Event("t.abt", 0, 9, env(abt)), protect)[1]
    assert isinstance(abt_row, Row)
    assert abt_row.values["ABT_ID"] == str(abt_id_for(REF, "call_started"))
    assert (abt_row.values["NAME"], abt_row.values["CALL_REF"]) == ("call_started", REF)


def test_an_inbound_ringing_keyed_by_number_makes_no_calls_row() -> None:
    ringing = RetellCallInbound.from_body(
        {"event": "call_inbound", "call_inbound": {"from_number": PHONE, "to_number": CLINIC}}
    )
    ops = operations_for(Event("t.calls", 0, 0, keyed_by_number(ringing)), protect)
    assert [type(op) for op in ops] == [Row]


# -- CALLS --------------------------------------------------------------------------------------


def happy_path() -> list[Envelope]:
    return [
        requested(),
        dispatched(),
        webhook("call_started"),
        webhook("call_ended"),
        webhook("call_analyzed"),
    ]


def test_calls_row_of_a_completed_call() -> None:
    [row] = folded("CALLS", events(happy_path()))
    assert row["CALL_REF"] == REF
    assert (row["STATUS"], row["CONNECTED"], row["DIRECTION"]) == ("ended", True, "outbound")
    assert (row["FROM_NUMBER_HASH"], row["TO_NUMBER_HASH"]) == (h(CLINIC), h(PHONE))
    assert (row["TASK_REF"], row["PATIENT_REF"]) == ("task-9", "pat-17")
    assert row["RETELL_CALL_ID"] == RETELL_ID
    assert row["REQUESTED_AT"] == T0
    assert row["SCHEDULED_AT"] == T0 + dt.timedelta(hours=1)
    assert row["DISPATCHED_AT"] == T0 + dt.timedelta(minutes=60)
    assert row["STARTED_AT"] == dt.datetime.fromtimestamp(1714608475.945, dt.UTC)
    assert row["ENDED_AT"] == dt.datetime.fromtimestamp(1714608491.736, dt.UTC)
    assert (row["DURATION_MS"], row["DISCONNECTION_REASON"]) == (15791, "user_hangup")
    assert (row["SUMMARY"], row["SENTIMENT"]) == (None, "Positive")  # a summary may name
    assert (row["SUCCESSFUL"], row["COST"], row["DISPATCH_ATTEMPTS"]) == (True, 12.5, 1)
    assert (row["EVENTS"], row["VERSION"]) == (5, 4)
    assert set(row) == set(schema.CALLS.names)
    json.dumps(row["FOLD_STATE"])


def test_calls_row_of_a_dial_failure_and_of_a_failed_dispatch() -> None:
    never = [
        requested(),
        dispatched(),
        webhook("call_ended", call_status="not_connected", disconnection_reason="dial_no_answer"),
    ]
    [row] = folded("CALLS", events(never))
    assert (row["STATUS"], row["CONNECTED"]) == ("not_connected", False)
    assert row["DISCONNECTION_REASON"] == "dial_no_answer"

    failed = [
        requested(),
        env(CallDispatchFailed(call_ref=REF, reason="422 bad number", permanent=True, attempts=1)),
    ]
    [row] = folded("CALLS", events(failed))
    assert (row["STATUS"], row["DISPATCH_ATTEMPTS"], row["LAST_FAILURE"]) == (
        "failed",
        1,
        "422 bad number",
    )
    assert row["RETELL_CALL_ID"] is None and row["STARTED_AT"] is None


def test_duplicate_and_late_webhooks_change_nothing_that_matters() -> None:
    [clean] = folded("CALLS", events(happy_path()))
    noisy = [
        requested(),
        dispatched(),
        webhook("call_ended"),
        webhook("call_started"),  # late: after the end
        webhook("call_ended"),  # Retell retried the delivery
        webhook("call_analyzed"),
        webhook("call_analyzed"),
    ]
    [row] = folded("CALLS", events(noisy))
    ignore = {"EVENTS", "VERSION", "FOLD_STATE"}
    assert {k: v for k, v in row.items() if k not in ignore} == {
        k: v for k, v in clean.items() if k not in ignore
    }
    assert (row["STATUS"], row["CONNECTED"]) == ("ended", True)


def test_folding_in_batches_equals_folding_at_once_and_replays_fold_nothing() -> None:
    evts = events(happy_path())
    [whole] = folded("CALLS", evts)
    [first] = folded("CALLS", evts[:2])
    [rest] = folded("CALLS", evts, {REF: as_stored(first)})  # overlapping: 0-1 skipped
    assert rest == whole
    assert folded("CALLS", evts, {REF: as_stored(whole)}) == []
    assert folded("CALLS", evts[1:3], {REF: as_stored(whole)}) == []


# -- SESSIONS and TASKS -------------------------------------------------------------------------


def session_story() -> list[Envelope]:
    s = {"session_id": "s1", "phone": PHONE}
    return [
        env(SessionStarted(**s, call_ref="in_1", stage="identity"), 0),
        env(SessionProgressed(**s, call_ref="in_1", stage="date", slots={"name": "Ada"}), 1),
        env(
            SessionDropped(
                **s,
                call_ref="in_1",
                stage="date",
                reason="caller_hangup",
                expires_at=T0 + dt.timedelta(days=1),
            ),
            2,
        ),
        env(SessionResumed(**s, call_ref="in_2", stage="date", previous_call_refs=("in_1",)), 10),
        env(
            SessionCompleted(
                **s,
                call_ref="in_2",
                call_refs=("in_1", "in_2"),
                appointment=Appointment(date=dt.date(2024, 10, 8), time="10:30", site="Main St"),
                patient=Patient(name="Ada Lovelace", date_of_birth=dt.date(1815, 12, 10)),
            ),
            12,
        ),
    ]


def test_sessions_row_of_a_dropped_then_resumed_booking() -> None:
    evts = events(session_story(), topic="t.sessions")
    [dropped] = folded("SESSIONS", evts[:3])
    assert (dropped["STATUS"], dropped["STAGE"], dropped["CALLS"]) == ("dropped", "date", 1)
    assert (dropped["RESUMED"], dropped["COMPLETED_AT"]) == (False, None)
    assert dropped["EXPIRES_AT"] == T0 + dt.timedelta(days=1)

    [done] = folded("SESSIONS", evts, {"s1": as_stored(dropped)})
    assert done["PHONE_HASH"] == h(PHONE)
    assert (done["STATUS"], done["CALLS"], done["RESUMED"]) == ("completed", 2, True)
    assert done["CALL_REFS"] == ["in_1", "in_2"]
    assert done["STARTED_AT"] == T0
    assert done["COMPLETED_AT"] == done["UPDATED_AT"] == T0 + dt.timedelta(minutes=12)
    assert done["VERSION"] == 4
    assert done["FOLD_STATE"]["slots"] == {}  # personal details are not kept
    assert folded("SESSIONS", evts) == [done]


def test_a_session_event_before_its_start_makes_no_row() -> None:
    evts = events(session_story()[1:3], topic="t.sessions")
    assert folded("SESSIONS", evts) == []


def test_tasks_fold_merges_fields_and_keeps_a_tombstone() -> None:
    later = T0 + dt.timedelta(days=2)
    story = [
        env(TaskFieldWriteback(task_id="t1", fields={"status": "open", "priority": 2}), 0),
        env(TaskRescheduled(task_id="t1", call_ref=REF, scheduled_at=later), 1),
        env(TaskFieldWriteback(task_id="t1", fields={"status": "done", "note": None}), 2),
        env(TaskIncomingCall(task_id="t1", from_number=PHONE, to_number=CLINIC), 3),
        env(TaskDeleted(task_id="t1", reason="duplicate"), 4),
        env(TaskFieldWriteback(task_id="t1", fields={"status": "zombie"}), 5),
    ]
    evts = events(story, topic="t.tasks")
    [live] = folded("TASKS", evts[:4])
    assert live["FIELDS"] == {"status": "done", "priority": 2, "note": None}
    assert (live["SCHEDULED_AT"], live["CALL_REF"]) == (later, REF)
    assert (live["DELETED"], live["DELETED_AT"]) == (False, None)
    assert live["INCOMING_FROM_HASH"] == h(PHONE)
    assert live["CREATED_AT"] == T0

    [gone] = folded("TASKS", evts, {"t1": as_stored(live)})
    assert (gone["DELETED"], gone["DELETE_REASON"]) == (True, "duplicate")
    assert gone["DELETED_AT"] == T0 + dt.timedelta(minutes=4)
    assert gone["LAST_EVENT_TYPE"] == "task.field_writeback"
    assert gone["FIELDS"]["status"] == "zombie"  # history is kept; the tombstone stays
    assert gone["VERSION"] == 5
    assert folded("TASKS", evts) == [gone]


# -- helpers and SQL ----------------------------------------------------------------------------


def test_latest_by_key_keeps_the_newest_row_per_key() -> None:
    rows = [
        {"K": "a", "I": 1, "VERSION": 3},
        {"K": "b", "I": 1, "VERSION": 1},
        {"K": "a", "I": 2, "VERSION": 2},
        {"K": "a", "I": 1, "VERSION": 7},
    ]
    assert latest_by_key(("K",), rows) == [rows[3], rows[1]]
    assert latest_by_key(("K", "I"), rows) == [rows[3], rows[1], rows[2]]


@pytest.mark.parametrize("table", schema.ALL_TABLES, ids=lambda t: t.name)
def test_generated_sql_names_every_column_and_the_whole_key(table: schema.Table) -> None:
    assert table.version in table.names
    assert set(table.key) <= set(table.names)
    for sql in (schema.create_table_sql(table), schema.create_stage_sql(table)):
        assert all(f'"{name}"' in sql for name in table.names)
    assert schema.stage_sql(table).count("value:") == len(table.columns)
    update, insert = schema.update_sql(table), schema.insert_sql(table)
    assert all(f'T."{k}" = S."{k}"' in update for k in table.key)
    assert f'S."{table.version}" > T."{table.version}"' in update
    assert "WHERE NOT EXISTS" in insert
    merge = schema.merge_sql(table)
    assert merge.startswith(f'MERGE INTO "{table.name}"')
    assert f'WHEN MATCHED AND S."{table.version}" > T."{table.version}"' in merge


def test_earliest_by_key_keeps_the_first_written_row_per_key() -> None:
    rows = [
        {"K": "a", "I": 1, "VERSION": 3},
        {"K": "b", "I": 1, "VERSION": 1},
        {"K": "a", "I": 2, "VERSION": 2},
        {"K": "a", "I": 1, "VERSION": 7},
        {"K": "b", "I": 1, "VERSION": 1},
    ]
    assert earliest_by_key(("K",), rows) == [rows[2], rows[1]]
    assert earliest_by_key(("K", "I"), rows) == [rows[0], rows[1], rows[2]]
