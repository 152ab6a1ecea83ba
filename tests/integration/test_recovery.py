"""Seed 000: a dropped booking resumes when the same number calls back.

The API is served by uvicorn on a loopback port; the tests play Retell's side of the custom-LLM
socket (``tests/support/llm_caller.py``). Sessions, turns and the cache are real: the
session's Tansu, and Redis under a key prefix (or database) of the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from ringlog.api.app import create_app
from ringlog.cli import app as cli_app
from ringlog.config import DialogSettings, RedisSettings, Settings
from ringlog.schemas.sessions import SessionCompleted
from tests.integration.test_api_ingest import AUTH, api_settings, signed
from tests.support.llm_caller import Caller
from tests.support.logread import envelopes, eventually
from tests.support.retell_double import RetellDouble
from tests.support.servers import serving
from tests.support.worker_runtime import folding_worker, keeping_views

pytestmark = pytest.mark.integration

JANE = "+14155550101"
JOHN = "+14155550102"
#: a Redis database the flush test may empty (the other tests only use their own key prefix)
FLUSHABLE_DB = 7


@dataclass
class Line:
    """A served API and what the tests need to call it."""

    settings: Settings
    url: str
    http: httpx.AsyncClient
    redis: aioredis.Redis
    #: Retell's get-call for calls no inbound webhook announces (outbound, web)
    retell: RetellDouble

    def caller(self, phone: str, **call: Any) -> Caller:
        """An inbound call from ``phone`` (announced by the inbound webhook); with ``call``
        fields (``direction``, ``call_type`` …) a call Retell's get-call describes."""
        return Caller(self.url, phone, retell=self.retell if call else None, **call)

    async def session(self, phone: str) -> dict[str, object]:
        response = await self.http.get(f"/v1/sessions/{phone}", headers=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    async def session_types(self, phone: str) -> list[str]:
        found = await envelopes(self.settings.kafka, self.settings.topic("sessions"), phone)
        return [e.type for e in found]


@asynccontextmanager
async def line(settings: Settings) -> AsyncIterator[Line]:
    """The API served, with the read views it answers from kept in this process."""
    async with keeping_views(settings), _served(settings) as served:
        yield served


@asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[Line]:
    retell = RetellDouble()
    with serving(retell.app) as retell_url:
        retell_settings = settings.retell.model_copy(update={"base_url": retell_url})
        settings = settings.model_copy(update={"retell": retell_settings})
        with serving(create_app(settings)) as url:
            redis = aioredis.Redis.from_url(settings.redis.url)
            async with httpx.AsyncClient(base_url=url) as http:
                try:
                    yield Line(settings, url, http, redis, retell)
                finally:
                    await redis.aclose()


def recovery_settings(topics: Settings, unique: str, **dialog: object) -> Settings:
    base = api_settings(topics)
    return base.model_copy(
        update={
            "redis": RedisSettings(url=topics.redis.url, key_prefix=f"t{unique}:"),
            "dialog": DialogSettings(**dialog),  # type: ignore[arg-type]
        }
    )


@pytest.fixture(name="api")
async def _api(topics: Settings, unique: str) -> AsyncIterator[Line]:
    async with line(recovery_settings(topics, unique)) as served:
        yield served


async def book_until_the_date(caller: Caller) -> None:
    """Start a fresh booking and stop when the agent asks for the day."""
    first = await caller.open()
    assert "full name" in first.lower()
    assert "date of birth" in (await caller.say("My name is Jane Doe")).text.lower()
    assert "which day" in (await caller.say("March 3rd, 1980")).text.lower()


async def finish_booking(caller: Caller) -> str:
    """Answer the remaining questions; return the agent's last words."""
    assert "what time" in (await caller.say("next Tuesday")).text.lower()
    assert "which site" in (await caller.say("10am")).text.lower()
    assert "shall i book" in (await caller.say("Main Street Clinic")).text.lower()
    last = await caller.say("Yes, please.")
    assert last.end_call
    return last.text


async def test_a_callback_a_moment_after_a_drop_resumes_at_the_stage_reached(api: Line) -> None:
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")

    again = api.caller(JANE)
    welcome = (await again.open()).lower()
    assert "welcome back" in welcome and "booking a flu shot" in welcome
    assert "selecting a date" in welcome
    assert "jane" not in welcome and "1980" not in welcome, "no personal details before identity"
    assert again.first_chunk_s < 1.0

    confirmed = (await again.say("March 3, 1980")).text
    assert "Jane" in confirmed and "which day" in confirmed.lower(), "continues at the date"
    assert "booked" in (await finish_booking(again)).lower()
    assert await again.close_code() == 1000, "a normal end closes the socket with 1000"

    session = await api.session(JANE)
    assert session["status"] == "completed"
    assert session["call_refs"] == [f"retell:{first.call_id}", f"retell:{again.call_id}"]
    assert not await api.redis.exists(f"{api.settings.redis.key_prefix}session:{JANE}")
    types = await api.session_types(JANE)
    assert types[0] == "session.started" and "session.dropped" in types
    assert types[-1] == "session.completed" and types.count("session.resumed") == 1
    completed = (await envelopes(api.settings.kafka, api.settings.topic("sessions"), JANE))[-1]
    assert isinstance(completed.payload, SessionCompleted)
    assert completed.payload.patient.name == "Jane Doe"
    assert completed.payload.appointment.site == "Main Street Clinic"


async def test_every_turn_of_both_calls_is_on_the_dialog_topic(api: Line) -> None:
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    ref = f"retell:{first.call_id}"
    turns = await envelopes(api.settings.kafka, api.settings.topic("dialog"), ref)
    said = [(t.payload.role, t.payload.text) for t in turns]  # type: ignore[attr-defined]
    assert said[0][0] == "agent" and said[1] == ("user", "My name is Jane Doe")
    assert [r for r, _ in said] == ["agent", "user", "agent", "user", "agent"]
    assert [t.payload.turn_index for t in turns] == list(range(5))  # type: ignore[attr-defined]


@pytest.fixture(name="flushable")
async def _flushable(topics: Settings, unique: str) -> AsyncIterator[Line]:
    settings = recovery_settings(topics, unique)
    url = settings.redis.url.rsplit("/", 1)[0] + f"/{FLUSHABLE_DB}"
    settings = settings.model_copy(update={"redis": RedisSettings(url=url, key_prefix="ringlog:")})
    async with line(settings) as served:
        await served.redis.flushdb()  # nothing from an earlier run
        yield served


async def test_a_callback_after_redis_was_flushed_resumes_from_the_view(flushable: Line) -> None:
    api = flushable
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")
    await api.redis.flushdb()

    again = api.caller(JANE)
    welcome = (await again.open()).lower()
    assert "welcome back" in welcome and "selecting a date" in welcome
    assert "Jane" in (await again.say("March 3rd 1980")).text


async def test_a_callback_after_expiry_starts_fresh(topics: Settings, unique: str) -> None:
    async with line(recovery_settings(topics, unique, session_expiry_s=0)) as api:
        first = api.caller(JANE)
        await book_until_the_date(first)
        await first.hang_up()
        await eventually(lambda: api.session_types(JANE), lambda t: "session.dropped" in t)

        again = api.caller(JANE)
        greeting = (await again.open()).lower()
        assert "welcome back" not in greeting and "full name" in greeting
        types = await api.session_types(JANE)
        assert types[-2:] == ["session.expired", "session.started"]


async def test_two_numbers_resume_their_own_sessions(api: Line) -> None:
    jane, john = api.caller(JANE), api.caller(JOHN)
    await jane.open()
    await john.open()
    await jane.say("My name is Jane Doe")
    await jane.say("March 3rd, 1980")  # Jane reaches the date
    await john.say("This is John Smith")  # John reaches the date of birth
    await asyncio.gather(jane.hang_up(), john.hang_up())
    await eventually(lambda: api.session(JOHN), lambda s: s["status"] == "dropped")
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")

    jane2, john2 = api.caller(JANE), api.caller(JOHN)
    assert "selecting a date" in (await jane2.open()).lower()
    john_welcome = (await john2.open()).lower()
    assert "date of birth" in john_welcome and "selecting a date" not in john_welcome
    assert (await api.session(JANE))["session_id"] != (await api.session(JOHN))["session_id"]


async def test_a_second_simultaneous_call_is_told_and_the_first_keeps_the_session(
    api: Line,
) -> None:
    first = api.caller(JANE)
    await first.open()
    second = api.caller(JANE)
    busy = await second.open()
    assert "another call" in busy.lower()
    assert await second.close_code() == 1000
    assert "date of birth" in (await first.say("My name is Jane Doe")).text.lower()
    session = await api.session(JANE)
    assert session["call_refs"] == [f"retell:{first.call_id}"]
    assert session["status"] == "active"


async def test_a_wrong_date_of_birth_on_resume_starts_fresh_without_revealing(api: Line) -> None:
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")

    spoofer = api.caller(JANE)
    await spoofer.open()
    answer = (await spoofer.say("January 1st, 1990")).text
    assert "Jane" not in answer and "full name" in answer.lower()
    types = await api.session_types(JANE)
    assert types[-2:] == ["session.identity_failed", "session.started"]
    session = await api.session(JANE)
    assert session["call_refs"] == [f"retell:{spoofer.call_id}"] and session["slots"] == {}


async def test_garbled_words_and_broken_frames_get_a_reprompt_not_a_crash(api: Line) -> None:
    caller = api.caller(JANE)
    await caller.open()
    await caller.send_raw("this is not json {")
    await caller.send_raw('{"no_interaction_type": 1}')
    reply = await caller.say("@@@ 123 ###")
    assert "full name" in reply.text.lower() and not reply.end_call
    assert "date of birth" in (await caller.say("My name is Jane Doe")).text.lower()


async def test_the_inbound_webhook_carries_the_resume_context(api: Line) -> None:
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")
    body = {
        "event": "call_inbound",
        "call_inbound": {"from_number": JANE, "to_number": "+14155559876", "call_id": "c_in_1"},
    }
    raw = httpx.Request("POST", "/", json=body).content
    response = await api.http.post("/v1/webhooks/retell/inbound", content=raw, headers=signed(raw))
    assert response.status_code == 200, response.text
    variables = response.json()["call_inbound"]["dynamic_variables"]
    assert variables["resume"] == "true" and variables["session_stage"] == "selecting a date"
    assert "Jane" not in response.text


async def test_the_read_api_shows_a_calls_timeline_and_refuses_without_a_key(api: Line) -> None:
    caller = api.caller(JANE)
    await book_until_the_date(caller)
    await caller.hang_up()
    ref = f"retell:{caller.call_id}"
    # the last reply is recorded once the socket's end is handled, after the hang-up returns
    # (read-after-write itself is test_call_reads' concern)
    events = await eventually(
        lambda: api.http.get(f"/v1/calls/{ref}/events", headers=AUTH),
        lambda r: r.status_code == 200 and len(r.json()) >= 6,
    )
    timeline = events.json()
    assert [e["type"] for e in timeline] == ["retell.call_inbound"] + ["dialog.turn"] * 5
    assert timeline[2]["payload"]["text"] == "My name is Jane Doe"
    assert (await api.http.get(f"/v1/calls/{ref}/events")).status_code == 401
    assert (await api.http.get(f"/v1/sessions/{JANE}")).status_code == 401
    assert (await api.http.get("/v1/sessions/+14155550999", headers=AUTH)).status_code == 404
    assert (await api.http.get("/v1/sessions/not-a-number", headers=AUTH)).status_code == 422


async def test_the_read_api_shows_an_outbound_calls_state(api: Line) -> None:
    async with folding_worker(api.settings) as worker:  # keeps the view the read comes from
        await worker.caught_up()
        response = await api.http.post(
            "/v1/calls",
            json={"to_number": JANE, "from_number": "+14155559876", "task_ref": "t-9"},
            headers=AUTH,
        )
        ref = response.json()["call_ref"]
        read = await eventually(  # read-after-write itself is test_call_reads' concern
            lambda: api.http.get(f"/v1/calls/{ref}", headers=AUTH), lambda r: r.status_code == 200
        )
        state = read.json()
        # a call nobody requested is a 404 once the view has folded the log (a miss from a
        # view behind the log is a 503, see test_call_reads)
        unknown = await eventually(
            lambda: api.http.get("/v1/calls/nope", headers=AUTH), lambda r: r.status_code != 503
        )
        assert unknown.status_code == 404
    assert state["call_ref"] == ref and state["dispatch"] == "pending"
    assert state["request"]["to_number"] == JANE


async def test_rebuild_sessions_refolds_the_view_and_a_callback_still_resumes(api: Line) -> None:
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")
    prefix = api.settings.redis.key_prefix
    keys = [k async for k in api.redis.scan_iter(match=f"{prefix}*")]
    await api.redis.delete(*keys)
    env = {
        "RINGLOG_KAFKA_TOPIC_PREFIX": api.settings.kafka.topic_prefix,
        "RINGLOG_REDIS_KEY_PREFIX": prefix,
    }
    done = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["rebuild", "sessions"], env=env, catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    sessions = await envelopes(api.settings.kafka, api.settings.topic("sessions"), JANE)
    assert f"{len(sessions)} record(s) folded" in done.output
    assert (await api.session(JANE))["stage"] == "date"

    again = api.caller(JANE)  # the cache is empty: the call's start reads the view
    assert "selecting a date" in (await again.open()).lower()
    cached = await api.redis.get(f"{prefix}session:{JANE}")
    assert cached is not None and b'"stage":"date"' in cached


async def test_rebuild_crm_projects_the_whole_story_from_the_log(api: Line, tmp_path: Path) -> None:
    first = api.caller(JANE)
    await book_until_the_date(first)
    await first.hang_up()
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "dropped")
    again = api.caller(JANE)
    await again.open()
    await again.say("March 3rd, 1980")
    await finish_booking(again)
    await eventually(lambda: api.session(JANE), lambda s: s["status"] == "completed")
    crm_url = f"sqlite:///{tmp_path / 'crm.db'}"
    env = {
        "RINGLOG_KAFKA_TOPIC_PREFIX": api.settings.kafka.topic_prefix,
        "RINGLOG_CRM_URL": crm_url,
    }
    for _ in range(2):  # a second rebuild gives the same rows
        done = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["rebuild", "crm"], env=env, catch_exceptions=False
        )
        assert done.exit_code == 0, done.output
        assert "crm_appointments 1" in done.output and "crm_interactions 2" in done.output
        assert "crm_patients 1" in done.output
