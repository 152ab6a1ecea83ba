"""The simulator's webhook poster: signs each body as Retell does and posts it as is.

A failed post (non-2xx or connection error) is retried up to 3 times with a short backoff and
then given up; every attempt is recorded on the call's ``deliveries``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import structlog

from ringlog.api.signature import HEADER, sign
from ringlog.simulator.dialog_calls import inbound_request
from ringlog.simulator.records import CallRecord, NotStarted

log = structlog.get_logger("ringlog.simulator")

#: Waits before the retries of a failed webhook post (Retell retries up to 3 times).
RETRY_BACKOFF_S = (0.1, 0.2, 0.4)
#: Timeout of one webhook post (Retell's default ``webhook_timeout_ms``).
WEBHOOK_TIMEOUT_S = 10.0


class WebhookPoster:
    """Posts signed webhooks to ``url`` (call events) and ``url/inbound`` (inbound calls)."""

    def __init__(self, api_key: str, url: str) -> None:
        self.api_key = api_key
        self.url = url
        self._client: httpx.AsyncClient | None = None

    @property
    def started(self) -> bool:
        """Whether the HTTP client is open."""
        return self._client is not None

    async def start(self) -> None:
        """Open the HTTP client."""
        self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)

    async def close(self) -> None:
        """Close the HTTP client (a later :meth:`start` opens a new one)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def retry(self, record: CallRecord, event: str, raw: bytes) -> None:
        """Retry a failed post up to 3 times; after the last failure, record that it gave up."""
        for attempt, backoff in enumerate(RETRY_BACKOFF_S, start=2):
            await asyncio.sleep(backoff)
            entry = await self.post(record, event, raw, attempt=attempt)
            if entry["ok"]:
                return
        entry["gave_up"] = True
        log.warning("webhook given up", call_id=record.call["call_id"], webhook_event=event)

    async def ask_inbound(self, record: CallRecord) -> dict[str, Any] | None:
        """Post the inbound webhook (retried like the others); its JSON answer, else ``None``.

        An empty 2xx body is an empty answer; a 2xx body that is not a JSON object counts as a
        failed attempt.
        """
        raw = orjson.dumps(inbound_request(record.call))
        url = self.url.rstrip("/") + "/inbound"
        for attempt in range(1, len(RETRY_BACKOFF_S) + 2):
            if attempt > 1:
                await asyncio.sleep(RETRY_BACKOFF_S[attempt - 2])
            entry, response = await self._send(record, "call_inbound", raw, url, attempt=attempt)
            if entry["ok"] and response is not None:
                answer = _json_object(response.content)
                if answer is not None:
                    return answer
                entry |= {"ok": False, "error": "answer is not a JSON object"}
        entry["gave_up"] = True
        log.warning("inbound webhook given up", call_id=record.call["call_id"])
        return None

    async def post(
        self, record: CallRecord, event: str, raw: bytes, *, attempt: int
    ) -> dict[str, Any]:
        """One signed post of ``raw`` to the webhook URL, recorded; ``ok``: it got a 2xx."""
        entry, _ = await self._send(record, event, raw, self.url, attempt=attempt)
        return entry

    async def _send(
        self, record: CallRecord, event: str, raw: bytes, url: str, *, attempt: int
    ) -> tuple[dict[str, Any], httpx.Response | None]:
        """One signed post of ``raw`` (sent as is) to ``url``, recorded, and its response."""
        if self._client is None:
            raise NotStarted("the simulator's lifespan has not started")
        headers = {HEADER: sign(raw, self.api_key, now_ms()), "content-type": "application/json"}
        entry: dict[str, Any] = {"event": event, "attempt": attempt}
        response: httpx.Response | None = None
        try:
            response = await self._client.post(url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            entry |= {"error": f"{type(exc).__name__}: {exc}", "ok": False}
        else:
            entry |= {"status_code": response.status_code, "ok": response.is_success}
        record.deliveries.append(entry)
        return entry, response


def _json_object(content: bytes) -> dict[str, Any] | None:
    """``content`` parsed as a JSON object (empty content: ``{}``), else ``None``."""
    if not content.strip():
        return {}
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def now_ms() -> int:
    """The wall clock in Unix milliseconds (Retell's timestamps and signatures)."""
    return int(time.time() * 1000)
