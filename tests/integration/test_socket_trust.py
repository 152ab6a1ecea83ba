"""Only calls a trusted source announced reach the dialog, and sockets and claims are bounded.

Against the real API on the embedded stack, served as in ``test_recovery`` (the read views kept
in this process) with a stand-in for Retell's get-call (``tests/support/retell_double.py``);
the tests play Retell's side of the socket (``tests/support/llm_caller.py``) or an attacker's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ringlog.config import Settings
from ringlog.schemas.sessions import SessionIdentityFailed, SessionStarted
from tests.integration.test_api_ingest import signed
from tests.integration.test_recovery import (
    JANE,
    JOHN,
    Line,
    _served,
    book_until_the_date,
    line,
    recovery_settings,
)
from tests.support.logread import envelopes, eventually, records

pytestmark = pytest.mark.integration

MALLORY = "+14155550166"


@pytest.fixture(name="api")
async def _api(topics: Settings, unique: str) -> AsyncIterator[Line]:
    async with line(recovery_settings(topics, unique)) as served:
        yield served


async def claims(api: Line) -> list[bytes]:
    """The numbers' claim keys in Redis."""
    prefix = api.settings.redis.key_prefix
    return [k async for k in api.redis.scan_iter(match=f"{prefix}session-claim:*")]


async def refused(api: Line, call_id: str) -> int | None:
    """Open the socket for ``call_id`` as an attacker would (sending ``call_details`` that
    claim JANE's number); the close code, after asserting that nothing was sent."""
    url = api.url.replace("http://", "ws://") + f"/v1/llm/{call_id}"
    async with connect(url) as socket:
        details = {"call_id": call_id, "direction": "inbound", "from_number": JANE}
        with pytest.raises(ConnectionClosed):
            await socket.send(orjson.dumps({"interaction_type": "call_details", "call": details}))
            frame = await socket.recv()
            pytest.fail(f"the server sent {frame!r}")
        return socket.close_code


async def nothing_written(api: Line) -> None:
    for topic in ("calls", "dialog", "sessions"):
        assert await records(api.settings.kafka, api.settings.topic(topic)) == [], topic
    assert await claims(api) == []


# -- 1. only calls ringlog knows are served -----------------------------------------------------


async def test_a_forged_socket_is_closed_1008_with_nothing_spoken_appended_or_claimed(
    api: Line,
) -> None:
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    assert await refused(api, call_id) == 1008
    assert api.retell.lookups[call_id] == 1  # Retell's get-call was asked, and knew no such call
    await nothing_written(api)


async def test_a_call_retell_says_is_over_is_refused(api: Line) -> None:
    caller = api.caller(JANE, direction="outbound")
    api.retell.add(caller.call_object() | {"call_status": "ended"})
    assert await refused(api, caller.call_id) == 1008
    await nothing_written(api)


async def test_a_call_announced_for_one_number_serves_that_numbers_session_only(
    api: Line,
) -> None:
    """JANE dropped at the date, JOHN at the time. A call Retell announced from JANE whose
    ``call_details`` claim JOHN's number resumes JANE's session; JOHN's is untouched."""
    jane = api.caller(JANE)
    await book_until_the_date(jane)
    await jane.hang_up()
    john = api.caller(JOHN)
    await book_until_the_date(john)
    await john.say("next Tuesday")
    await john.hang_up()
    johns_before = await api.session_types(JOHN)

    forged = api.caller(JANE)
    await forged.announce()  # Retell's signed inbound webhook: the call is from JANE
    forged.phone = JOHN  # ... but its call_details claim JOHN
    first = await forged.open()
    assert "we were at selecting a date" in first.lower()
    assert "choosing a time" not in first.lower()
    await forged.hang_up()
    await eventually(lambda: api.session_types(JANE), lambda t: "session.resumed" in t)
    assert await api.session_types(JOHN) == johns_before


