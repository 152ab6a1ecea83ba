"""The simulator's call script: pure planning of call objects and webhook deliveries.

Also the pure pieces of dialog and inbound calls: ended/analysed objects, inbound webhook.
"""

from __future__ import annotations

import re

import orjson
import pytest

from ringlog.schemas.retell import WEBHOOK_EVENTS
from ringlog.simulator import Faults
from ringlog.simulator.dialog import Outcome
from ringlog.simulator.dialog_calls import (
    answered_inbound,
    dialog_analyzed,
    dialog_ended,
    inbound_request,
)
from ringlog.simulator.patient import Persona
from ringlog.simulator.script import (
    Delivery,
    Pacing,
    new_call_id,
    not_connected_plan,
    plan,
    registered_call,
    registered_web_call,
)
from ringlog.simulator.transcripts import MAX_CALL_DURATION_MS, long_call_ended

PACE = Pacing(ring_s=1.0, talk_s=20.0, analysis_s=3.0)
CREATED_MS = 1_714_608_475_000
NORMAL = ["call_started", "call_ended", "call_analyzed"]


def call(**extra: object) -> dict[str, object]:
    return (
        registered_call(
            call_id="c" * 32,
            agent_id="agent_1",
            from_number="+14155559876",
            to_number="+14155550123",
            metadata={"call_ref": "ref_1"},
            dynamic_variables={"patient_name": "Ada"},
        )
        | extra
    )


def events(deliveries: list[Delivery]) -> list[str]:
    return [d.event for d in deliveries]


def test_new_call_ids_are_32_random_alphanumerics() -> None:
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", i) for i in ids)


def test_registered_call_omits_metadata_and_variables_when_not_given() -> None:
    bare = registered_call(call_id="x", agent_id="a", from_number="+1555", to_number="+1666")
    assert bare["call_status"] == "registered" and bare["agent_version"] == 1
    assert "metadata" not in bare and "retell_llm_dynamic_variables" not in bare


def test_normal_plan_follows_the_pacing_and_timestamps_agree() -> None:
    steps = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults())
    assert events(steps) == NORMAL
    assert [d.delay_s for d in steps] == pytest.approx([1.0, 20.0, 3.0])
    started, ended, analyzed = (d.body["call"] for d in steps)
    assert started["start_timestamp"] == CREATED_MS + 1000
    assert ended["end_timestamp"] - ended["start_timestamp"] == ended["duration_ms"] == 20_000
    assert "Ada" in ended["transcript"]
    assert analyzed["call_cost"]["total_duration_seconds"] == 20
    assert {k: v for k, v in analyzed.items() if k not in {"call_analysis", "call_cost"}} == ended
    for d in steps:
        WEBHOOK_EVENTS[d.event].from_body(d.body)


def test_bodies_do_not_share_mutable_state() -> None:
    steps = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(duplicate=True))
    steps[0].body["call"]["metadata"]["call_ref"] = "changed"
    assert steps[1].body["call"]["metadata"]["call_ref"] == "ref_1"


def test_delay_analyzed_adds_to_the_last_wait() -> None:
    steps = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(delay_analyzed_s=7))
    assert steps[-1].delay_s == pytest.approx(10.0)


def test_duplicate_and_reorder_combine() -> None:
    faults = Faults(duplicate=True, reorder=True)
    steps = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=faults)
    assert events(steps) == [e for e in reversed(NORMAL) for _ in range(2)]
    assert [d.delay_s for d in steps] == pytest.approx([24.0, 0, 0, 0, 0, 0])


def test_dial_failure_has_no_start_and_no_custom_analysis() -> None:
    steps = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(dial_failure=True))
    assert events(steps) == ["call_ended", "call_analyzed"]
    ended, analyzed = (d.body["call"] for d in steps)
    assert ended["call_status"] == "not_connected"
    assert ended["disconnection_reason"] == "dial_failed"
    assert "start_timestamp" not in ended and "transcript" not in ended
    assert analyzed["call_analysis"]["call_successful"] is False
    assert "custom_analysis_data" not in analyzed["call_analysis"]


