"""The ingest API against the real broker and Redis: a 2xx means the event is on Kafka."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from ringlog.api.app import create_app
from ringlog.api.signature import sign
from ringlog.config import ApiSettings, RetellSettings, Settings
from ringlog.schemas import CallRequested, RetellCallInbound
from ringlog.schemas.retell import RetellCallEnded, RetellCallStarted
from ringlog.streams.consumer import LogConsumer, LogRecord
from ringlog.streams.quarantine import HEADER_REASON
from tests.support.examples import REF, retell_call
from tests.support.retell_double import RETELL_KEY

pytestmark = pytest.mark.integration

API_KEY = "upstream-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def api_settings(settings: Settings) -> Settings:
    """The test's settings with a Retell key and an API key configured."""
    return settings.model_copy(
        update={
            "retell": RetellSettings(api_key=RETELL_KEY),
            "api": ApiSettings(keys=(API_KEY,), max_body_bytes=64_000),
        }
    )


def signed(body: bytes, *, key: str = RETELL_KEY, skew_s: int = 0) -> dict[str, str]:
    """Headers Retell would send for ``body``."""
    now_ms = int(time.time() * 1000) + skew_s * 1000
    return {"x-retell-signature": sign(body, key, now_ms), "content-type": "application/json"}


def webhook(event: str = "call_started", *, key: str = "call") -> bytes:
    """A compact JSON webhook body like Retell's."""
    return orjson.dumps({"event": event, key: retell_call(event)})


async def records(settings: Settings, topic: str, expected: int) -> list[LogRecord]:
    """Read the whole topic: until ``expected`` records arrived, then one more empty poll."""
    found: list[LogRecord] = []
    async with LogConsumer(settings.kafka, [settings.topic(topic)], group_id=None) as consumer:
        for _ in range(40):
            batch = await consumer.getmany(timeout_ms=250)
            found.extend(batch.records)
            if len(found) >= expected and not batch.records:
                break
    return found


async def test_signed_webhook_lands_once_with_the_raw_payload(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """A signed call_started is 204 and exactly one record whose payload is the body as sent."""
    body = webhook("call_started")
    response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 204, response.text

    found = await records(topics, "calls", 1)
    assert len(found) == 1
    record = found[0]
    assert record.key == REF.encode()
    assert orjson.loads(record.value)["payload"] == orjson.loads(body)
    assert record.envelope is not None
    assert isinstance(record.envelope.payload, RetellCallStarted)
    assert record.envelope.correlation_id == REF


async def test_the_body_is_kept_byte_for_byte(client: httpx.AsyncClient, topics: Settings) -> None:
    """Whitespace and escapes as Retell sent them: the record embeds the signed bytes unchanged."""
    note = "caf\u00e9 \U0001f489"
    call = retell_call("call_ended") | {"note": note}
    body = orjson.dumps({"event": "call_ended", "call": call}, option=orjson.OPT_INDENT_2)
    body = body.replace("é".encode(), b"\\u00e9")
    response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 204, response.text
    (record,) = await records(topics, "calls", 1)
    assert b'"payload":' + body + b"}" in record.value
    assert record.envelope is not None
    payload = record.envelope.payload
    assert isinstance(payload, RetellCallEnded)
    assert payload.to_wire()["call"]["note"] == note  # kept beside the typed view


async def test_duplicate_deliveries_are_appended_as_facts(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """The same delivery twice is two records with the same dedupe key (consumers dedupe)."""
    body = webhook("call_ended")
    for _ in range(2):
        response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
        assert response.status_code == 204
    found = await records(topics, "calls", 2)
    keys = [r.envelope.payload.dedupe_key() for r in found if r.envelope]  # type: ignore[attr-defined]
    assert len(keys) == 2 and len(set(keys)) == 1


async def test_legacy_data_key_is_accepted_and_kept_as_written(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """A body with `data` is stored as v1 exactly as sent and read back as v2 with `call`."""
    body = webhook("call_ended", key="data")
    response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 204, response.text
    (record,) = await records(topics, "calls", 1)
    stored = orjson.loads(record.value)
    assert stored["schema_version"] == 1
    assert stored["payload"] == orjson.loads(body)
    assert dict(record.headers)["ringlog-version"] == b"1"
    assert record.envelope is not None
    payload = record.envelope.payload
    assert isinstance(payload, RetellCallEnded)
    assert payload.call.call_id == orjson.loads(body)["data"]["call_id"]


@pytest.mark.parametrize(
    ("case", "headers_for"),
    [
        ("tampered body", lambda b: signed(b.replace(b"user_hangup", b"agent_hangup"))),
        ("stale timestamp", lambda b: signed(b, skew_s=-301)),
        ("future timestamp", lambda b: signed(b, skew_s=301)),
        ("wrong key", lambda b: signed(b, key="someone-else")),
        ("missing header", lambda b: {"content-type": "application/json"}),
        ("garbled header", lambda b: {"x-retell-signature": "v=1,d=zz"}),
    ],
)
async def test_bad_signatures_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, topics: Settings, case: str, headers_for: object
) -> None:
    """Each kind of bad signature is 401, and neither calls nor quarantine gets a record."""
    body = webhook("call_ended")
    response = await client.post(
        "/v1/webhooks/retell",
        content=body,
        headers=headers_for(body),  # type: ignore[operator]
    )
    assert response.status_code == 401, case
    assert await records(topics, "calls", 0) == []
    assert await records(topics, "quarantine", 0) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event": "call_started", "call": ', "not valid JSON"),
        (orjson.dumps({"event": "call_started", "call": {"agent_id": "a"}}), "call.call_id"),
        (orjson.dumps({"event": "call_exploded", "call": {"call_id": "x"}}), "unknown event"),
        (orjson.dumps({"event": "call_started"}), "missing call object"),
        (b"[1, 2, 3]", "JSON object"),
    ],
)
async def test_signed_but_malformed_is_400_and_quarantined_once(
    client: httpx.AsyncClient, topics: Settings, body: bytes, reason: str
) -> None:
    """A signed unusable body is 400 with a clear message; its raw bytes and reason are kept."""
    response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    (kept,) = await records(topics, "quarantine", 1)
    assert kept.value == body
    assert reason in dict(kept.headers)[HEADER_REASON].decode()
    assert await records(topics, "calls", 0) == []