async def test_an_outbound_call_is_known_from_retells_get_call(api: Line) -> None:
    """A call no webhook announced (placed elsewhere, or before the worker announced it) is
    served once Retell's get-call describes it; it is kept for the call's next socket."""
    caller = api.caller(JANE, direction="outbound")
    assert "full name" in (await caller.open()).lower()
    assert "date of birth" in (await caller.say("My name is Jane Doe")).text.lower()
    assert await caller.reconnect() == ""
    assert "which day" in (await caller.say("March 3rd, 1980")).text.lower()
    await caller.hang_up()
    assert api.retell.lookups[caller.call_id] == 1
    prefix = api.settings.redis.key_prefix
    assert await api.redis.exists(f"{prefix}known-call:{caller.call_id}")


# -- 2. nothing personal before identity ---------------------------------------------------------


async def drop_after_the_name(api: Line) -> None:
    """JANE gives her name, then the call drops before her date of birth (its drop cached)."""
    caller = api.caller(JANE)
    await caller.open()
    assert "date of birth" in (await caller.say("My name is Jane Doe")).text.lower()
    await caller.hang_up()
    key = f"{api.settings.redis.key_prefix}session:{JANE}"
    await eventually(lambda: api.redis.get(key), lambda raw: bool(raw) and b'"dropped"' in raw)


async def test_without_a_birth_date_on_file_nothing_is_read_back_before_the_name(
    api: Line,
) -> None:
    """A caller with JANE's number (caller ID can be spoofed) is asked for the name on file,
    gets nothing personal, and a wrong name starts a fresh booking: JANE's session is closed
    unchanged and never completed."""
    await drop_after_the_name(api)
    before = await api.session(JANE)
    mallory = api.caller(JANE)
    first = await mallory.open()
    assert first.endswith("Before we go on, please tell me your full name.")
    heard = [first]
    heard.append((await mallory.say("It's March 3rd, 1980")).text)
    assert "full name" in heard[-1].lower()  # unclear: asked again, nothing revealed
    heard.append((await mallory.say("My name is Mallory Smith")).text)
    assert "start a new booking" in heard[-1].lower()
    booking = ("Mallory Smith", "March 4th, 1990", "next Tuesday", "10am", "Main Street Clinic")
    for answer in booking:
        heard.append((await mallory.say(answer)).text)
    assert "shall i book" in heard[-1].lower()
    assert not any("Jane" in text or "Doe" in text for text in heard), heard

    found = await envelopes(api.settings.kafka, api.settings.topic("sessions"), JANE)
    failed = [e.payload for e in found if isinstance(e.payload, SessionIdentityFailed)]
    assert [(f.session_id, f.fact) for f in failed] == [(before["session_id"], "name")]
    fresh = [e.payload for e in found if isinstance(e.payload, SessionStarted)]
    assert fresh[-1].session_id != before["session_id"]
    old = [e.type for e in found if e.payload.session_id == before["session_id"]]
    assert old == [
        "session.started",
        "session.progressed",  # JANE's name: nothing of Mallory's reached her session
        "session.dropped",
        "session.resumed",
        "session.identity_failed",
    ]
    await mallory.hang_up()


async def test_the_right_name_goes_on_where_the_booking_stood(api: Line) -> None:
    await drop_after_the_name(api)
    caller = api.caller(JANE)
    assert (await caller.open()).endswith("please tell me your full name.")
    assert (await caller.say("jane doe")).text == "Thank you, Jane. What is your date of birth?"
    assert "which day" in (await caller.say("March 3rd, 1980")).text.lower()
    await caller.hang_up()


# -- 3. claims and sockets are bounded -----------------------------------------------------------


async def test_a_failed_start_releases_the_claim(api: Line) -> None:
    """JANE's cached session is unreadable for the dialog (a stage it does not know): the
    start fails after the number was claimed, and the claim is given back."""
    await drop_after_the_name(api)
    caller = api.caller(JANE)
    await caller.announce()
    key = f"{api.settings.redis.key_prefix}session:{JANE}"
    cached = orjson.loads(await api.redis.get(key))
    await api.redis.set(key, orjson.dumps(cached | {"stage": "no_such_stage"}))

    with pytest.raises(ConnectionClosed):
        await caller.open()
    assert caller.socket.close_code == 1011
    assert await claims(api) == []


