"""The local Retell playing a scripted patient through a custom-LLM socket, out- and inbound.

The simulator runs in-process (ASGI transport); its WebSocket client and webhooks go over real
sockets to :class:`~tests.support.llm_double.LlmDouble` served by uvicorn in a thread, which
asks the contract questions, verifies every signature and answers the inbound webhook. Tests
wait on conditions (``GET /sim/calls/{id}`` until the call is no longer playing), never on
fixed sleeps; these involve no Kafka.

The last tests play real calls' situations (a caller who keeps talking, requests back to back,
a lost socket, a web call, a 2-hour call) against ringlog itself, served as in
``test_recovery`` on the embedded stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from ringlog.api.signature import Verdict
from ringlog.config import RetellSettings, Settings, SimulatorSettings
from ringlog.devstack.ports import free_port
from ringlog.schemas.dialog import DialogTurn
from ringlog.schemas.retell import RetellCallAnalyzed, RetellCallEnded, RetellCallStarted
from ringlog.simulator import Faults, create_simulator
from ringlog.simulator.transcripts import MAX_CALL_DURATION_MS
from tests.integration.test_api_ingest import RETELL_KEY
from tests.integration.test_recovery import Line, line, recovery_settings
from tests.support.llm_double import GOODBYE, QUESTIONS, LlmDouble
from tests.support.logread import envelopes, eventually
from tests.support.servers import serving

pytestmark = pytest.mark.integration

KEY = "key_retell_dialog_test"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALL = {
    "from_number": "+14155559876",
    "to_number": "+14155550123",
    "metadata": {"call_ref": "call_dialog_1"},
}
NORMAL = ["call_started", "call_ended", "call_analyzed"]
JANE = ["My name is Jane Doe", "March 3rd, 1980", "next Tuesday", "10am", "Main Street Clinic"]
INBOUND_ANSWER = {
    "call_inbound": {
        "metadata": {"call_ref": "inbound_ref_1", "clinic": "riverside"},
        "dynamic_variables": {"patient_name": "John Smith"},
    }
}


@contextlib.contextmanager
def double_at(**options: Any) -> Iterator[tuple[LlmDouble, str]]:
    """An :class:`LlmDouble` served on a free port, with its base URL."""
    double = LlmDouble(KEY, **options)
    with serving(double.app) as url:
        yield double, url


@pytest.fixture(name="double")
def _double() -> Iterator[tuple[LlmDouble, str]]:
    with double_at(inbound_answer=INBOUND_ANSWER) as served:
        yield served


def simulator_settings(
    base_url: str,
    *,
    llm_url: str | None = None,
    webhook_url: str | None = None,
    key: str = KEY,
) -> Settings:
    """The simulator's settings: webhooks to ``{base_url}/hook`` (or ``webhook_url``), the
    socket at ``…/llm`` (or ``llm_url``), quick rings and analyses."""
    ws_base = "ws" + base_url.removeprefix("http")
    return Settings(
        retell=RetellSettings(api_key=key),
        simulator=SimulatorSettings(
            webhook_url=webhook_url or f"{base_url}/hook",
            llm_websocket_url=llm_url if llm_url is not None else f"{ws_base}/llm",
            ring_s=0.02,
            analysis_s=0.03,
        ),
    )


@contextlib.asynccontextmanager
async def simulator(
    base_url: str,
    *,
    llm_url: str | None = None,
    faults: Faults | None = None,
    webhook_url: str | None = None,
    key: str = KEY,
) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator, started, posting to ``{base_url}/hook`` (or ``webhook_url``) and talking
    to ``…/llm`` (or ``llm_url``)."""
    app = create_simulator(
        simulator_settings(base_url, llm_url=llm_url, webhook_url=webhook_url, key=key), faults
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://retell") as client:
            yield client


async def finished(client: httpx.AsyncClient, call_id: str, timeout_s: float = 15.0) -> Any:
    """Poll ``GET /sim/calls/{call_id}`` until the call is no longer playing; its entry."""
    deadline = time.monotonic() + timeout_s
    while True:
        entry = (await client.get(f"/sim/calls/{call_id}")).json()
        if entry["status"] != "playing":
            return entry
        assert time.monotonic() < deadline, f"call still playing: {entry}"
        await asyncio.sleep(0.02)


async def outbound(client: httpx.AsyncClient, faults: Faults | None = None) -> str:
    """Create one outbound call (under ``faults`` if given); its id."""
    if faults is not None:
        assert (await client.put("/sim/faults", json=faults.model_dump())).status_code == 200
    response = await client.post("/v2/create-phone-call", json=CALL, headers=AUTH)
    assert response.status_code == 201, response.text
    call_id: str = response.json()["call_id"]
    return call_id


def said(transcript: list[dict[str, str]], role: str) -> list[str]:
    return [entry["content"] for entry in transcript if entry["role"] == role]


async def test_an_outbound_call_plays_the_whole_dialog(double: tuple[LlmDouble, str]) -> None:
    """Six questions answered in order, end_call, 1000; the webhooks carry the dialog."""
    dbl, url = double
    async with simulator(url) as client:
        call_id = await outbound(client)
        entry = await finished(client, call_id)
        assert (await client.get("/sim/calls")).json()["calls"] == [entry]
    assert entry["call_type"] == "phone_call" and entry["reconnects"] == 0
    assert entry["requests"] == [[i, words] for i, words in enumerate([*JANE, "Yes, please."], 1)]

    begin = f"Hello there, this is Riverside Family Clinic. {QUESTIONS[0]}"
    assert entry["status"] == "done" and entry["direction"] == "outbound"
    assert entry["disconnection_reason"] == "agent_hangup"
    assert entry["ws_close_code"] == 1000
    assert entry["first_agent_words"] == begin
    assert entry["inbound_answer"] is None
    transcript = entry["transcript"]
    assert said(transcript, "agent") == [begin, *QUESTIONS[1:], GOODBYE]
    assert said(transcript, "user") == [*JANE, "Yes, please."]
    assert [e["role"] for e in transcript] == ["agent", "user"] * 6 + ["agent"]

    session = dbl.sessions[call_id]
    assert session.close_code == 1000
    (details,) = session.of("call_details")
    assert details["call"]["call_id"] == call_id
    assert details["call"]["metadata"] == CALL["metadata"]
    required = session.of("response_required")
    assert [f["response_id"] for f in required] == [1, 2, 3, 4, 5, 6]
    assert required[-1]["transcript"] == transcript[:-1]
    assert len(session.of("update_only")) == 6

    got = dbl.for_call(call_id)
    assert [d.event for d in got] == NORMAL
    assert all(d.verdict is Verdict.OK for d in got)
    started, ended, analyzed = (
        model.from_body(orjson.loads(d.raw))
        for model, d in zip(
            (RetellCallStarted, RetellCallEnded, RetellCallAnalyzed), got, strict=True
        )
    )
    assert started.call.call_status == "ongoing" and started.call.call_ref() == "call_dialog_1"
    assert ended.call.disconnection_reason == "agent_hangup"
    assert ended.call.transcript_object is not None
    assert [(u.role, u.content) for u in ended.call.transcript_object] == [
        (e["role"], e["content"]) for e in transcript
    ]
    assert ended.call.transcript and ended.call.transcript.startswith(f"Agent: {begin}\nUser: ")
    analysis = analyzed.call.call_analysis
    assert analysis is not None and analysis.call_successful is True
    assert analysis.call_summary and "next Tuesday" in analysis.call_summary
    assert analysis.custom_analysis_data == {
        "appointment_booked": True,
        "appointment_day": "next Tuesday",
        "appointment_time": "10am",
        "appointment_site": "Main Street Clinic",
    }


@pytest.mark.parametrize(
    "faults", [Faults(drop_after_phrase="which day"), Faults(drop_mid_dialog=True)]
)
async def test_the_patient_hangs_up_when_asked_for_the_day(
    double: tuple[LlmDouble, str], faults: Faults
) -> None:
    """user_hangup, closed with 1000 and no end_call; the transcript ends at the date question."""
    dbl, url = double
    async with simulator(url) as client:
        call_id = await outbound(client, faults)
        entry = await finished(client, call_id)

    assert entry["disconnection_reason"] == "user_hangup"
    assert entry["ws_close_code"] == 1000
    assert entry["transcript"][-1] == {"role": "agent", "content": QUESTIONS[2]}
    assert said(entry["transcript"], "user") == JANE[:2]
    session = dbl.sessions[call_id]
    assert session.close_code == 1000
    assert not any(frame.get("end_call") for frame in session.sent)
    got = dbl.for_call(call_id)
    assert [d.event for d in got] == NORMAL
    ended, analyzed = got[1].call, got[2].call
    assert ended["disconnection_reason"] == "user_hangup"
    assert ended["transcript_object"][-1]["content"] == QUESTIONS[2]
    assert analyzed["call_analysis"]["call_successful"] is False


async def test_an_inbound_call_asks_the_inbound_webhook_first(
    double: tuple[LlmDouble, str],
) -> None:
    """call_inbound (signed) before call_started; its metadata and variables reach the call."""
    dbl, url = double
    async with simulator(url) as client:
        response = await client.post(
            "/sim/inbound",
            json={
                "from_number": "+14155550001",
                "to_number": "+14155550123",
                "persona": {"name": "John Smith"},
            },
        )
        assert response.status_code == 201, response.text
        call_id = response.json()["call_id"]
        entry = await finished(client, call_id)

    got = dbl.for_call(call_id)
    assert [d.event for d in got] == ["call_inbound", *NORMAL]
    assert all(d.verdict is Verdict.OK for d in got)
    assert got[0].body == {
        "event": "call_inbound",
        "call_inbound": {
            "from_number": "+14155550001",
            "to_number": "+14155550123",
            "agent_id": "ringlog-flu-shot",
            "call_id": call_id,
        },
    }
    metadata = INBOUND_ANSWER["call_inbound"]["metadata"]
    for d in got[1:]:
        assert d.call["direction"] == "inbound"
        assert d.call["metadata"] == metadata
        assert d.call["retell_llm_dynamic_variables"] == {"patient_name": "John Smith"}
    (details,) = dbl.sessions[call_id].of("call_details")
    assert details["call"]["metadata"] == metadata
    assert entry["direction"] == "inbound" and entry["metadata"] == metadata
    assert entry["inbound_answer"] == INBOUND_ANSWER
    assert entry["first_agent_words"].startswith("Hello John Smith,")
    assert entry["transcript"][1] == {"role": "user", "content": "My name is John Smith"}
    assert entry["disconnection_reason"] == "agent_hangup"
    assert [(d["event"], d["attempt"]) for d in entry["deliveries"]] == [
        (event, 1) for event in ["call_inbound", *NORMAL]
    ]


async def test_a_failing_inbound_webhook_leaves_the_call_unconnected() -> None:
    """Four failed attempts, then not_connected/error_inbound_webhook and no socket."""
    with double_at(inbound_status=500) as (dbl, url):
        async with simulator(url) as client:
            response = await client.post(
                "/sim/inbound", json={"from_number": "+14155550001", "to_number": "+14155550123"}
            )
            call_id = response.json()["call_id"]
            entry = await finished(client, call_id)
    assert [d.event for d in dbl.for_call(call_id)] == ["call_inbound"] * 4 + [
        "call_ended",
        "call_analyzed",
    ]
    assert entry["disconnection_reason"] == "error_inbound_webhook"
    assert entry["inbound_answer"] is None and call_id not in dbl.sessions
    assert dbl.for_call(call_id)[-2].call["call_status"] == "not_connected"


async def test_ping_pong_is_sent_and_echoes_are_accepted(double: tuple[LlmDouble, str]) -> None:
    """The simulator pings as soon as the socket opens; the double's echoes are counted."""
    dbl, url = double
    async with simulator(url) as client:
        call_id = await outbound(client)
        entry = await finished(client, call_id)
    pings = dbl.sessions[call_id].of("ping_pong")
    assert pings and all(isinstance(p["timestamp"], int) for p in pings)
    assert entry["pings_sent"] == len(pings)
    assert entry["pongs_received"] >= 1
    assert entry["disconnection_reason"] == "agent_hangup"


async def test_a_server_close_other_than_1000_is_a_runtime_error() -> None:
    """The server closes with 1011 after the begin message: error_llm_websocket_runtime."""
    with double_at(close_code=1011) as (dbl, url):
        async with simulator(url) as client:
            call_id = await outbound(client)
            entry = await finished(client, call_id)
        assert [d.event for d in dbl.for_call(call_id)] == NORMAL
    assert entry["disconnection_reason"] == "error_llm_websocket_runtime"
    assert entry["ws_close_code"] == 1011
    assert said(entry["transcript"], "agent") == [entry["first_agent_words"]]


async def test_an_unreachable_socket_ends_the_call_as_error_llm_websocket_open(
    double: tuple[LlmDouble, str],
) -> None:
    """Nothing listens at the socket URL: the call starts, then ends with no transcript."""
    dbl, url = double
    async with simulator(url, llm_url=f"ws://127.0.0.1:{free_port()}/llm") as client:
        call_id = await outbound(client)
        entry = await finished(client, call_id)
    assert [d.event for d in dbl.for_call(call_id)] == NORMAL
    assert entry["disconnection_reason"] == "error_llm_websocket_open"
    assert entry["transcript"] == [] and entry["ws_close_code"] is None


async def test_duplicate_and_reorder_apply_to_dialog_calls(double: tuple[LlmDouble, str]) -> None:
    """Both faults shape the dialog's webhooks as they shape the timed script's."""
    dbl, url = double
    async with simulator(url) as client:
        call_id = await outbound(client, Faults(duplicate=True, reorder=True))
        await finished(client, call_id)
    assert [d.event for d in dbl.for_call(call_id)] == [e for e in reversed(NORMAL) for _ in "ab"]


async def test_unknown_calls_and_bad_inbound_requests(double: tuple[LlmDouble, str]) -> None:
    """404 for an unknown call id; 422 for an invalid number or persona field."""
    _, url = double
    async with simulator(url) as client:
        missing = await client.get("/sim/calls/nope")
        bad_number = await client.post(
            "/sim/inbound", json={"from_number": "555", "to_number": "+14155550123"}
        )
        bad_persona = await client.post(
            "/sim/inbound",
            json={"from_number": "+14155550001", "to_number": "+1415555", "persona": {"x": 1}},
        )
        assert (await client.get("/sim/calls")).json()["calls"] == []
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    assert bad_number.status_code == bad_persona.status_code == 422
    assert "persona" in bad_persona.text or "x" in bad_persona.text


# real calls' situations, against ringlog ----------------------------------------------------

CLINIC = "+14155559876"
PATIENT = "+14155550177"
AUTH_SIM = {"Authorization": f"Bearer {RETELL_KEY}"}


@pytest.fixture(name="ringlog")
async def _ringlog(topics: Settings, unique: str) -> AsyncIterator[Line]:
    async with line(recovery_settings(topics, unique)) as served:
        yield served


@contextlib.asynccontextmanager
async def simulating(api: Line) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator, served, posting ringlog's webhooks and talking to ringlog's socket; the
    API's get-call reaches it (through the API's Retell stand-in), as on the embedded stack."""
    ws = "ws" + api.url.removeprefix("http")
    app = create_simulator(
        simulator_settings(
            api.url,
            webhook_url=f"{api.url}/v1/webhooks/retell",
            llm_url=f"{ws}/v1/llm",
            key=RETELL_KEY,
        ),
        None,
    )
    with serving(app) as url:
        api.retell.forward_to = url
        async with httpx.AsyncClient(base_url=url, headers=AUTH_SIM) as client:
            yield client


async def call_in(client: httpx.AsyncClient, faults: Faults) -> dict[str, Any]:
    """The patient calls ringlog in under ``faults``; the finished call's entry."""
    response = await client.post(
        "/sim/inbound",
        json={"from_number": PATIENT, "to_number": CLINIC, "faults": faults.model_dump()},
    )
    assert response.status_code == 201, response.text
    return await finished(client, response.json()["call_id"], timeout_s=30)