async def test_inbound_webhook_answers_with_a_call_ref_and_appends(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """call_inbound is appended and answered 200 with metadata carrying the call ref."""
    body = orjson.dumps(
        {
            "event": "call_inbound",
            "call_inbound": {
                "from_number": "+14155550123",
                "to_number": "+14155559876",
                "call_id": "c_in_1",
            },
        }
    )
    response = await client.post("/v1/webhooks/retell/inbound", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    answer = response.json()["call_inbound"]
    assert answer["metadata"]["call_ref"] == "retell:c_in_1"
    (record,) = await records(topics, "calls", 1)
    assert record.key == b"retell:c_in_1"
    assert record.envelope is not None
    assert isinstance(record.envelope.payload, RetellCallInbound)


CALL = {"to_number": "+14155550123", "from_number": "+14155559876", "metadata": {"k": "v"}}


async def test_call_request_needs_an_api_key(client: httpx.AsyncClient, topics: Settings) -> None:
    """Without a key, or with an unknown one, POST /v1/calls is 401 and writes nothing."""
    assert (await client.post("/v1/calls", json=CALL)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post("/v1/calls", json=CALL, headers=wrong)).status_code == 401
    assert await records(topics, "calls", 0) == []


async def test_an_address_that_presents_too_many_wrong_keys_is_held_off(topics: Settings) -> None:
    """With the bound at three wrong keys, a fourth request from the same address is 429 with
    ``Retry-After``, its right key included, and so is the console's sign-in form (no cookie);
    the right key from another address still places a call."""
    settings = api_settings(topics)
    bound = settings.api.model_copy(update={"max_key_failures": 3})
    app = create_app(settings.model_copy(update={"api": bound}))
    async with app.router.lifespan_context(app):
        here = httpx.ASGITransport(app=app, client=("10.0.0.7", 50000))
        there = httpx.ASGITransport(app=app, client=("10.0.0.8", 50000))
        async with (
            httpx.AsyncClient(transport=here, base_url="http://ringlog") as client,
            httpx.AsyncClient(transport=there, base_url="http://ringlog") as other,
        ):
            wrong = {"Authorization": "Bearer nope"}
            for _ in range(3):
                assert (await client.post("/v1/calls", json=CALL, headers=wrong)).status_code == 401
            held = await client.post("/v1/calls", json=CALL, headers=AUTH)
            assert held.status_code == 429 and 1 <= int(held.headers["Retry-After"]) <= 60
            form = await client.post("/console/sign-in", data={"key": API_KEY})
            assert form.status_code == 429 and "set-cookie" not in form.headers
            assert "try again in" in form.text and form.headers["Retry-After"]
            assert (await other.post("/v1/calls", json=CALL, headers=AUTH)).status_code == 202
    assert len(await records(topics, "calls", 1)) == 1


async def test_call_request_is_202_after_the_event_is_durable(
    client: httpx.AsyncClient, topics: Settings
) -> None:
    """202 carries the call ref of the CallRequested now on the calls topic."""
    response = await client.post("/v1/calls", json=CALL, headers=AUTH)
    assert response.status_code == 202, response.text
    call_ref = response.json()["call_ref"]
    (record,) = await records(topics, "calls", 1)
    assert record.envelope is not None
    payload = record.envelope.payload
    assert isinstance(payload, CallRequested)
    assert (payload.call_ref, payload.to_number, payload.metadata) == (
        call_ref,
        CALL["to_number"],
        {"k": "v"},
    )


async def test_idempotency_key_returns_the_same_call_ref_without_a_second_event(
    client: httpx.AsyncClient, topics: Settings, unique: str
) -> None:
    """A retry with the same key and body gets the same call ref; one event only."""
    headers = AUTH | {"Idempotency-Key": f"engage-{unique}"}
    first = await client.post("/v1/calls", json=CALL, headers=headers)
    second = await client.post("/v1/calls", json=CALL, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    other_body = CALL | {"to_number": "+14155550999"}
    reused = await client.post("/v1/calls", json=other_body, headers=headers)
    assert reused.status_code == 422
    assert len(await records(topics, "calls", 1)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (CALL | {"to_number": "555-0123"}, "to_number"),
        (CALL | {"from_number": "+0123"}, "from_number"),
        (CALL | {"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata"),
        (CALL | {"surprise": 1}, "surprise"),
    ],
)
async def test_invalid_call_requests_are_422_with_field_errors(
    client: httpx.AsyncClient, topics: Settings, body: dict[str, object], field: str
) -> None:
    """Bad numbers, oversized metadata and unknown fields are named in a 422."""
    response = await client.post("/v1/calls", json=body, headers=AUTH)
    assert response.status_code == 422
    assert any(field in map(str, error["loc"]) for error in response.json()["detail"])


async def test_oversized_body_is_413(client: httpx.AsyncClient, topics: Settings) -> None:
    """A body over RINGLOG_API_MAX_BODY_BYTES (or, on the webhooks, over
    RINGLOG_API_WEBHOOK_MAX_BODY_BYTES) is refused before it is read or verified."""
    request = b'{"to_number":"+14155550123","note":"' + b"a" * 70_000 + b'"}'
    response = await client.post("/v1/calls", content=request, headers=AUTH)
    assert response.status_code == 413
    limit = ApiSettings().webhook_max_body_bytes
    text = b"a" * limit
    body = b'{"event":"call_ended","call":{"call_id":"x","transcript":"' + text + b'"}}'
    response = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
    assert response.status_code == 413
    assert await records(topics, "calls", 0) == []


async def test_health_readiness_and_metrics(client: httpx.AsyncClient, topics: Settings) -> None:
    """healthz is up, readyz sees the topics, metrics count requests and quarantines."""
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    bad, good = b"not json", webhook("call_started")
    await client.post("/v1/webhooks/retell", content=bad, headers=signed(bad))
    await client.post("/v1/webhooks/retell", content=good, headers=signed(good))
    text = (await client.get("/metrics")).text
    assert 'ringlog_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in text
    assert 'ringlog_quarantined_total{reason="invalid_json",source="retell-webhook"} 1.0' in text
    assert 'ringlog_append_seconds_count{topic="calls"} 1.0' in text


async def test_readyz_is_503_when_topics_are_missing(settings: Settings) -> None:
    """Without the declared topics (nothing ensured under this prefix), readyz is 503."""
    app = create_app(api_settings(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert settings.topic("calls") in response.json()["missing_topics"]
