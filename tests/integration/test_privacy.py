"""Patient data protected by default, against the real API on the embedded stack.

One story is played once for the module with the production logging set-up
(``ringlog.logs.configure`` into a buffer, uvicorn started with ``logs.uvicorn_options``): a
patient's inbound call announced by Retell's signed webhook, a booking over the custom-LLM
socket (name, date of birth), Retell's call webhooks with a transcript and a summary naming the
patient, an outbound call request, task writebacks with a callback number and notes, 422s, and a
route failing with a traceback that carries a validation error and a number. The worker, the
views, the CRM projection and two warehouse projections (default, and with
``RINGLOG_WAREHOUSE_TRANSCRIPTS``) run in this process while the logs are captured.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from ringlog import logs
from ringlog.api.app import create_app
from ringlog.config import CrmSettings, Settings, on_embedded_stack, require_phone_hash_key
from ringlog.devstack.ports import free_port, wait_until
from ringlog.projections.crm import crm_runner
from ringlog.projections.crm.store import CrmStore
from ringlog.projections.warehouse import warehouse_store
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS
from tests.integration.test_api_ingest import AUTH, records, signed
from tests.integration.test_recovery import book_until_the_date, finish_booking, recovery_settings
from tests.integration.test_warehouse_projection import make_runner, with_database
from tests.support.examples import retell_call
from tests.support.llm_caller import Caller
from tests.support.logcapture import captured_logs
from tests.support.logread import eventually
from tests.support.worker_runtime import folding_worker, keeping_views

pytestmark = pytest.mark.integration

JANE = "+14155550101"  # the patient who books
JOHN = "+14155550102"  # an outbound call's callee
CALLBACK = "+14155550103"  # a callback number written back on a task
CLINIC = "+14155559876"
NUMBERS = (JANE, JOHN, CALLBACK, CLINIC)
NAME = "Jane Doe"
#: the date of birth as spoken, as the dialog stores it, and as a US form
DOB_SAID, DOB = "March 3rd, 1980", "1980-03-03"
PERSONAL = (NAME, "Jane", "Doe", DOB_SAID, "March 3", DOB, "03/03/1980")
#: what ``GET /v1/test/crash`` validates: a name, a date of birth and a number (an unknown
#: field), so the validation error it raises would print two of them as input values
CRASH_INPUT = {"name": NAME, "date_of_birth": DOB_SAID, "phone": JANE}
LONG = "x" * 10_000


def forms(number: str) -> tuple[str, str, str]:
    """A number as E.164, as bare digits, and without its country code."""
    digits = number.removeprefix("+")
    return number, digits, digits[1:]


@dataclass
class Story:
    """What the story left: every log line, the two warehouses' tables, the refusals."""

    log: str
    warehouse: str
    with_transcripts: str
    refused: list[httpx.Response]


# -- serving with the production logging set-up -------------------------------------------------


@contextmanager
def serving_as_in_production(app: FastAPI) -> Iterator[str]:
    """uvicorn in a thread, its logging left to ``logs.configure`` (at INFO, to see more)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", **logs.uvicorn_options("info")
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn:{port}")
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout_s=20), "server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "server thread did not stop"


class PatientBody(BaseModel):
    """:class:`ringlog.schemas.Patient` as a pydantic body reads one: like the API's bodies, its
    validation errors print the values they refuse (the event model, a msgspec Struct, names
    fields only)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    date_of_birth: dt.date


def with_a_failing_route(app: FastAPI) -> FastAPI:
    """``GET /v1/test/crash``: an unhandled validation error, re-raised with a number in its
    message; uvicorn logs the traceback."""

    @app.get("/v1/test/crash", include_in_schema=False)
    async def crash() -> None:
        try:
            PatientBody.model_validate(CRASH_INPUT)
        except ValueError as exc:
            raise RuntimeError(f"no patient for {JANE}") from exc

    return app


# -- the story ----------------------------------------------------------------------------------


