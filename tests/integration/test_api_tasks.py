"""The business task API against the real broker and Redis, and the CRM rows it leads to."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ringlog.api.app import create_app
from ringlog.api.routes import tasks
from ringlog.config import Settings
from ringlog.devstack.ports import free_port
from ringlog.projections.base import RetryPolicy
from ringlog.projections.crm import crm_runner
from ringlog.projections.crm.schema import TASKS
from ringlog.projections.crm.store import CrmStore
from ringlog.schemas import (
    Envelope,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
)
from ringlog.streams.consumer import LogRecord
from tests.integration.test_api_ingest import AUTH, api_settings
from tests.support.logread import records
from tests.support.worker_runtime import folding_worker

pytestmark = pytest.mark.integration

CALLER, CLINIC = "+14155550123", "+14155559876"


def with_tasks(app: FastAPI) -> FastAPI:
    """``app`` with the task routes (added here until app.py registers them itself)."""
    if not any(getattr(r, "path", "").startswith("/v1/tasks") for r in app.routes):
        app.include_router(tasks.router)
    return app


@pytest.fixture(name="app")
async def _app(topics: Settings) -> AsyncIterator[FastAPI]:
    app = with_tasks(create_app(api_settings(topics)))
    # the task index reads the worker's view, kept by its runtime
    async with folding_worker(topics), app.router.lifespan_context(app):
        yield app


async def task_records(settings: Settings) -> list[LogRecord]:
    """Every record on this test's ``tasks`` topic."""
    return await records(settings.kafka, settings.topic("tasks"))


def only_event(found: list[LogRecord]) -> Envelope:
    """The one decoded event of ``found``."""
    [record] = found
    assert record.envelope is not None, record.error
    assert record.key == record.envelope.key.encode()
    return record.envelope


def in_an_hour() -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)


async def writeback(client: httpx.AsyncClient, task_id: str, **fields: Any) -> httpx.Response:
    return await client.post(
        f"/v1/tasks/{task_id}/field-writeback", json={"fields": fields}, headers=AUTH
    )


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tasks/t1/field-writeback", {"fields": {"status": "open"}}),
        ("POST", "/v1/tasks/t1/reschedule", {"scheduled_at": "2999-01-01T00:00:00Z"}),
        ("DELETE", "/v1/tasks/t1", None),
        ("POST", "/v1/tasks/incoming-call", {"from_number": CALLER, "to_number": CLINIC}),
    ],
)
async def test_every_route_needs_an_api_key(
    client: httpx.AsyncClient, topics: Settings, method: str, path: str, body: object
) -> None:
    """Without a key, or with an unknown one, every task route is 401 and writes nothing."""
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, response.text
    assert await task_records(topics) == []


# -- field writeback ----------------------------------------------------------------------------


async def test_field_writeback_appends_one_event_with_the_fields(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    body = {
        "fields": {"status": "scheduled", "due_date": "2024-10-08", "notes": None},
        "actor": "nurse-4",
    }
    response = await client.post("/v1/tasks/task-9/field-writeback", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["task_id"] == "task-9"

    envelope = only_event(await task_records(topics))
    assert str(envelope.event_id) == answer["event_id"]
    assert envelope.key == "task-9"
    payload = envelope.payload
    assert isinstance(payload, TaskFieldWriteback)
    assert (payload.task_id, payload.actor) == ("task-9", "nurse-4")
    assert payload.fields == {"status": "scheduled", "due_date": "2024-10-08", "notes": None}


async def test_unknown_fields_are_422_naming_each_and_nothing_is_written(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    response = await writeback(client, "task-9", status="open", foo=1, bar="x")
    assert response.status_code == 422
    named = {
        error["loc"][-1]
        for error in response.json()["detail"]
        if error["type"] == "extra_forbidden"
    }
    assert named == {"foo", "bar"}
    assert await task_records(topics) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"fields": {}}, "at least one field"),
        ({"fields": {"status": "bogus"}}, "status"),
        ({"fields": {"callback_number": "555-0123"}}, "callback_number"),
        ({"fields": {"max_attempts": 99}}, "max_attempts"),
        ({}, "fields"),
        ({"fields": {"status": "open"}, "surprise": 1}, "surprise"),
    ],
)
async def test_invalid_writebacks_are_422(
    client: httpx.AsyncClient, topics: Settings, body: dict[str, Any], expected: str
) -> None:
    response = await client.post("/v1/tasks/task-9/field-writeback", json=body, headers=AUTH)
    assert response.status_code == 422
    assert expected in response.text
    assert await task_records(topics) == []


async def test_a_malformed_task_id_is_422(client: httpx.AsyncClient, topics: Settings) -> None:
    response = await writeback(client, "-" + "x" * 200, status="open")
    assert response.status_code == 422
    assert await task_records(topics) == []


# -- reschedule ---------------------------------------------------------------------------------


