"""The Retell client's retry policy: 429/5xx/network retried, other 4xx permanent."""

from __future__ import annotations

import httpx
import orjson
import pytest

from ringlog.adapters.retell import (
    CreatePhoneCall,
    RetellClient,
    RetellRejected,
    RetellUnavailable,
)
from ringlog.config import RetellSettings, WorkerSettings

REQUEST = CreatePhoneCall(
    call_ref="c-1", from_number="+14155559876", to_number="+14155550123", agent_id="agent"
)
FAST = WorkerSettings(dispatch_attempts=3, dispatch_backoff_s=0.001, dispatch_backoff_max_s=0.002)


def client_answering(*answers: httpx.Response | Exception) -> tuple[RetellClient, list[dict]]:
    seen: list[dict] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            {"auth": request.headers["authorization"], "body": orjson.loads(request.content)}
        )
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    retell = RetellSettings(api_key="key_1", base_url="http://retell.test")
    return RetellClient(retell, FAST, transport=httpx.MockTransport(handler)), seen


def created(call_id: str = "abc") -> httpx.Response:
    return httpx.Response(201, json={"call_id": call_id, "call_status": "registered"})


async def test_the_call_ref_is_the_idempotency_key_and_in_metadata() -> None:
    client, seen = client_answering(created())
    answer = await client.create_phone_call(REQUEST)
    assert answer.call_id == "abc" and answer.attempts == 1
    assert seen[0]["auth"] == "Bearer key_1"
    assert seen[0]["body"]["idempotency_key"] == "c-1"
    assert seen[0]["body"]["metadata"] == {"call_ref": "c-1"}
    assert seen[0]["body"]["override_agent_id"] == "agent"


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, json={"status": "error", "message": "throttle"}),
        httpx.Response(500, json={"status": "error", "message": "boom"}),
        httpx.Response(503, text="unavailable"),
        httpx.ConnectError("refused"),
    ],
)
async def test_retryable_failures_are_retried(failure: httpx.Response | Exception) -> None:
    client, seen = client_answering(failure, failure, created("xyz"))
    answer = await client.create_phone_call(REQUEST)
    assert answer.call_id == "xyz" and answer.attempts == 3 and len(seen) == 3


async def test_retries_run_out_with_the_attempts_counted() -> None:
    busy = httpx.Response(429, json={"status": "error", "message": "throttle"})
    client, seen = client_answering(busy, busy, busy)
    with pytest.raises(RetellUnavailable) as raised:
        await client.create_phone_call(REQUEST)
    assert raised.value.attempts == 3 and "throttle" in str(raised.value) and len(seen) == 3


@pytest.mark.parametrize("status", [400, 401, 402, 422])
async def test_other_client_errors_are_permanent_and_not_retried(status: int) -> None:
    client, seen = client_answering(
        httpx.Response(status, json={"status": "error", "message": "no such agent"})
    )
    with pytest.raises(RetellRejected) as raised:
        await client.create_phone_call(REQUEST)
    assert raised.value.status_code == status and "no such agent" in str(raised.value)
    assert len(seen) == 1
