"""Retell's call API: create-phone-call and get-call, retried the way Retell asks.

429 and 5xx answers and network failures are retryable: the client retries them with
exponential backoff and full jitter (tenacity) and raises :class:`RetellUnavailable` once the
attempts are spent. Other 4xx answers are permanent (:class:`RetellRejected`). Every create
carries ``idempotency_key`` = the call ref, so a retry — or a second dispatch after a crash —
gets the call Retell created the first time, never a second call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from ringlog.config import RetellSettings, WorkerSettings
from ringlog.errors import PermanentError, RetryableError


class RetellUnavailable(RetryableError):
    """Retell answered 429/5xx or could not be reached; ``attempts`` were made."""

    def __init__(self, reason: str, *, attempts: int = 1, retry_after: float | None = None):
        super().__init__(f"Retell unavailable: {reason}", retry_after=retry_after)
        self.reason = reason
        self.attempts = attempts


class RetellRejected(PermanentError):
    """Retell refused the request (4xx other than 429): retrying the same request cannot help."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Retell refused the request ({status_code}): {message}")
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class CreatePhoneCall:
    """The fields of ``POST /v2/create-phone-call`` ringlog sends."""

    call_ref: str
    from_number: str
    to_number: str
    agent_id: str | None = None
    metadata: dict[str, str] | None = None
    dynamic_variables: dict[str, str] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body: the call ref is both the idempotency key and in ``metadata``."""
        body: dict[str, Any] = {
            "from_number": self.from_number,
            "to_number": self.to_number,
            "metadata": {**(self.metadata or {}), "call_ref": self.call_ref},
            "idempotency_key": self.call_ref,
        }
        if self.agent_id:
            body["override_agent_id"] = self.agent_id
        if self.dynamic_variables:
            body["retell_llm_dynamic_variables"] = self.dynamic_variables
        return body


@dataclass(frozen=True)
class CreatedCall:
    """Retell's answer to a create: its call id, the call object, and the attempts it took."""

    call_id: str
    call: dict[str, Any]
    attempts: int


class RetellClient:
    """A thin async client; use as ``async with RetellClient(retell, worker) as client``."""

    def __init__(
        self,
        retell: RetellSettings,
        worker: WorkerSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = retell.api_key.get_secret_value() if retell.api_key else ""
        self._http = httpx.AsyncClient(
            base_url=retell.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=worker.retell_timeout_s,
            transport=transport,
        )
        self._attempts = max(1, worker.dispatch_attempts)
        self._backoff = worker.dispatch_backoff_s
        self._backoff_max = worker.dispatch_backoff_max_s

    async def __aenter__(self) -> RetellClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def create_phone_call(self, request: CreatePhoneCall) -> CreatedCall:
        """Create the call, retrying 429/5xx/network failures; raise once retrying is over."""
        attempt_number = 0
        try:
            async for attempt in self._retrying():
                with attempt:
                    attempt_number = attempt.retry_state.attempt_number
                    answer = await self._send("POST", "/v2/create-phone-call", request.body())
        except RetellUnavailable as exc:
            exc.attempts = attempt_number
            raise
        call_id = answer.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise RetellRejected(200, "create-phone-call answered without a call_id")
        return CreatedCall(call_id=call_id, call=answer, attempts=attempt_number)

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """Return Retell's current call object for ``call_id`` (retried like a create)."""
        async for attempt in self._retrying():
            with attempt:
                return await self._send("GET", f"/v2/get-call/{call_id}", None)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._backoff, max=self._backoff_max),
            retry=retry_if_exception_type(RetellUnavailable),
            reraise=True,
        )

    async def _send(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        content = orjson.dumps(body) if body is not None else None
        try:
            response = await self._http.request(
                method, path, content=content, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise RetellUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise RetellUnavailable(
                f"{response.status_code} {_message(response)}",
                retry_after=_retry_after(response),
            )
        if response.status_code >= 400:
            raise RetellRejected(response.status_code, _message(response))
        try:
            answer = response.json()
        except ValueError as exc:
            raise RetellUnavailable(f"answer is not JSON: {response.text[:200]}") from exc
        if not isinstance(answer, dict):
            raise RetellUnavailable("answer is not a JSON object")
        return answer


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
