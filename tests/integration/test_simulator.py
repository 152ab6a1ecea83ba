"""The local Retell: create-call semantics, and the signed webhooks it plays back.

The simulator runs in-process (ASGI transport) for the create-call side. Its webhooks go over
real HTTP to a small receiver served by uvicorn in a thread, which checks every signature with
ringlog's own ``verify``; one test sends them to the real ringlog API on the embedded stack.
Tests wait for "every scripted call finished" by polling ``GET /sim/calls`` with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from ringlog.api.app import create_app
from ringlog.api.signature import HEADER, Verdict, verify
from ringlog.config import RetellSettings, Settings, SimulatorSettings
from ringlog.devstack.ports import free_port, wait_until
from ringlog.schemas.retell import RetellCallAnalyzed, RetellCallEnded, RetellCallStarted
from ringlog.simulator import Faults, create_simulator
from tests.integration.test_api_ingest import RETELL_KEY, api_settings, records

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {RETELL_KEY}"}
CALL = {
    "from_number": "+14155559876",
    "to_number": "+14155550123",
    "metadata": {"call_ref": "call_sim_1"},
    "retell_llm_dynamic_variables": {"patient_name": "Ada Lovelace"},
}
NORMAL = ["call_started", "call_ended", "call_analyzed"]


@dataclass(frozen=True)
class Received:
    """One webhook as the receiver got it."""

    event: str
    call: dict[str, Any]
    raw: bytes
    verdict: Verdict
    at: float


class Receiver:
    """A webhook endpoint that verifies signatures and can fail its first posts on purpose."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_first = 0
        self._posts = 0
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/hook")(self._hook)

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        verdict = verify(
            raw, RETELL_KEY, request.headers.get(HEADER), now_ms=int(time.time() * 1000)
        )
        with self._lock:
            self._posts += 1
            if self._posts <= self.fail_first:
                return Response(status_code=500)
            body = orjson.loads(raw)
            self.received.append(
                Received(body["event"], body["call"], raw, verdict, time.monotonic())
            )
        return Response(status_code=204 if verdict is Verdict.OK else 401)

    def events(self) -> list[str]:
        """The events received so far, in arrival order."""
        with self._lock:
            return [r.event for r in self.received]


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; stop it on exit."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(
            lambda: server.started, timeout_s=20, give_up=lambda: not thread.is_alive()
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serving(receiver.app) as url:
        yield receiver, f"{url}/hook"


def sim_settings(webhook_url: str, *, talk_s: float = 0.05) -> Settings:
    """Settings with the test's Retell key, the receiver as webhook target and a fast pace."""
    return Settings(
        retell=RetellSettings(api_key=RETELL_KEY),
        simulator=SimulatorSettings(
            webhook_url=webhook_url, ring_s=0.02, talk_s=talk_s, analysis_s=0.03
        ),
    )


