"""The local Retell playing a scripted patient through a custom-LLM socket, out- and inbound.

The simulator runs in-process (ASGI transport); its WebSocket client and webhooks go over real
sockets to :class:`~tests.support.llm_double.LlmDouble` served by uvicorn in a thread, which
asks the contract questions, verifies every signature and answers the inbound webhook. Tests
wait on conditions (``GET /sim/calls/{id}`` until the call is no longer playing), never on
fixed sleeps. No Kafka is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ringlog.api.signature import Verdict
from ringlog.config import RetellSettings, Settings, SimulatorSettings
from ringlog.devstack.ports import free_port
from ringlog.schemas.retell import RetellCallAnalyzed, RetellCallEnded, RetellCallStarted
from ringlog.simulator import Faults, create_simulator
from tests.support.llm_double import GOODBYE, QUESTIONS, LlmDouble
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


@contextlib.asynccontextmanager
async def simulator(
    base_url: str, *, llm_url: str | None = None, faults: Faults | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator, started, posting to ``{base_url}/hook`` and talking to ``…/llm``."""
    ws_base = "ws" + base_url.removeprefix("http")
    settings = Settings(
        retell=RetellSettings(api_key=KEY),
        simulator=SimulatorSettings(
            webhook_url=f"{base_url}/hook",
            llm_websocket_url=llm_url if llm_url is not None else f"{ws_base}/llm",
            ring_s=0.02,
            analysis_s=0.03,
        ),
    )
    app = create_simulator(settings, faults)
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
        model.model_validate_json(d.raw)
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