async def test_reschedule_appends_the_new_time(client: httpx.AsyncClient, topics: Settings) -> None:
    when = in_an_hour().astimezone(dt.timezone(dt.timedelta(hours=2)))
    body = {"scheduled_at": when.isoformat(), "call_ref": "call_abc", "actor": "nurse-4"}
    response = await client.post("/v1/tasks/task-9/reschedule", json=body, headers=AUTH)
    assert response.status_code == 202, response.text

    envelope = only_event(await task_records(topics))
    assert str(envelope.event_id) == response.json()["event_id"]
    payload = envelope.payload
    assert isinstance(payload, TaskRescheduled)
    assert (payload.task_id, payload.call_ref, payload.scheduled_at) == (
        "task-9",
        "call_abc",
        when,
    )
    assert payload.scheduled_at.utcoffset() == dt.timedelta(0)
    assert envelope.correlation_id == "call_abc"


@pytest.mark.parametrize(
    "scheduled_at",
    [
        "2020-01-01T09:00:00Z",
        (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(),
        "2999-01-01T09:00:00",  # naive
        "tomorrow",
    ],
)
async def test_reschedule_to_the_past_or_a_naive_time_is_422(
    client: httpx.AsyncClient, topics: Settings, scheduled_at: str
) -> None:
    body = {"scheduled_at": scheduled_at}
    response = await client.post("/v1/tasks/task-9/reschedule", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert "scheduled_at" in response.text
    assert await task_records(topics) == []


# -- delete -------------------------------------------------------------------------------------


async def test_deleting_an_unknown_task_is_404(client: httpx.AsyncClient, topics: Settings) -> None:
    response = await client.delete("/v1/tasks/nobody-knows", headers=AUTH)
    assert response.status_code == 404
    assert "nobody-knows" in response.json()["detail"]
    assert await task_records(topics) == []


async def test_deleting_a_known_task_appends_one_event_then_409(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """404 while unknown; a writeback makes it known (the index catches up); a second delete
    of a deleted task is 409."""
    assert (await client.delete("/v1/tasks/task-5", headers=AUTH)).status_code == 404
    assert (await writeback(client, "task-5", status="open")).status_code == 202

    response = await client.request(
        "DELETE",
        "/v1/tasks/task-5",
        json={"reason": "patient moved away", "actor": "nurse-4"},
        headers=AUTH,
    )
    assert response.status_code == 202, response.text
    again = await client.delete("/v1/tasks/task-5", headers=AUTH)
    assert again.status_code == 409
    assert "already deleted" in again.json()["detail"]

    found = await task_records(topics)
    assert [r.envelope.type for r in found if r.envelope] == [
        "task.field_writeback",
        "task.deleted",
    ]
    deleted = found[1].envelope
    assert deleted is not None
    assert str(deleted.event_id) == response.json()["event_id"]
    assert isinstance(deleted.payload, TaskDeleted)
    assert (deleted.payload.reason, deleted.payload.actor) == ("patient moved away", "nurse-4")


async def test_a_task_named_by_a_call_request_can_be_deleted(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """A call request naming the task (appended by POST /v1/calls) makes the task known."""
    call = {"to_number": CALLER, "from_number": CLINIC, "task_ref": "outreach-77"}
    assert (await client.post("/v1/calls", json=call, headers=AUTH)).status_code == 202
    response = await client.delete("/v1/tasks/outreach-77", headers=AUTH)
    assert response.status_code == 202, response.text
    assert isinstance(only_event(await task_records(topics)).payload, TaskDeleted)


async def test_a_task_written_by_another_api_process_can_be_deleted(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """The index reads the log, not its own process' writes: another app's event counts."""
    assert (await client.delete("/v1/tasks/elsewhere", headers=AUTH)).status_code == 404
    other = with_tasks(create_app(api_settings(topics)))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as second:
            assert (await writeback(second, "elsewhere", priority="high")).status_code == 202
    assert (await client.delete("/v1/tasks/elsewhere", headers=AUTH)).status_code == 202


# -- incoming call ------------------------------------------------------------------------------


async def test_incoming_call_without_an_id_gets_a_generated_one(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    body = {"from_number": CALLER, "to_number": CLINIC, "patient_ref": "pat-7", "notes": "flu"}
    response = await client.post("/v1/tasks/incoming-call", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["task_id"] == f"task_{uuid.UUID(answer['event_id']).hex}"

    envelope = only_event(await task_records(topics))
    assert envelope.key == answer["task_id"]
    payload = envelope.payload
    assert isinstance(payload, TaskIncomingCall)
    assert (payload.task_id, payload.from_number, payload.to_number) == (
        answer["task_id"],
        CALLER,
        CLINIC,
    )
    assert (payload.patient_ref, payload.notes) == ("pat-7", "flu")


async def test_incoming_call_keeps_a_given_id_and_refuses_bad_numbers(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    body = {"task_id": "in-1", "from_number": CALLER, "to_number": CLINIC}
    response = await client.post("/v1/tasks/incoming-call", json=body, headers=AUTH)
    assert response.status_code == 202
    assert response.json()["task_id"] == "in-1"
    for field in ("from_number", "to_number"):
        bad = body | {field: "415-555-0123"}
        refused = await client.post("/v1/tasks/incoming-call", json=bad, headers=AUTH)
        assert refused.status_code == 422
        assert [e["loc"][-1] for e in refused.json()["detail"]] == [field]
    assert only_event(await task_records(topics)).key == "in-1"


# -- idempotency --------------------------------------------------------------------------------


async def test_idempotency_key_gives_the_same_answer_and_one_event(
    client: httpx.AsyncClient, topics: Settings, unique: str
) -> None:
    headers = AUTH | {"Idempotency-Key": f"crm-{unique}"}
    body = {"from_number": CALLER, "to_number": CLINIC}
    first = await client.post("/v1/tasks/incoming-call", json=body, headers=headers)
    second = await client.post("/v1/tasks/incoming-call", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    other = await client.post(
        "/v1/tasks/incoming-call", json=body | {"notes": "different"}, headers=headers
    )
    assert other.status_code == 422
    elsewhere = await client.post(
        "/v1/tasks/t1/field-writeback", json={"fields": {"status": "open"}}, headers=headers
    )
    assert elsewhere.status_code == 422
    envelope = only_event(await task_records(topics))
    assert str(envelope.event_id) == first.json()["event_id"]


async def test_a_repeated_delete_with_its_idempotency_key_is_202_again(
    client: httpx.AsyncClient, topics: Settings, unique: str
) -> None:
    """A client retrying a delete whose answer it lost gets 202, not 409; one event."""
    headers = AUTH | {"Idempotency-Key": f"del-{unique}"}
    unknown = await client.delete("/v1/tasks/task-3", headers=headers)
    assert unknown.status_code == 404  # a refusal releases the key
    assert (await writeback(client, "task-3", status="open")).status_code == 202
    first = await client.delete("/v1/tasks/task-3", headers=headers)
    second = await client.delete("/v1/tasks/task-3", headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert [r.envelope.type for r in await task_records(topics) if r.envelope] == [
        "task.field_writeback",
        "task.deleted",
    ]


# -- broker down --------------------------------------------------------------------------------


async def test_without_a_broker_every_route_is_503(settings: Settings) -> None:
    kafka = settings.kafka.model_copy(
        update={
            "bootstrap": f"127.0.0.1:{free_port()}",
            "append_timeout_s": 0.5,
            "request_timeout_ms": 1000,
        }
    )
    app = with_tasks(create_app(api_settings(settings.model_copy(update={"kafka": kafka}))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            for response in (
                await writeback(client, "t1", status="open"),
                await client.delete("/v1/tasks/t1", headers=AUTH),
            ):
                assert response.status_code == 503, response.text
                assert "Retry-After" in response.headers


# -- CRM ----------------------------------------------------------------------------------------


async def test_the_crm_projection_shows_the_tasks(
    client: httpx.AsyncClient, topics: Settings, tmp_path: Path, group_id: str
) -> None:
    """Incoming call, writebacks, reschedule and delete become one crm_tasks row each."""
    incoming = await client.post(
        "/v1/tasks/incoming-call",
        json={"from_number": CALLER, "to_number": CLINIC, "patient_ref": "pat-7"},
        headers=AUTH,
    )
    new_task = incoming.json()["task_id"]
    assert (await writeback(client, new_task, status="open", priority="high")).status_code == 202
    assert (await writeback(client, new_task, status="scheduled")).status_code == 202
    when = in_an_hour()
    moved = await client.post(
        f"/v1/tasks/{new_task}/reschedule",
        json={"scheduled_at": when.isoformat()},
        headers=AUTH,
    )
    assert moved.status_code == 202
    assert (await writeback(client, "gone", notes="wrong number")).status_code == 202
    assert (await client.delete("/v1/tasks/gone", headers=AUTH)).status_code == 202

    store = CrmStore(f"sqlite:///{tmp_path}/crm.db")
    try:
        runner = crm_runner(
            topics,
            store,
            group_id=group_id,
            registry=CollectorRegistry(),
            retry=RetryPolicy(backoff_s=0.01, backoff_max_s=0.05),
        )
        await runner.run_until_caught_up()
        columns = [c.name for c in TASKS.columns]
        found = {
            row[0]: dict(zip(columns, row, strict=True)) for row in store.snapshot()["crm_tasks"]
        }
        assert set(found) == {new_task, "gone"}
        task = found[new_task]
        assert orjson.loads(task["fields"]) == {"status": "scheduled", "priority": "high"}
        assert (task["incoming_from"], task["incoming_to"], task["patient_ref"]) == (
            CALLER,
            CLINIC,
            "pat-7",
        )
        assert task["scheduled_at"].replace(tzinfo=dt.UTC) == when  # SQLite gives naive UTC
        assert (task["deleted"], task["last_event_type"]) == (False, "task.rescheduled")
        gone = found["gone"]
        assert (gone["deleted"], gone["last_event_type"]) == (True, "task.deleted")
        assert orjson.loads(gone["fields"]) == {"notes": "wrong number"}
    finally:
        store.close()