@contextlib.asynccontextmanager
async def simulator(
    webhook_url: str, faults: Faults | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator app, started, with a client reaching it in-process."""
    app = create_simulator(sim_settings(webhook_url), faults)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://retell") as client:
            yield client


async def create(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    """POST /v2/create-phone-call with the API key and ``CALL`` updated by ``fields``."""
    return await client.post("/v2/create-phone-call", json=CALL | fields, headers=AUTH)


async def settled(client: httpx.AsyncClient, timeout_s: float = 10.0) -> dict[str, Any]:
    """Poll ``/sim/calls`` until no call is still playing; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        state: dict[str, Any] = (await client.get("/sim/calls")).json()
        if state["pending"] == 0:
            return state
        assert time.monotonic() < deadline, f"calls still playing: {state}"
        await asyncio.sleep(0.02)


async def played(
    client: httpx.AsyncClient, faults: Faults, receiver: Receiver
) -> tuple[str, list[Received]]:
    """Create one call under ``faults``; return its id and what the receiver got for it."""
    await client.put("/sim/faults", json=faults.model_dump())
    response = await create(client)
    assert response.status_code == 201, response.text
    await settled(client)
    call_id: str = response.json()["call_id"]
    return call_id, [r for r in receiver.received if r.call["call_id"] == call_id]


async def test_create_call_is_201_with_a_registered_call_object(
    receiver: tuple[Receiver, str],
) -> None:
    """201 with Retell's call object; get-call follows it up to the analysed call."""
    _, url = receiver
    async with simulator(url) as client:
        response = await create(client)
        assert response.status_code == 201, response.text
        call = response.json()
        assert re.fullmatch(r"[A-Za-z0-9]{32}", call["call_id"])
        assert call | CALL == call
        assert (call["call_status"], call["direction"], call["call_type"]) == (
            "registered",
            "outbound",
            "phone_call",
        )
        assert (call["agent_id"], call["agent_version"]) == ("ringlog-flu-shot", 1)

        await settled(client)
        now = (await client.get(f"/v2/get-call/{call['call_id']}", headers=AUTH)).json()
        assert now["call_status"] == "ended"
        assert now["call_analysis"]["call_successful"] is True
        other = await create(client, override_agent_id="agent_other", metadata=None)
        assert other.json()["agent_id"] == "agent_other"
        assert "metadata" not in other.json()


async def test_normal_script_posts_three_signed_webhooks_in_order(
    receiver: tuple[Receiver, str],
) -> None:
    """call_started, call_ended, call_analyzed; each verifies and parses as ringlog's models."""
    rx, url = receiver
    async with simulator(url) as client:
        call_id, got = await played(client, Faults(), rx)
        state = await settled(client)
    assert [r.event for r in got] == NORMAL
    assert all(r.verdict is Verdict.OK for r in got)
    assert all(r.raw == orjson.dumps({"event": r.event, "call": r.call}) for r in got)
    started, ended, analyzed = (
        model.from_body(orjson.loads(r.raw))
        for model, r in zip(
            (RetellCallStarted, RetellCallEnded, RetellCallAnalyzed), got, strict=True
        )
    )
    assert started.call.call_status == "ongoing" and started.call.start_timestamp
    assert ended.call.call_status == "ended" and ended.call.disconnection_reason == "agent_hangup"
    assert ended.call.transcript_object and ended.call.transcript_object[0].role == "agent"
    assert ended.call.call_analysis is None
    analysis = analyzed.call.call_analysis
    assert analysis is not None and analysis.user_sentiment == "Positive"
    assert analysis.call_successful is True and analysis.custom_analysis_data
    assert analyzed.call.call_cost and "combined_cost" in analyzed.call.call_cost
    assert started.call.call_ref() == "call_sim_1"
    (entry,) = state["calls"]
    assert entry["call_id"] == call_id and entry["status"] == "done"
    assert [(d["event"], d["status_code"], d["attempt"]) for d in entry["deliveries"]] == [
        (event, 204, 1) for event in NORMAL
    ]


async def test_idempotency_key_gives_the_same_call_and_one_set_of_webhooks(
    receiver: tuple[Receiver, str], unique: str
) -> None:
    """The same key twice: the same call id, one call, three webhooks in all."""
    rx, url = receiver
    async with simulator(url) as client:
        first = await create(client, idempotency_key=f"k-{unique}")
        second = await create(client, idempotency_key=f"k-{unique}")
        third = await create(client, idempotency_key=f"other-{unique}")
        state = await settled(client)
    assert first.status_code == second.status_code == 201
    assert first.json()["call_id"] == second.json()["call_id"] != third.json()["call_id"]
    assert state["create_requests"] == 3
    assert [c["idempotency_key"] for c in state["calls"]] == [f"k-{unique}", f"other-{unique}"]
    mine = [r.event for r in rx.received if r.call["call_id"] == first.json()["call_id"]]
    assert mine == NORMAL


async def test_requests_without_the_api_key_are_401(receiver: tuple[Receiver, str]) -> None:
    """No key or a wrong key: 401 in Retell's error shape, and no call."""
    _, url = receiver
    async with simulator(url) as client:
        missing = await client.post("/v2/create-phone-call", json=CALL)
        wrong = await client.post(
            "/v2/create-phone-call", json=CALL, headers={"Authorization": "Bearer nope"}
        )
        get = await client.get("/v2/get-call/whatever")
        state = await settled(client)
    assert missing.status_code == wrong.status_code == get.status_code == 401
    assert missing.json()["status"] == "error" and missing.json()["message"]
    assert state["calls"] == [] and state["create_requests"] == 2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (CALL | {"to_number": "555-0123"}, "to_number"),
        ({"from_number": "+14155559876"}, "to_number"),
        (CALL | {"surprise": 1}, "surprise"),
        (CALL | {"retell_llm_dynamic_variables": {"n": 1}}, "retell_llm_dynamic_variables"),
    ],
)
async def test_invalid_create_requests_are_400(
    receiver: tuple[Receiver, str], body: dict[str, Any], words: str
) -> None:
    """A body that is not a valid create-call request is 400 naming the field; no call."""
    _, url = receiver
    async with simulator(url) as client:
        response = await client.post("/v2/create-phone-call", json=body, headers=AUTH)
        garbled = await client.post("/v2/create-phone-call", content=b"{", headers=AUTH)
        state = await settled(client)
    assert response.status_code == garbled.status_code == 400
    assert words in response.json()["message"]
    assert state["calls"] == []


