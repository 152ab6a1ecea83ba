"""What real Retell calls do, through the real socket and webhooks on the embedded stack.

A caller who keeps talking after a request (Retell's documented interruption example), two
requests back to back, a web call, a socket lost and opened again mid-call, and the webhook of
Retell's longest call. The API is served as in ``test_recovery`` (the views it reads kept in
this process); the tests play Retell's side (``tests/support/llm_caller.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from ringlog.config import ApiSettings, Settings
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.retell import RetellCallEnded
from ringlog.schemas.sessions import SessionProgressed
from ringlog.simulator.script import registered_call
from ringlog.simulator.transcripts import MAX_CALL_DURATION_MS, long_call_ended
from tests.integration.test_api_ingest import AUTH, signed
from tests.integration.test_recovery import JANE, Line, line, recovery_settings
from tests.support.llm_caller import Caller
from tests.support.logread import envelopes, eventually, records

pytestmark = pytest.mark.integration


@pytest.fixture(name="api")
async def _api(topics: Settings, unique: str) -> AsyncIterator[Line]:
    async with line(recovery_settings(topics, unique)) as served:
        yield served


async def turns_of(api: Line, caller: Caller) -> list[DialogTurn]:
    """The call's turns on the dialog topic, in log order."""
    found = await envelopes(api.settings.kafka, api.settings.topic("dialog"), ref(caller))
    return [e.payload for e in found if isinstance(e.payload, DialogTurn)]


def ref(caller: Caller) -> str:
    return f"retell:{caller.call_id}"


def said(turns: list[DialogTurn], role: str) -> list[str]:
    return [t.text for t in turns if t.role == role]


@pytest.mark.parametrize("answered_first", [True, False], ids=["reply-sent", "at-once"])
async def test_retells_interruption_example(api: Line, answered_first: bool) -> None:
    """Request 2 "My name is Mike" is not spoken because the caller keeps talking; request 3
    carries "My name is Mike Trump": the date of birth is asked once, the name is the whole
    one, and nothing of request 2 is recorded."""
    caller = api.caller(JANE)
    assert "full name" in (await caller.open()).lower()
    reply = await caller.keep_talking(
        "My name is Mike", "My name is Mike Trump", answered_first=answered_first
    )
    assert reply.text == "Thanks, Mike. What is your date of birth?"
    assert "which day" in (await caller.say("March 3rd, 1980")).text.lower()
    await caller.hang_up()

    session = await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")
    assert session["slots"] == {"name": "Mike Trump", "date_of_birth": "1980-03-03"}
    turns = await turns_of(api, caller)
    assert said(turns, "user") == ["My name is Mike Trump", "March 3rd, 1980"]
    assert sum("date of birth" in text.lower() for text in said(turns, "agent")) == 1
    assert [t.turn_index for t in turns] == list(range(5))
    progressed = [
        e.payload
        for e in await envelopes(api.settings.kafka, api.settings.topic("sessions"), JANE)
        if isinstance(e.payload, SessionProgressed)
    ]
    assert [p.slots.get("name") for p in progressed] == ["Mike Trump", "Mike Trump"]


@pytest.mark.parametrize("answered_first", [True, False], ids=["reply-sent", "at-once"])
async def test_back_to_back_requests_with_the_same_words(api: Line, answered_first: bool) -> None:
    """Two requests both carrying "It's March 3rd, 1980.": the date of birth is recorded once
    and is not read again as the appointment's date."""
    caller = api.caller(JANE)
    await caller.open()
    await caller.say("My name is Jane Doe")
    reply = await caller.twice("It's March 3rd, 1980.", answered_first=answered_first)
    assert reply.text.startswith("Thank you.") and "which day" in reply.text.lower()
    assert "tomorrow" not in reply.text
    assert "what time" in (await caller.say("next Tuesday")).text.lower()
    await caller.hang_up()

    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")
    sessions = await envelopes(api.settings.kafka, api.settings.topic("sessions"), JANE)
    progressed = [e.payload for e in sessions if isinstance(e.payload, SessionProgressed)]
    assert [p.stage for p in progressed] == ["date_of_birth", "date", "time"]
    assert [p.last_user_text for p in progressed].count("It's March 3rd, 1980.") == 1
    assert progressed[-1].slots["date_of_birth"] == "1980-03-03"
    user = said(await turns_of(api, caller), "user")
    assert user == ["My name is Jane Doe", "It's March 3rd, 1980.", "next Tuesday"]