def test_drop_mid_dialog_is_a_short_user_hangup() -> None:
    normal = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults())
    dropped = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(drop_mid_dialog=True))
    assert events(dropped) == NORMAL
    ended = dropped[1].body["call"]
    assert ended["disconnection_reason"] == "user_hangup"
    assert ended["duration_ms"] == 10_000
    assert len(ended["transcript_object"]) < len(normal[1].body["call"]["transcript_object"])
    assert dropped[2].body["call"]["call_analysis"]["call_successful"] is False


def test_faults_are_frozen_and_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        Faults.model_validate({"chaos": True})
    with pytest.raises(ValueError, match="greater than or equal"):
        Faults(rate_limit_first=-1)


def test_drop_after_phrase_also_drops_the_timed_script_and_names_the_dialog_question() -> None:
    dropped = plan(
        call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(drop_after_phrase="What Time")
    )
    assert dropped[1].body["call"]["disconnection_reason"] == "user_hangup"
    assert Faults(drop_after_phrase="What Time").drop_phrase() == "what time"
    assert Faults(drop_mid_dialog=True).drop_phrase() == "which day"
    assert Faults().drop_phrase() is None


def test_a_dialog_call_ends_and_is_analysed_from_its_transcript() -> None:
    started = call(call_status="ongoing", start_timestamp=CREATED_MS)
    transcript = [
        {"role": "agent", "content": "Shall I book it?"},
        {"role": "user", "content": "Yes, please."},
        {"role": "agent", "content": "Done."},
    ]
    booked = Outcome("agent_hangup", booked=True)
    ended = dialog_ended(started, outcome=booked, transcript=transcript, end_ms=CREATED_MS + 61_000)
    assert ended["duration_ms"] == 61_000 and ended["end_timestamp"] == CREATED_MS + 61_000
    assert ended["transcript"] == "Agent: Shall I book it?\nUser: Yes, please.\nAgent: Done.\n"
    assert [u["metadata"]["response_id"] for u in ended["transcript_object"][::2]] == [0, 1]
    analyzed = dialog_analyzed(ended, outcome=booked, persona=Persona())
    assert analyzed["call_analysis"]["call_successful"] is True
    assert analyzed["call_cost"]["total_duration_seconds"] == 61
    WEBHOOK_EVENTS["call_ended"].from_body({"event": "call_ended", "call": ended})
    WEBHOOK_EVENTS["call_analyzed"].from_body({"event": "call_analyzed", "call": analyzed})
    failed = dialog_analyzed(ended, outcome=Outcome("user_hangup"), persona=Persona())
    assert failed["call_analysis"]["custom_analysis_data"]["appointment_booked"] is False
    assert "user_hangup" in failed["call_analysis"]["call_summary"]


def test_the_inbound_webhook_asks_with_the_call_and_its_answer_fills_it_in() -> None:
    ringing = registered_call(
        call_id="i" * 32,
        agent_id="agent_1",
        from_number="+14155550001",
        to_number="+14155550123",
        direction="inbound",
    )
    assert inbound_request(ringing)["call_inbound"] == {
        "from_number": "+14155550001",
        "to_number": "+14155550123",
        "agent_id": "agent_1",
        "call_id": "i" * 32,
    }
    answer = {
        "call_inbound": {
            "metadata": {"call_ref": "in_1"},
            "dynamic_variables": {"patient_name": "Jo", "visits": 3},
            "override_agent_id": "agent_2",
        }
    }
    answered = answered_inbound(ringing, answer)
    assert answered["metadata"] == {"call_ref": "in_1"}
    assert answered["retell_llm_dynamic_variables"] == {"patient_name": "Jo", "visits": "3"}
    assert (answered["agent_id"], answered["direction"]) == ("agent_2", "inbound")
    assert answered_inbound(ringing, {}) == ringing
    assert answered_inbound(ringing, {"call_inbound": {"metadata": "nope"}}) == ringing