async def turns_on_log(api: Line, call_id: str) -> list[DialogTurn]:
    found = await envelopes(api.settings.kafka, api.settings.topic("dialog"), f"retell:{call_id}")
    return [e.payload for e in found if isinstance(e.payload, DialogTurn)]


def booked(entry: dict[str, Any]) -> bool:
    return entry["disconnection_reason"] == "agent_hangup" and entry["ws_close_code"] == 1000


async def test_a_caller_who_keeps_talking_and_is_asked_twice_books_once(ringlog: Line) -> None:
    """The name is cut short and grows; the date of birth is asked for twice: ringlog books
    with the whole name, asks each question once and records each answer once."""
    async with simulating(ringlog) as client:
        entry = await call_in(client, Faults(keep_talking_at="full name", twice_at="date of birth"))
    assert booked(entry), entry
    assert entry["requests"][:4] == [
        [1, "My name is Jane"],
        [2, "My name is Jane Doe"],
        [3, "March 3rd, 1980"],
        [4, "March 3rd, 1980"],
    ]
    agent = said(entry["transcript"], "agent")
    assert sum("date of birth" in text.lower() for text in agent) == 1
    assert sum("which day" in text.lower() for text in agent) == 1
    session = await eventually(
        lambda: ringlog.session(PATIENT), lambda s: s["status"] == "completed"
    )
    assert session["slots"]["name"] == "Jane Doe"
    turns = await turns_on_log(ringlog, entry["call_id"])
    assert [t.text for t in turns if t.role == "user"] == [*JANE, "Yes, please."]