async def test_a_web_call_from_begin_to_end(api: Line) -> None:
    """A web call (no numbers) is booked through to the end: no session, no claim, its turns
    recorded."""
    caller = api.caller("", call_type="web_call")
    assert "full name" in (await caller.open()).lower()
    assert "date of birth" in (await caller.say("My name is Jane Doe")).text.lower()
    assert "which day" in (await caller.say("March 3rd, 1980")).text.lower()
    assert "what time" in (await caller.say("next Tuesday")).text.lower()
    assert "which site" in (await caller.say("10am")).text.lower()
    assert "shall i book" in (await caller.say("Main Street Clinic")).text.lower()
    last = await caller.say("Yes, please.")
    assert last.end_call and "booked" in last.text.lower()
    assert await caller.close_code() == 1000

    turns = await turns_of(api, caller)
    assert len(turns) == 13 and {t.session_id for t in turns} == {None}
    assert said(turns, "user")[-1] == "Yes, please."
    assert await records(api.settings.kafka, api.settings.topic("sessions")) == []
    prefix = api.settings.redis.key_prefix
    assert [k async for k in api.redis.scan_iter(match=f"{prefix}session-claim:*")] == []


@pytest.mark.parametrize("details", [True, False], ids=["details-again", "no-details"])
async def test_a_reconnect_mid_call_continues_the_call(api: Line, details: bool) -> None:
    """The socket is lost at the date and opened again (with or without call_details): no
    second greeting, the same session, and the transcript Retell resends is not recorded
    again."""
    caller = api.caller(JANE)
    await caller.open()
    await caller.say("My name is Jane Doe")
    await caller.say("March 3rd, 1980")
    before = await api.session(JANE)

    assert await caller.reconnect(details=details) == ""
    assert "what time" in (await caller.say("next Tuesday")).text.lower()
    assert "which site" in (await caller.say("10am")).text.lower()
    assert "shall i book" in (await caller.say("Main Street Clinic")).text.lower()
    last = await caller.say("Yes, please.")
    assert last.end_call and "booked" in last.text.lower()

    session = await eventually(lambda: api.session(JANE), lambda s: s["status"] == "completed")
    assert session["session_id"] == before["session_id"]
    assert session["call_refs"] == [ref(caller)]
    turns = await turns_of(api, caller)
    assert [t.turn_index for t in turns] == list(range(13))
    assert said(turns, "user") == [
        "My name is Jane Doe",
        "March 3rd, 1980",
        "next Tuesday",
        "10am",
        "Main Street Clinic",
        "Yes, please.",
    ]
    greetings = [t for t in said(turns, "agent") if "Hello" in t or "Welcome back" in t]
    assert len(greetings) == 1
    types = await api.session_types(JANE)
    assert types.count("session.started") == 1 and types[-1] == "session.completed"


async def test_the_call_ended_of_a_two_hour_call_lands_as_one_record(api: Line) -> None:
    """A signed call_ended of Retell's longest call (2 h, word timings, tool calls: ~1.4 MiB)
    is 204 and one record embedding the body byte for byte; other routes keep a small limit."""
    call = registered_call(
        call_id="Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
        agent_id="agent_test",
        from_number="+14155559876",
        to_number=JANE,
        metadata={"call_ref": "call_two_hours"},
    ) | {"call_status": "ongoing", "start_timestamp": 1714608475945}
    ended = long_call_ended(call)
    body = orjson.dumps({"event": "call_ended", "call": ended})
    assert len(body) > ApiSettings().max_body_bytes
    assert ended["duration_ms"] == MAX_CALL_DURATION_MS

    response = await api.http.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 204, response.text
    (record,) = await records(api.settings.kafka, api.settings.topic("calls"))
    assert b'"payload":' + body + b"}" in record.value
    assert record.envelope is not None and isinstance(record.envelope.payload, RetellCallEnded)
    assert record.envelope.payload.call.call_ref() == "call_two_hours"
    transcript = record.envelope.payload.call.transcript_object
    assert transcript is not None and len(transcript) == len(ended["transcript_object"])

    request = orjson.dumps({"to_number": JANE, "note": "a" * len(body)})
    refused = await api.http.post("/v1/calls", content=request, headers=AUTH)
    assert refused.status_code == 413