def test_an_unconnected_call_has_the_given_reason() -> None:
    steps = not_connected_plan(
        call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(), reason="error_inbound_webhook"
    )
    assert events(steps) == ["call_ended", "call_analyzed"]
    assert steps[0].body["call"]["disconnection_reason"] == "error_inbound_webhook"


def test_a_two_hour_call_ended_has_word_timings_over_the_whole_call_and_tool_calls() -> None:
    """Retell's longest call: ~12,000 words, timings up to 2 h, a tool call every 20 turns,
    about 1.4 MiB of compact JSON, the same every time."""
    started = call(call_status="ongoing", start_timestamp=CREATED_MS)
    said = [("agent", "Hello Ada."), ("user", "Hi.")]
    ended = long_call_ended(started, said=said, reason="agent_hangup")
    assert ended == long_call_ended(started, said=said, reason="agent_hangup")
    assert ended["duration_ms"] == MAX_CALL_DURATION_MS
    assert ended["end_timestamp"] == CREATED_MS + MAX_CALL_DURATION_MS
    assert ended["disconnection_reason"] == "agent_hangup"
    utterances = ended["transcript_object"]
    assert [(u["role"], u["content"]) for u in utterances[:2]] == said
    words = [w for u in utterances for w in u["words"]]
    assert 12_000 <= len(words) < 12_100
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and 7_100 < words[-1]["end"] <= 7_200
    tools = [e for e in ended["transcript_with_tool_calls"] if e["role"].startswith("tool_call")]
    assert len(tools) == 2 * (len(utterances) // 20)
    assert [e for e in ended["transcript_with_tool_calls"] if "words" in e] == utterances
    size = len(orjson.dumps({"event": "call_ended", "call": ended}))
    assert 1_200_000 < size < 1_600_000
    WEBHOOK_EVENTS["call_ended"].from_body({"event": "call_ended", "call": ended})


def test_the_two_hours_fault_lengthens_timed_and_dialog_calls() -> None:
    timed = plan(call(), created_ms=CREATED_MS, pacing=PACE, faults=Faults(two_hours=True))
    ended, analyzed = timed[1].body["call"], timed[2].body["call"]
    assert ended["duration_ms"] == MAX_CALL_DURATION_MS
    assert ended["disconnection_reason"] == "agent_hangup"
    assert analyzed["call_cost"]["total_duration_seconds"] == 7200
    started = call(call_status="ongoing", start_timestamp=CREATED_MS)
    transcript = [{"role": "agent", "content": "Hello."}, {"role": "user", "content": "Hi."}]
    dialog = dialog_ended(
        started,
        outcome=Outcome("user_hangup"),
        transcript=transcript,
        end_ms=CREATED_MS + 1,
        two_hours=True,
    )
    assert dialog["duration_ms"] == MAX_CALL_DURATION_MS
    assert dialog["disconnection_reason"] == "user_hangup"
    assert dialog["transcript"].startswith("Agent: Hello.\nUser: Hi.\n")


def test_a_web_call_has_an_access_token_and_no_numbers() -> None:
    web = registered_web_call(call_id="w" * 32, agent_id="agent_1")
    assert web["call_type"] == "web_call" and web["access_token"].startswith("eyJ")
    assert not {"from_number", "to_number", "direction", "metadata"} & set(web)
    with_ref = registered_web_call(call_id="w" * 32, agent_id="a", metadata={"call_ref": "r"})
    assert with_ref["metadata"] == {"call_ref": "r"}


def test_the_situations_on_the_socket_are_named_by_their_question() -> None:
    faults = Faults(keep_talking_at="Full Name", twice_at="date of birth")
    assert faults.phrase("keep_talking_at") == "full name"
    assert faults.phrase("twice_at") == "date of birth"
    assert faults.phrase("reconnect_at") is None and faults.reconnect_details is True