@pytest.mark.parametrize("details", [True, False], ids=["details-again", "no-details"])
async def test_a_socket_lost_mid_call_is_opened_again_and_the_call_goes_on(
    ringlog: Line, details: bool
) -> None:
    """The socket drops when the agent asks for the time; the new one continues: one
    greeting, one session, every answer recorded once."""
    async with simulating(ringlog) as client:
        entry = await call_in(client, Faults(reconnect_at="what time", reconnect_details=details))
    assert booked(entry), entry
    assert entry["reconnects"] == 1
    agent = said(entry["transcript"], "agent")
    assert sum("hello" in text.lower() or "welcome" in text.lower() for text in agent) == 1
    assert said(entry["transcript"], "user") == [*JANE, "Yes, please."]
    session = await eventually(
        lambda: ringlog.session(PATIENT), lambda s: s["status"] == "completed"
    )
    assert session["call_refs"] == [f"retell:{entry['call_id']}"]
    turns = await turns_on_log(ringlog, entry["call_id"])
    assert [t.text for t in turns if t.role == "user"] == [*JANE, "Yes, please."]
    assert [t.turn_index for t in turns] == list(range(13))


async def test_a_web_call_of_two_hours_is_booked_and_its_webhooks_land(ringlog: Line) -> None:
    """A web call (create-web-call: no numbers) is booked through ringlog's socket without a
    session; its webhooks, the call_ended of a 2-hour call among them, are all accepted."""
    async with simulating(ringlog) as client:
        await client.put("/sim/faults", json=Faults(two_hours=True).model_dump())
        response = await client.post(
            "/v2/create-web-call", json={"agent_id": "ringlog-flu-shot"}, headers=AUTH_SIM
        )
        assert response.status_code == 201, response.text
        web = response.json()
        assert web["call_type"] == "web_call" and web["access_token"]
        assert "from_number" not in web and "direction" not in web
        entry = await finished(client, web["call_id"], timeout_s=30)
    assert booked(entry), entry
    assert [(d["event"], d["status_code"]) for d in entry["deliveries"]] == [
        (event, 204) for event in NORMAL
    ]
    turns = await turns_on_log(ringlog, web["call_id"])
    assert len(turns) == 13 and {t.session_id for t in turns} == {None}
    calls = await envelopes(
        ringlog.settings.kafka, ringlog.settings.topic("calls"), f"retell:{web['call_id']}"
    )
    ended = [e.payload for e in calls if isinstance(e.payload, RetellCallEnded)]
    assert len(ended) == 1 and ended[0].call.duration_ms == MAX_CALL_DURATION_MS
    assert ended[0].call.transcript_object is not None
    assert ended[0].call.transcript_object[1].content == "My name is Jane Doe"