async def test_get_call_of_an_unknown_id_is_404(receiver: tuple[Receiver, str]) -> None:
    """get-call knows only the calls it created."""
    _, url = receiver
    async with simulator(url) as client:
        response = await client.get("/v2/get-call/nope", headers=AUTH)
    assert response.status_code == 404 and response.json()["status"] == "error"


async def test_rate_limit_and_server_error_faults_answer_the_first_requests(
    receiver: tuple[Receiver, str], unique: str
) -> None:
    """rate_limit_first=1: 429 then 201; server_error_first=1 (set at runtime): 500 then 201.

    The faults apply before idempotency, so a retry with the same key creates the call once.
    """
    rx, url = receiver
    async with simulator(url, Faults(rate_limit_first=1)) as client:
        limited = await create(client, idempotency_key=f"a-{unique}")
        created = await create(client, idempotency_key=f"a-{unique}")
        assert (limited.status_code, created.status_code) == (429, 201)
        assert limited.json() == {
            "status": "error",
            "message": "Account rate limited, please throttle your requests.",
        }
        put = await client.put("/sim/faults", json={"server_error_first": 1})
        assert put.status_code == 200
        assert (await client.get("/sim/faults")).json() == Faults(server_error_first=1).model_dump()
        failed = await create(client, idempotency_key=f"b-{unique}")
        again = await create(client, idempotency_key=f"b-{unique}")
        assert (failed.status_code, again.status_code) == (500, 201)
        state = await settled(client)
    assert state["create_requests"] == 4
    assert len(state["calls"]) == 2
    assert len(rx.received) == 6


async def test_invalid_faults_are_refused(receiver: tuple[Receiver, str]) -> None:
    """PUT /sim/faults validates its body; the faults in force stay as they were."""
    _, url = receiver
    async with simulator(url, Faults(duplicate=True)) as client:
        bad = await client.put("/sim/faults", json={"rate_limit_first": -1})
        unknown = await client.put("/sim/faults", json={"chaos": True})
        assert bad.status_code == unknown.status_code == 422
        assert (await client.get("/sim/faults")).json()["duplicate"] is True


async def test_duplicate_delivers_every_webhook_twice(receiver: tuple[Receiver, str]) -> None:
    """Each event arrives twice, back to back, with the same body."""
    rx, url = receiver
    async with simulator(url) as client:
        _, got = await played(client, Faults(duplicate=True), rx)
    assert [r.event for r in got] == [e for e in NORMAL for _ in range(2)]
    assert got[0].raw == got[1].raw and got[4].raw == got[5].raw
    assert all(r.verdict is Verdict.OK for r in got)


async def test_reorder_delivers_the_webhooks_last_first(receiver: tuple[Receiver, str]) -> None:
    """call_analyzed, call_ended, call_started, each still carrying its own call state."""
    rx, url = receiver
    async with simulator(url) as client:
        call_id, got = await played(client, Faults(reorder=True), rx)
        now = (await client.get(f"/v2/get-call/{call_id}", headers=AUTH)).json()
    assert [r.event for r in got] == list(reversed(NORMAL))
    assert [r.call["call_status"] for r in got] == ["ended", "ended", "ongoing"]
    assert "call_analysis" in now, "get-call never moves backwards"


async def test_dial_failure_sends_no_call_started(receiver: tuple[Receiver, str]) -> None:
    """call_ended is not_connected/dial_failed, unstarted; the analysis has no custom data."""
    rx, url = receiver
    async with simulator(url) as client:
        _, got = await played(client, Faults(dial_failure=True), rx)
    assert [r.event for r in got] == ["call_ended", "call_analyzed"]
    ended, analyzed = (r.call for r in got)
    assert (ended["call_status"], ended["disconnection_reason"]) == ("not_connected", "dial_failed")
    assert "start_timestamp" not in ended and "end_timestamp" in ended
    assert analyzed["call_analysis"]["call_successful"] is False
    assert "custom_analysis_data" not in analyzed["call_analysis"]