def webhook_body(event: str, call_id: str, call_ref: str) -> bytes:
    """Retell's webhook for JANE's call, naming her in everything it may."""
    call = retell_call(event) | {
        "call_id": call_id,
        "direction": "inbound",
        "from_number": JANE,
        "to_number": CLINIC,
        "metadata": {"call_ref": call_ref},
        "retell_llm_dynamic_variables": {"patient_name": NAME, "callback": CALLBACK},
    }
    if event != "call_started":
        said = f"My name is {NAME}, born {DOB_SAID}."
        call |= {
            "transcript": f"Agent: Hello!\nUser: {said}",
            "transcript_object": [{"role": "user", "content": said}],
        }
    if event == "call_analyzed":
        call["call_analysis"] = {
            "call_summary": f"{NAME} ({DOB}) booked a flu shot.",
            "user_sentiment": "Positive",
            "call_successful": True,
            "custom_analysis_data": {"patient_name": NAME, "date_of_birth": DOB},
        }
    return orjson.dumps({"event": event, "call": call})


async def play(url: str, http: httpx.AsyncClient) -> list[httpx.Response]:
    """The story against the served API; returns the answers that refused something."""
    caller = Caller(url, JANE)
    await caller.announce()  # Retell's signed inbound webhook
    call_ref = caller.metadata["call_ref"]

    hook = webhook_body("call_started", caller.call_id, call_ref)
    assert (await http.post("/v1/webhooks/retell", content=hook, headers=signed(hook))).is_success
    await book_until_the_date(caller)
    assert "booked" in (await finish_booking(caller)).lower()
    await caller.close_code()
    for event in ("call_ended", "call_analyzed"):
        hook = webhook_body(event, caller.call_id, call_ref)
        response = await http.post("/v1/webhooks/retell", content=hook, headers=signed(hook))
        assert response.status_code == 204, response.text

    call = {"to_number": JOHN, "from_number": CLINIC, "task_ref": "task-jane"}
    assert (await http.post("/v1/calls", json=call, headers=AUTH)).status_code == 202
    writeback = {"fields": {"callback_number": CALLBACK, "notes": f"{NAME} prefers mornings"}}
    written = await http.post("/v1/tasks/task-jane/field-writeback", json=writeback, headers=AUTH)
    assert written.status_code == 202, written.text
    incoming = {"from_number": JANE, "to_number": CLINIC, "notes": f"{NAME}, born {DOB}"}
    recorded = await http.post("/v1/tasks/incoming-call", json=incoming, headers=AUTH)
    assert recorded.status_code == 202, recorded.text

    refused = [
        await http.post("/v1/calls", json=call | {"to_number": f"{JANE} {NAME}"}, headers=AUTH),
        await http.post("/v1/calls", json=call | {"task_ref": f"{NAME}\x00{DOB}"}, headers=AUTH),
        await http.post("/v1/calls", json=call | {"patient_ref": LONG}, headers=AUTH),
        await http.get(f"/v1/sessions/{JANE}x", headers=AUTH),
    ]
    await eventually(
        lambda: http.get(f"/v1/sessions/{JANE}", headers=AUTH),
        lambda r: r.status_code == 200 and r.json()["status"] == "completed",
    )
    async with httpx.AsyncClient(base_url=url) as once:  # uvicorn drops the connection after
        refused.append(await once.get("/v1/test/crash"))
    assert [r.status_code for r in refused] == [422, 422, 422, 422, 500]
    return refused


@asynccontextmanager
async def story_topics(settings: Settings) -> AsyncIterator[Settings]:
    await ensure_topics(settings.kafka, TOPICS)
    try:
        yield settings
    finally:
        await delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS])


