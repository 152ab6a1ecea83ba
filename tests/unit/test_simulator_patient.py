"""The scripted patient and Retell's side of the custom-LLM socket, as pure state machines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ringlog.simulator.dialog import Dialog, Outcome
from ringlog.simulator.patient import REPEAT, YES, Patient, Persona, recognise

CALL = {"call_id": "c" * 32, "call_status": "ongoing", "metadata": {"call_ref": "r1"}}


@pytest.mark.parametrize(
    ("utterance", "answer"),
    [
        ("Can I have your FULL NAME, please?", "My name is Jane Doe"),
        ("What is your date of birth?", "March 3rd, 1980"),
        ("Which day would you like?", "next Tuesday"),
        ("And what time suits you?", "10am"),
        ("Which site do you prefer?", "Main Street Clinic"),
        ("Shall I book that for you?", YES),
        ("Do you like jazz?", REPEAT),
    ],
)
def test_the_patient_answers_each_contract_phrase(utterance: str, answer: str) -> None:
    assert Patient().answer(utterance).text == answer


def test_a_persona_changes_the_answers() -> None:
    persona = Persona(name="Ada Lovelace", preferred_date="Friday", site="Harbour Road")
    patient = Patient(persona)
    assert patient.answer("full name?").text == "My name is Ada Lovelace"
    assert patient.answer("which day?").text == "Friday"
    assert patient.answer("which site?").text == "Harbour Road"


def test_the_question_is_the_phrase_that_comes_last() -> None:
    assert recognise("Thanks, I have your date of birth. Which day suits you?") == "which day"
    assert recognise("Nothing to see here.") is None
    assert Patient().answer("Got your full name. What time?").text == "10am"


def test_the_patient_gives_up_after_three_unrecognised_prompts_in_a_row() -> None:
    patient = Patient()
    assert patient.answer("Hmm?").text == REPEAT
    assert patient.answer("Pardon?").text == REPEAT
    assert patient.answer("Full name?").phrase == "full name"
    assert patient.answer("Hmm?").text == REPEAT
    assert patient.answer("Hmm?").text == REPEAT
    reply = patient.answer("Hmm?")
    assert reply.hangs_up and reply.text is None and patient.hung_up == "gave_up"


def test_a_spoofed_caller_gives_the_wrong_dob_only_on_resume() -> None:
    patient = Patient(Persona(wrong_date_of_birth="January 1st, 1990"))
    assert patient.answer("What is your date of birth?").text == "March 3rd, 1980"
    welcome = patient.answer("Welcome back! What is your date of birth?")
    assert welcome.text == "January 1st, 1990"
    assert patient.answer("Please confirm your date of birth.").text == "January 1st, 1990"
    assert Patient().answer("Welcome back. Confirm your date of birth.").text == "March 3rd, 1980"


def test_the_patient_drops_at_the_chosen_question() -> None:
    patient = Patient(drop_after="Which Day")
    assert patient.answer("Your full name?").text == "My name is Jane Doe"
    reply = patient.answer("Which day would you like?")
    assert reply.hangs_up and reply.phrase == "which day" and patient.hung_up == "dropped"
    assert not patient.booked


def test_booked_once_the_booking_is_agreed() -> None:
    patient = Patient()
    assert not patient.booked
    patient.answer("Shall I book it?")
    assert patient.booked and patient.answered == [("shall i book", YES)]


# the socket's state machine -------------------------------------------------------------------


def frame(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def response(response_id: int, content: str, **extra: Any) -> bytes:
    return frame(
        response_type="response",
        response_id=response_id,
        content=content,
        content_complete=True,
        **extra,
    )


def test_config_with_call_details_is_answered_with_the_call() -> None:
    dialog = Dialog(CALL, Patient())
    out = dialog.receive(frame(response_type="config", config={"call_details": True}))
    assert out == [{"interaction_type": "call_details", "call": CALL}]
    assert Dialog(CALL, Patient()).receive(frame(response_type="config", config={})) == []


def test_chunks_are_joined_and_answered_with_the_whole_transcript() -> None:
    dialog = Dialog(CALL, Patient())
    chunk = {"response_type": "response", "response_id": 0}
    assert dialog.receive(frame(**chunk, content="Hello. ", content_complete=False)) == []
    out = dialog.receive(frame(**chunk, content="Your full name?", content_complete=True))
    transcript = [
        {"role": "agent", "content": "Hello. Your full name?"},
        {"role": "user", "content": "My name is Jane Doe"},
    ]
    assert out == [
        {"interaction_type": "update_only", "transcript": transcript},
        {"interaction_type": "response_required", "response_id": 1, "transcript": transcript},
    ]
    assert dialog.first_agent_words == "Hello. Your full name?"
    assert dialog.receive(response(0, "A stale answer to 0.")) == []
    out = dialog.receive(response(1, "Date of birth?"))
    assert out[-1]["response_id"] == 2 and out[-1]["transcript"][-1]["content"] == "March 3rd, 1980"


def test_end_call_ends_as_agent_hangup_and_reports_the_booking() -> None:
    dialog = Dialog(CALL, Patient())
    dialog.receive(response(0, "Shall I book that?"))
    assert dialog.receive(response(1, "Booked. Bye!", end_call=True)) == []
    assert dialog.outcome == Outcome("agent_hangup", booked=True)
    assert dialog.transcript[-1] == {"role": "agent", "content": "Booked. Bye!"}
    assert dialog.receive(response(2, "Anything?")) == []
    dialog.closed_by_simulator()
    assert dialog.close_code == 1000


def test_the_patient_hanging_up_is_user_hangup() -> None:
    dialog = Dialog(CALL, Patient(drop_after="which day"))
    dialog.receive(response(0, "Which day?"))
    assert dialog.outcome == Outcome("user_hangup") and dialog.transcript[-1]["role"] == "agent"


def test_an_empty_begin_message_lets_the_patient_speak_first() -> None:
    dialog = Dialog(CALL, Patient())
    out = dialog.receive(response(0, ""))
    assert dialog.first_agent_words is None
    assert out[-1]["transcript"] == [{"role": "user", "content": Patient().greeting()}]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1000, "agent_hangup"),
        (1011, "error_llm_websocket_runtime"),
        (1006, "error_llm_websocket_lost_connection"),
    ],
)
def test_a_server_close_ends_the_call_by_its_code(code: int, reason: str) -> None:
    dialog = Dialog(CALL, Patient())
    dialog.closed_by_server(code)
    assert dialog.outcome == Outcome(reason) and dialog.close_code == code


def test_pings_are_counted_and_echoes_accepted() -> None:
    dialog = Dialog(CALL, Patient())
    assert dialog.ping(123) == {"interaction_type": "ping_pong", "timestamp": 123}
    assert dialog.receive(frame(response_type="ping_pong", timestamp=123)) == []
    assert (dialog.pings_sent, dialog.pongs_received) == (1, 1)


def test_a_frame_that_is_not_a_json_object_is_a_corrupt_payload() -> None:
    dialog = Dialog(CALL, Patient())
    assert dialog.receive(b"[1, 2]") == []
    assert dialog.outcome == Outcome("error_llm_websocket_corrupt_payload")


def test_too_many_agent_turns_end_the_call() -> None:
    dialog = Dialog(CALL, Patient(), max_agent_turns=2)
    dialog.receive(response(0, "Full name?"))
    dialog.receive(response(1, "Full name again?"))
    assert dialog.outcome == Outcome("max_duration_reached")