async def test_drop_mid_dialog_ends_early_with_a_partial_transcript(
    receiver: tuple[Receiver, str],
) -> None:
    """The patient hangs up: user_hangup, a shorter transcript, an unsuccessful call."""
    rx, url = receiver
    async with simulator(url) as client:
        _, normal = await played(client, Faults(), rx)
        _, dropped = await played(client, Faults(drop_mid_dialog=True), rx)
    assert [r.event for r in dropped] == NORMAL
    ended = dropped[1].call
    assert ended["disconnection_reason"] == "user_hangup"
    assert 0 < len(ended["transcript_object"]) < len(normal[1].call["transcript_object"])
    assert ended["duration_ms"] < normal[1].call["duration_ms"]
    assert dropped[2].call["call_analysis"]["call_successful"] is False


async def test_delay_analyzed_holds_back_call_analyzed(receiver: tuple[Receiver, str]) -> None:
    """call_analyzed arrives at least delay_analyzed_s after call_ended."""
    rx, url = receiver
    async with simulator(url) as client:
        _, got = await played(client, Faults(delay_analyzed_s=0.4), rx)
    assert [r.event for r in got] == NORMAL
    assert got[2].at - got[1].at >= 0.4


async def test_failed_posts_are_retried_then_given_up(receiver: tuple[Receiver, str]) -> None:
    """A 500 is retried (the script goes on meanwhile); an unreachable URL is given up after 3."""
    rx, url = receiver
    rx.fail_first = 2
    async with simulator(url) as client:
        _, got = await played(client, Faults(), rx)
        (entry,) = (await settled(client))["calls"]
    assert sorted(r.event for r in got) == sorted(NORMAL)
    attempts = [(d["event"], d["attempt"], d["status_code"]) for d in entry["deliveries"]]
    assert ("call_started", 1, 500) in attempts and ("call_started", 2, 204) in attempts
    assert ("call_ended", 1, 500) in attempts and ("call_ended", 2, 204) in attempts

    async with simulator(f"http://127.0.0.1:{free_port()}/hook") as client:
        assert (await create(client)).status_code == 201
        (entry,) = (await settled(client))["calls"]
    assert [(d["event"], d["attempt"]) for d in entry["deliveries"] if d.get("gave_up")] == [
        (event, 4) for event in NORMAL
    ]
    assert all("error" in d for d in entry["deliveries"]) and len(entry["deliveries"]) == 12


async def test_shutdown_cancels_calls_still_playing(receiver: tuple[Receiver, str]) -> None:
    """Leaving the lifespan mid-call cancels the call's task; nothing is posted afterwards."""
    rx, url = receiver
    app = create_simulator(sim_settings(url, talk_s=30))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://retell") as client:
            assert (await create(client)).status_code == 201
            deadline = time.monotonic() + 5
            while rx.events() != ["call_started"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
    (record,) = app.state.simulator.calls.values()
    assert record.status == "cancelled"
    assert rx.events() == ["call_started"]


def test_the_simulator_needs_a_retell_key() -> None:
    """Without settings.retell.api_key there is nothing to authenticate or sign with."""
    with pytest.raises(ValueError, match="api_key"):
        create_simulator(Settings(retell=RetellSettings(api_key=None)))


async def test_webhooks_are_accepted_by_the_ringlog_api(topics: Settings) -> None:
    """Against the real API on the embedded stack: every post is 204, three events land."""
    with serving(create_app(api_settings(topics))) as api_url:
        async with simulator(f"{api_url}/v1/webhooks/retell") as client:
            response = await create(client)
            assert response.status_code == 201
            (entry,) = (await settled(client))["calls"]
    assert [(d["event"], d.get("status_code")) for d in entry["deliveries"]] == [
        (event, 204) for event in NORMAL
    ]
    found = await records(topics, "calls", 3)
    payloads = [r.envelope.payload for r in found if r.envelope is not None]
    assert [type(p) for p in payloads] == [RetellCallStarted, RetellCallEnded, RetellCallAnalyzed]
    assert {r.key for r in found} == {b"call_sim_1"}
