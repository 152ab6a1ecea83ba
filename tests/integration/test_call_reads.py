"""The read API answers from views, never from the log: ``GET /v1/calls/{ref}`` from the
worker's, ``/events`` and ``/v1/sessions/{phone}`` from the timeline and sessions views.

A read right after the 202 of ``POST /v1/calls`` sees the request (the API waits, bounded, for
the view to reach the write), through the same API process or, with the write's
``X-Ringlog-Position`` passed back as ``X-Ringlog-After``, through another; every answer names
the position it reflects; with the view caught up, reads are served with no request to the
broker at all; with the worker stopped, a read answers within its bound and says it is behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from ringlog.config import Settings
from ringlog.projections.sql import sql_engine
from ringlog.schemas import CallDispatched, CallRequested, Envelope
from ringlog.schemas.sessions import SessionStarted
from ringlog.streams.head import ReadAfter
from ringlog.streams.producer import LogProducer
from tests.integration.test_api_ingest import AUTH, api_settings
from tests.support.logread import eventually
from tests.support.worker_runtime import folding_worker, keeping_views

pytestmark = pytest.mark.integration

BODY = {"to_number": "+14155550123", "from_number": "+14155559876"}


async def backlog(settings: Settings, count: int) -> None:
    """Put ``count`` other calls' requests on the log."""
    async with LogProducer(settings.kafka) as log:
        await log.append_many(
            [
                Envelope.new(
                    CallRequested(call_ref=f"old-{uuid.uuid4().hex[:10]}", agent_id="a", **BODY),
                    source="test",
                )
                for _ in range(count)
            ]
        )


