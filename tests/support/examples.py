"""One realistic instance of every registered event model, for round-trip tests."""

from __future__ import annotations

import datetime as dt

from ringlog.schemas import (
    AbtEvent,
    Appointment,
    CallCancelled,
    CallDispatched,
    CallDispatchFailed,
    CallRecorded,
    CallRequested,
    CallRescheduled,
    DialogTurn,
    EventModel,
    Patient,
    RetellCallInbound,
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
    abt_id_for,
)
from ringlog.schemas.retell import WEBHOOK_EVENTS

PHONE = "+14155550123"
CLINIC = "+14155559876"
REF = "call_01HZX3"
RETELL_ID = "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6"


def retell_call(event: str) -> dict[str, object]:
    """A Retell call object as a webhook of ``event`` would carry it (with an unknown field)."""
    call: dict[str, object] = {
        "call_type": "phone_call",
        "from_number": CLINIC,
        "to_number": PHONE,
        "direction": "outbound",
        "call_id": RETELL_ID,
        "agent_id": "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
        "agent_version": 3,
        "call_status": "ongoing" if event == "call_started" else "ended",
        "metadata": {"call_ref": REF},
        "retell_llm_dynamic_variables": {"patient_name": "Ada Lovelace"},
        "start_timestamp": 1714608475945,
        "opt_out_sensitive_data_storage": False,  # legacy field Retell still sends
    }
    if event != "call_started":
        call |= {
            "end_timestamp": 1714608491736,
            "duration_ms": 15791,
            "disconnection_reason": "user_hangup",
            "transcript": "Agent: Hello!\nUser: Hi, I'd like a flu shot.",
            "transcript_object": [
                {
                    "role": "agent",
                    "content": "Hello!",
                    "words": [{"word": "Hello!", "start": 0.31, "end": 0.74}],
                    "metadata": {"response_id": 0},
                },
                {
                    "role": "user",
                    "content": "Hi, I'd like a flu shot.",
                    "words": [
                        {"word": "Hi,", "start": 1.52, "end": 1.7},
                        {"word": "I'd", "start": 1.74, "end": 1.9},
                        {"word": "like", "start": 1.92, "end": 2.1},
                        {"word": "a", "start": 2.12, "end": 2.16},
                        {"word": "flu", "start": 2.2, "end": 2.41},
                        {"word": "shot.", "start": 2.44, "end": 2.83},
                    ],
                },
            ],
            "latency": {"e2e": {"p50": 812.0, "p90": 1104.0, "num": 2, "values": [640, 1290]}},
        }
    if event.startswith("transfer_"):
        call["transfer_destination"] = "+14155550100"
    if event == "call_analyzed":
        call["call_analysis"] = {
            "call_summary": "Patient booked a flu shot.",
            "user_sentiment": "Positive",
            "call_successful": True,
            "in_voicemail": False,
            "custom_analysis_data": {"booked": True},
        }
        call["call_cost"] = {"combined_cost": 12.5, "total_duration_seconds": 16}
    return call


def example_events() -> list[EventModel]:
    """At least one instance of every current model in the registry."""
    when = dt.datetime(2026, 11, 24, 15, 30, tzinfo=dt.UTC)
    webhooks = [
        model.from_body(
            {"event": name, "call": retell_call(name)}
            | ({"transfer_option": {"type": "cold"}} if name == "transfer_started" else {})
        )
        for name, model in WEBHOOK_EVENTS.items()
    ]
    return [
        CallRequested(
            call_ref=REF,
            to_number=PHONE,
            from_number=CLINIC,
            agent_id="agent_flu",
            scheduled_at=when,
            patient_ref="pat-17",
            task_ref="task-9",
            metadata={"campaign": "flu-2026"},
            idempotency_key="engage-123",
        ),
        CallDispatched(call_ref=REF, retell_call_id=RETELL_ID, agent_id="agent_flu", attempt=2),
        CallDispatchFailed(
            call_ref=REF, reason="429 after 5 attempts", permanent=False, attempts=5
        ),
        CallCancelled(call_ref=REF, reason="task deleted", task_ref="task-9"),
        CallRecorded(call_ref=REF, retell_call_id=RETELL_ID, store="call_records"),
        CallRescheduled(
            call_ref=REF,
            scheduled_at=dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC),
            task_ref="task-9",
            cause_event_id="01a2",
        ),
        *webhooks,
        RetellCallInbound.from_body(
            {
                "event": "call_inbound",
                "call_inbound": {"from_number": PHONE, "to_number": CLINIC, "agent_id": "a1"},
            }
        ),
        RetellCallInbound.from_body(
            {
                "event": "call_inbound",
                "call_inbound": {
                    "agent_id": "agent_12345",
                    "agent_version": 1,
                    "from_number": PHONE,
                    "to_number": CLINIC,
                    "call_id": "call_8f3a1c0d2b",
                },
            }
        ),
        DialogTurn(
            call_ref=REF,
            call_id=RETELL_ID,
            session_id="sess-1",
            turn_index=3,
            role="user",
            text="Next Tuesday, please.",
            response_id=2,
            stage="date",
            latency_ms=41.5,
        ),
        SessionStarted(session_id="sess-1", phone=PHONE, call_ref=REF, stage="identify"),
        SessionProgressed(
            session_id="sess-1",
            phone=PHONE,
            call_ref=REF,
            stage="date",
            slots={"name": "Ada Lovelace", "date_of_birth": "1985-12-10"},
            last_user_text="Ada Lovelace, tenth of December 1985",
            last_agent_text="What date would you prefer?",
        ),
        SessionDropped(
            session_id="sess-1",
            phone=PHONE,
            call_ref=REF,
            stage="date",
            reason="call_ended",
            expires_at=when,
        ),
        SessionResumed(
            session_id="sess-1",
            phone=PHONE,
            call_ref="call_02",
            stage="date",
            previous_call_refs=(REF,),
        ),
        SessionIdentityFailed(session_id="sess-1", phone=PHONE, call_ref="call_03", fact="dob"),
        SessionCompleted(
            session_id="sess-1",
            phone=PHONE,
            call_ref="call_02",
            call_refs=(REF, "call_02"),
            appointment=Appointment(date=dt.date(2026, 12, 1), time="10:30", site="Main St"),
            patient=Patient(name="Ada Lovelace", date_of_birth=dt.date(1985, 12, 10)),
        ),
        SessionExpired(session_id="sess-2", phone=PHONE),
        AbtEvent(
            abt_id=abt_id_for(REF, "call_completed"),
            name="call_completed",
            call_ref=REF,
            retell_call_id=RETELL_ID,
            attributes={"disconnection_reason": "user_hangup"},
        ),
        TaskFieldWriteback(task_id="task-9", fields={"status": "done", "attempts": 2}, actor="u1"),
        TaskRescheduled(task_id="task-9", call_ref=REF, scheduled_at=when, actor="u1"),
        TaskDeleted(task_id="task-9", reason="duplicate", actor="u1"),
        TaskIncomingCall(task_id="task-10", from_number=PHONE, to_number=CLINIC, notes="callback"),
    ]