@pytest.fixture(name="story", scope="module")
async def _story(
    stack_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Story]:
    unique = uuid.uuid4().hex[:10]
    base = Settings.load()
    crm = tmp_path_factory.mktemp("privacy") / "crm.db"
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"p{unique}."}),
            "crm": CrmSettings(url=f"sqlite:///{crm}"),
        }
    )
    settings = recovery_settings(settings, unique)
    plain = with_database(settings, f"PV_{unique.upper()}")
    transcripts = with_database(settings, f"PT_{unique.upper()}", transcripts=True)
    async with story_topics(settings):
        with captured_logs() as out:
            async with folding_worker(settings), keeping_views(settings):
                app = with_a_failing_route(create_app(settings))
                with serving_as_in_production(app) as url:
                    async with httpx.AsyncClient(base_url=url) as http:
                        refused = await play(url, http)
            crm_store = CrmStore(settings.crm.url)
            try:
                await crm_runner(
                    settings, crm_store, group_id=f"g-{unique}-crm"
                ).run_until_caught_up()
            finally:
                crm_store.close()
            tables = []
            for target in (plain, transcripts):
                store = warehouse_store(target, login_timeout=10, network_timeout=30)
                try:
                    runner = make_runner(target, store, f"g-{unique}-{target.warehouse.database}")
                    await runner.run_until_caught_up()
                    tables.append(str(store.snapshot()))
                finally:
                    store.close()
        yield Story(out.getvalue(), tables[0], tables[1], refused)


# -- logs ---------------------------------------------------------------------------------------


def test_the_logs_of_a_whole_story_hold_no_number_name_or_date_of_birth(story: Story) -> None:
    lines = [orjson.loads(line) for line in story.log.splitlines()]
    assert lines, "nothing was logged"
    events = [str(line.get("event")) for line in lines]
    # the story was logged: uvicorn's traceback, a refused request, the dialog, the projections
    crash = [line for line in lines if str(line.get("event")).startswith("Exception in ASGI")]
    assert crash and crash[0]["logger"] == "uvicorn.error"
    assert "RuntimeError: no patient for +14*******01" in crash[0]["exception"]
    assert "input_value=<hidden>]" in crash[0]["exception"]
    assert events.count("request refused") == 4
    assert any(
        line.get("logger", "").startswith("uvicorn") for line in lines if line is not crash[0]
    )
    for number in NUMBERS:
        for form in forms(number):
            assert form not in story.log, form
    for personal in PERSONAL:
        assert personal not in story.log, personal


def test_422_answers_name_the_field_but_never_echo_the_value(story: Story) -> None:
    for response in story.refused[:4]:
        body = response.text
        assert "x" * 200 not in body and NAME not in body and JANE not in body, body
        for error in response.json()["detail"]:
            assert set(error) == {"loc", "msg", "type"}
    assert ["body", "patient_ref"] in [e["loc"] for e in story.refused[2].json()["detail"]]


# -- the warehouse ------------------------------------------------------------------------------


def test_the_warehouse_holds_no_number_name_or_date_of_birth_by_default(story: Story) -> None:
    tables = story.warehouse
    assert "session.completed" in tables and "task.field_writeback" in tables
    for number in NUMBERS:
        for form in forms(number):
            assert form not in tables, form
    for personal in PERSONAL:
        assert personal not in tables, personal
    assert "booked a flu shot" not in tables and "prefers mornings" not in tables


def test_with_transcripts_the_warehouse_keeps_what_was_said_but_no_number(story: Story) -> None:
    tables = story.with_transcripts
    for kept in (NAME, DOB, f"My name is {NAME}", "prefers mornings"):
        assert kept in tables, kept
    for number in NUMBERS:
        assert number not in tables, number


# -- the edge -----------------------------------------------------------------------------------