async def test_a_read_right_after_the_write_sees_it(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    await backlog(topics, 5_000)
    async with folding_worker(topics) as worker:
        await worker.caught_up()
        for _ in range(3):
            posted = await client.post("/v1/calls", json=BODY, headers=AUTH)
            assert posted.status_code == 202
            ref = posted.json()["call_ref"]
            read = await client.get(f"/v1/calls/{ref}", headers=AUTH)
            assert read.status_code == 200, (read.text, dict(read.headers))
            assert read.json()["call_ref"] == ref and read.json()["dispatch"] == "pending"
            assert "X-Ringlog-Behind" not in read.headers
            position = read.headers["X-Ringlog-Position"]
            assert position.count(",") == 1 and topics.topic("calls") in position
            (wrote_at, written), *more = ReadAfter.parse(
                posted.headers["X-Ringlog-Position"]
            ).positions.items()
            assert not more and wrote_at[0] == topics.topic("calls")
            assert ReadAfter.parse(position).positions[wrote_at] >= written


@pytest.fixture
async def other_api(topics: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process on the same topics (its own producer, its own views)."""
    from ringlog.api.app import create_app

    app = create_app(api_settings(topics))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as other:
            yield other


async def test_a_write_through_another_api_is_seen_with_its_position(
    client: httpx.AsyncClient, other_api: httpx.AsyncClient, topics: Settings
) -> None:
    async with folding_worker(topics) as worker:
        await worker.caught_up()
        for _ in range(3):
            posted = await other_api.post("/v1/calls", json=BODY, headers=AUTH)
            assert posted.status_code == 202
            ref, wrote = posted.json()["call_ref"], posted.headers["X-Ringlog-Position"]
            read = await client.get(f"/v1/calls/{ref}", headers={**AUTH, "X-Ringlog-After": wrote})
            assert read.status_code == 200, (read.text, dict(read.headers))
            assert read.json()["call_ref"] == ref and "X-Ringlog-Behind" not in read.headers
        posted = await other_api.post("/v1/calls", json=BODY, headers=AUTH)
        ref = posted.json()["call_ref"]
        read = await client.get(f"/v1/calls/{ref}", headers={**AUTH, "X-Ringlog-After": "head"})
        assert read.status_code == 200 and read.json()["call_ref"] == ref


async def test_a_malformed_position_is_refused(client: httpx.AsyncClient) -> None:
    for bad in ("calls", "calls/x:1", "calls/1:-4", "/1:4", "calls/1:4,,"):
        read = await client.get("/v1/calls/c-1", headers={**AUTH, "X-Ringlog-After": bad})
        assert read.status_code == 422, (bad, read.text)
        assert "X-Ringlog-After" in read.text


async def test_reads_fetch_nothing_from_the_log(
    client: httpx.AsyncClient, topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await backlog(topics, 5_000)
    posted = await client.post("/v1/calls", json=BODY, headers=AUTH)
    ref = posted.json()["call_ref"]
    phone = BODY["to_number"]
    async with LogProducer(topics.kafka) as log:
        await log.append(
            Envelope.new(
                SessionStarted(session_id="s-1", phone=phone, call_ref=ref, stage="name"),
                source="test",
            )
        )
    async with folding_worker(topics), keeping_views(topics):
        for path in (f"/v1/calls/{ref}", f"/v1/calls/{ref}/events", f"/v1/sessions/{phone}"):
            await eventually(
                lambda path=path: client.get(path, headers=AUTH),  # type: ignore[misc]
                lambda r: r.status_code == 200 and "X-Ringlog-Behind" not in r.headers,
            )

    def no_fetch(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the read path fetched records from the log")

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", no_fetch)
    monkeypatch.setattr(AIOKafkaConsumer, "getone", no_fetch)
    monkeypatch.setattr(AIOKafkaConsumer, "end_offsets", no_fetch)  # nor asks where it ends
    started = time.monotonic()
    for _ in range(20):
        read = await client.get(f"/v1/calls/{ref}", headers=AUTH)
        assert read.status_code == 200 and "X-Ringlog-Behind" not in read.headers
        events = await client.get(f"/v1/calls/{ref}/events", headers=AUTH)
        assert [e["type"] for e in events.json()] == ["call.requested"]
        assert topics.topic("abt") in events.headers["X-Ringlog-Position"]
        session = await client.get(f"/v1/sessions/{phone}", headers=AUTH)
        assert session.json()["session_id"] == "s-1" and session.json()["stage"] == "name"
    assert (await client.get("/v1/calls/never-asked", headers=AUTH)).status_code == 404
    assert (await client.get("/v1/calls/never-asked/events", headers=AUTH)).status_code == 404
    assert (await client.get("/v1/sessions/+14155550000", headers=AUTH)).status_code == 404
    assert time.monotonic() - started < 10


async def test_a_view_behind_the_log_answers_in_time_and_says_so(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    posted = await client.post("/v1/calls", json=BODY, headers=AUTH)
    ref = posted.json()["call_ref"]
    async with folding_worker(topics):
        await eventually(
            lambda: client.get(f"/v1/calls/{ref}", headers=AUTH), lambda r: r.status_code == 200
        )
    async with LogProducer(topics.kafka) as log:  # folded by no one: the worker is stopped
        at = await log.append(
            Envelope.new(
                CallDispatched(call_ref=ref, retell_call_id="r-1", agent_id="a"), source="test"
            )
        )
    # not this API's write: seen only when named, or with everything on the log
    for after in ("head", f"{at.topic}/{at.partition}:{at.offset + 1}"):
        started = time.monotonic()
        read = await client.get(f"/v1/calls/{ref}", headers={**AUTH, "X-Ringlog-After": after})
        assert time.monotonic() - started < 5
        assert read.status_code == 200 and read.headers["X-Ringlog-Behind"] == "true"
        assert read.json()["dispatch"] == "pending", "the view's state, not the log's"


async def test_a_read_while_the_views_database_is_down_is_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The views' database gone after start: each read answers 503 with Retry-After, naming
    neither the database's address nor its credentials, not a bare 500."""
    views = app.state.views
    engines = views.worker.engine, views.store.engine
    down = sql_engine("postgresql+psycopg://ringlog:s3cret@127.0.0.1:1/views")
    views.worker.engine, views.store.engine = down, down
    try:
        for path in ("/v1/calls/c-1", "/v1/calls/c-1/events", "/v1/sessions/+14155550123"):
            read = await client.get(path, headers=AUTH)
            assert read.status_code == 503, (path, read.status_code, read.text)
            assert read.headers.get("Retry-After"), path
            assert "s3cret" not in read.text and "127.0.0.1" not in read.text, read.text
    finally:
        views.worker.engine, views.store.engine = engines
        down.dispose()


async def test_the_api_starts_and_ingests_while_the_views_database_is_down(
    topics: Settings,
) -> None:
    """Ingest needs only the broker: with the views' database unreachable at start, the API
    starts, accepts a call request (202), and answers its read 503 until the database is back."""
    from ringlog.api.app import create_app

    settings = api_settings(topics)
    down = "postgresql+psycopg://ringlog:s3cret@127.0.0.1:1/views"
    app = create_app(
        settings.model_copy(update={"crm": settings.crm.model_copy(update={"url": down})})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://down") as client:
            posted = await client.post("/v1/calls", json=BODY, headers=AUTH)
            assert posted.status_code == 202, posted.text
            read = await client.get(f"/v1/calls/{posted.json()['call_ref']}", headers=AUTH)
            assert read.status_code == 503 and read.headers.get("Retry-After"), read.text