async def test_a_withheld_number_gets_a_dialog_without_a_session(api: Line) -> None:
    caller = api.caller("anonymous")
    assert "full name" in (await caller.open()).lower()
    assert "date of birth" in (await caller.say("My name is Jane Doe")).text.lower()
    await caller.hang_up()
    assert await records(api.settings.kafka, api.settings.topic("sessions")) == []
    assert await claims(api) == []


async def test_a_new_caller_is_served_while_the_sessions_view_is_unreachable(
    topics: Settings, unique: str
) -> None:
    """The views' database down and the number not in Redis (which holds every open session):
    the miss stands, so the inbound webhook answers 200 without resume context and the dialog
    opens a new session, instead of a 503 and a closed socket."""
    settings = recovery_settings(topics, unique)
    down = settings.crm.model_copy(
        update={"url": "postgresql+psycopg://ringlog:s3cret@127.0.0.1:1/views"}
    )
    async with _served(settings.model_copy(update={"crm": down})) as api:
        caller = api.caller(JOHN)
        assert "full name" in (await caller.open()).lower()
        assert "session_id" not in caller.metadata, "no resume context without the view"
        assert "date of birth" in (await caller.say("My name is John Smith")).text.lower()
        await caller.hang_up()
        assert await eventually(lambda: api.session_types(JOHN), lambda t: len(t) >= 2)
        assert (await api.session_types(JOHN))[0] == SessionStarted.event_type


async def test_an_oversized_frame_closes_the_socket_and_frees_the_number(api: Line) -> None:
    caller = api.caller(JANE)
    await caller.open()
    assert await claims(api) != []
    await caller.send_raw("x" * (api.settings.dialog.max_frame_bytes + 1))
    assert await caller.close_code() == 1009
    await eventually(lambda: claims(api), lambda found: found == [])


async def test_a_silent_socket_is_closed_and_frees_the_number(
    topics: Settings, unique: str
) -> None:
    async with line(recovery_settings(topics, unique, idle_timeout_s=0.5)) as api:
        caller = api.caller(JANE)
        await caller.open()
        assert await caller.close_code() == 1000
        # the claim is released as the server's handler unwinds, just after the close
        assert await eventually(lambda: claims(api), lambda held: held == []) == []
        await eventually(lambda: api.session_types(JANE), lambda t: "session.dropped" in t)


async def test_sockets_per_address_are_capped(topics: Settings, unique: str) -> None:
    async with line(recovery_settings(topics, unique, max_sockets_per_address=2)) as api:
        first, second = api.caller(JANE), api.caller(JOHN)
        await first.open()
        await second.open()
        third = api.caller(MALLORY)
        await third.announce()
        assert await refused(api, third.call_id) == 1013
        await first.hang_up()

        async def admitted() -> str | None:
            try:
                return await third.open()
            except ConnectionClosed:
                return None

        assert "full name" in str(await eventually(admitted, lambda said: said is not None))
        for caller in (second, third):
            await caller.hang_up()


async def test_call_ended_frees_a_number_its_call_still_holds(api: Line) -> None:
    """The process serving the call died holding the claim: Retell's signed call_ended
    releases it; another call's claim is left alone."""
    prefix = api.settings.redis.key_prefix
    await api.redis.set(f"{prefix}session-claim:{JANE}", "retell:call_lost", ex=60)
    await api.redis.set(f"{prefix}session-claim:{JOHN}", "retell:call_other", ex=60)
    call = {
        "call_id": "call_lost",
        "call_type": "phone_call",
        "call_status": "ended",
        "direction": "inbound",
        "agent_id": "agent_test",
        "from_number": JANE,
        "to_number": "+14155559876",
    }
    body = orjson.dumps({"event": "call_ended", "call": call})
    answer = await api.http.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert answer.status_code == 204, answer.text
    assert await claims(api) == [f"{prefix}session-claim:{JOHN}".encode()]