@pytest.fixture(name="client")
async def _client(topics: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from tests.integration.test_api_ingest import api_settings

    app = create_app(api_settings(topics))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ringlog") as client:
            yield client


CALL = {"to_number": JOHN, "from_number": CLINIC}


@pytest.mark.parametrize(
    "changes",
    [
        {"to_number": LONG},
        {"task_ref": LONG},
        {"metadata": {"note": LONG}},
        {"metadata": {LONG: "v"}},
        {"surprise": LONG},
        {LONG: 1},
    ],
    ids=["number", "ref", "metadata value", "metadata key", "unknown field", "unknown name"],
)
async def test_a_422_does_not_echo_a_10000_character_value(
    client: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    response = await client.post("/v1/calls", json=CALL | changes, headers=AUTH)
    assert response.status_code == 422
    assert "x" * 200 not in response.text
    assert len(response.content) < 2_000


async def test_a_422_on_a_path_or_header_does_not_echo_it(client: httpx.AsyncClient) -> None:
    long_id = await client.post(f"/v1/tasks/{LONG}/field-writeback", json={}, headers=AUTH)
    key = await client.post("/v1/calls", json=CALL, headers=AUTH | {"Idempotency-Key": LONG})
    for response in (long_id, key):
        assert response.status_code == 422 and "x" * 200 not in response.text


@pytest.mark.parametrize(
    "changes",
    [
        {"task_ref": "t\x00"},
        {"task_ref": "t" * 129},
        {"patient_ref": "p\x00"},
        {"patient_ref": "p" * 129},
        {"metadata": {"call_ref": "c" * 129}},
        {"metadata": {"call_ref": "c\x00"}},
        {"metadata": {"note": "n\x00"}},
    ],
)
async def test_nul_and_over_long_refs_are_422_and_append_nothing(
    client: httpx.AsyncClient, topics: Settings, changes: dict[str, Any]
) -> None:
    response = await client.post("/v1/calls", json=CALL | changes, headers=AUTH)
    assert response.status_code == 422, response.text
    field = next(iter(changes))
    assert any(field in error["loc"] for error in response.json()["detail"])
    assert await records(topics, "calls", 0) == []


async def test_task_texts_with_nul_are_422(client: httpx.AsyncClient) -> None:
    bodies = {
        "/v1/tasks/t1/field-writeback": {"fields": {"notes": "n\x00"}},
        "/v1/tasks/t1/reschedule": {"scheduled_at": "2999-01-01T00:00:00Z", "call_ref": "c" * 129},
        "/v1/tasks/incoming-call": CALL | {"from_number": JANE, "notes": "n\x00"},
    }
    for path, body in bodies.items():
        response = await client.post(path, json=body, headers=AUTH)
        assert response.status_code == 422, (path, response.text)


async def test_a_retell_webhook_with_an_unusable_call_id_is_quarantined(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """Retell cannot be refused like an API caller: its body is answered 400 and kept on the
    quarantine topic, as every signed body ringlog cannot use."""
    body = orjson.dumps(
        {"event": "call_started", "call": retell_call("call_started") | {"call_id": "c" * 200}}
    )
    response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 400 and "call_id" in response.text
    assert await records(topics, "calls", 0) == []
    (kept,) = await records(topics, "quarantine", 1)
    assert kept.value == body


# -- the phone-hash key -------------------------------------------------------------------------


def test_the_session_stack_is_the_embedded_stack(stack_home: Path) -> None:
    settings = Settings.load()
    assert on_embedded_stack(settings)
    require_phone_hash_key(settings)  # the default key is fine here


@pytest.mark.parametrize("command", ["api", "worker", "projector"])
def test_services_refuse_the_default_hash_key_outside_the_embedded_stack(
    stack_home: Path, command: str
) -> None:
    """With a warehouse given by the environment and no key, each service exits 2 at once
    with a message naming the setting."""
    env = {k: v for k, v in os.environ.items() if k != "RINGLOG_SNOWFLAKE_PHONE_HASH_KEY"}
    env |= {
        "RINGLOG_SNOWFLAKE_HOST": "acme.snowflakecomputing.com",
        "RINGLOG_SNOWFLAKE_PORT": "443",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ringlog", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "RINGLOG_SNOWFLAKE_PHONE_HASH_KEY" in done.stderr.replace("\n", "")
    assert time.monotonic() - started < 30
