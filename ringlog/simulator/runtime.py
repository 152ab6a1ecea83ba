"""The simulator's state and its call player: created calls, idempotency, webhook delivery.

One :class:`Simulator` lives as long as the app. Each created call is played by a background
task that posts the scripted webhooks to ``settings.simulator.webhook_url``, signed like
Retell signs them. A failed post (non-2xx or connection error) is retried up to 3 times with a
short backoff, without holding up the call's later webhooks, then given up and recorded.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog

from ringlog.api.signature import HEADER, sign
from ringlog.config import Settings
from ringlog.simulator.faults import Faults
from ringlog.simulator.models import CreatePhoneCall
from ringlog.simulator.script import STAGES, Delivery, Pacing, new_call_id, plan, registered_call

log = structlog.get_logger("ringlog.simulator")

#: How long an ``idempotency_key`` maps to its call (Retell: one hour).
IDEMPOTENCY_TTL_S = 3600.0
#: Waits before the retries of a failed webhook post (Retell retries up to 3 times).
RETRY_BACKOFF_S = (0.1, 0.2, 0.4)
#: Timeout of one webhook post (Retell's default ``webhook_timeout_ms``).
WEBHOOK_TIMEOUT_S = 10.0


class NotStarted(RuntimeError):
    """A call was created before the simulator's lifespan started its HTTP client."""


@dataclass
class CallRecord:
    """One created call: its current object, how its script went, and every post attempt."""

    call: dict[str, Any]
    idempotency_key: str | None
    #: ``playing`` until every webhook was delivered or given up, then ``done``
    #: (``cancelled`` if the simulator stopped first).
    status: str = "playing"
    stage: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def advance(self, event: str, call: dict[str, Any]) -> None:
        """Move the call object forward to ``event``'s snapshot; never backwards."""
        stage = STAGES.get(event, 0)
        if stage > self.stage:
            self.stage, self.call = stage, call

    def view(self) -> dict[str, Any]:
        """The inspection entry shown by ``GET /sim/calls``."""
        return {
            "call_id": self.call["call_id"],
            "idempotency_key": self.idempotency_key,
            "metadata": self.call.get("metadata"),
            "status": self.status,
            "deliveries": list(self.deliveries),
        }


class Simulator:
    """Calls, fault counters and the background tasks that play the calls."""

    def __init__(self, settings: Settings, faults: Faults | None = None) -> None:
        if settings.retell.api_key is None:
            raise ValueError(
                "the simulator needs settings.retell.api_key (RINGLOG_RETELL_API_KEY): "
                "it authenticates create-call requests and signs webhooks"
            )
        self.settings = settings
        self.api_key = settings.retell.api_key.get_secret_value()
        self.faults = faults or Faults()
        self.calls: dict[str, CallRecord] = {}
        self.create_requests = 0
        self._faulted_window = 0
        self._idempotency: dict[str, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client used to post webhooks."""
        self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)
        if self.settings.simulator.llm_websocket_url:
            log.warning(
                "llm_websocket_url is set but not supported yet; playing the timed script",
                issue="D",
            )

    async def close(self) -> None:
        """Cancel every call still playing, wait for them, then close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def pending(self) -> int:
        """Calls whose script has not finished yet."""
        return sum(1 for record in self.calls.values() if record.status == "playing")

    # create-call -----------------------------------------------------------------------------

    def authorized(self, authorization: str | None) -> bool:
        """Whether the ``Authorization`` header carries ``Bearer <api key>``."""
        expected = f"Bearer {self.api_key}".encode()
        return hmac.compare_digest((authorization or "").encode(), expected)

    def replace_faults(self, faults: Faults) -> None:
        """Put ``faults`` in force for calls created from now on; restart the 429/500 counts."""
        self.faults = faults
        self._faulted_window = 0

    def injected_failure(self) -> int | None:
        """Count one create request; return 429 or 500 if a fault answers it, else ``None``."""
        self.create_requests += 1
        self._faulted_window += 1
        n = self._faulted_window
        if n <= self.faults.rate_limit_first:
            return 429
        if n <= self.faults.rate_limit_first + self.faults.server_error_first:
            return 500
        return None

    def create(self, request: CreatePhoneCall) -> dict[str, Any]:
        """Register a call (or return the one its idempotency key made) and start playing it."""
        key = request.idempotency_key
        now = time.monotonic()
        self._idempotency = {k: v for k, v in self._idempotency.items() if v[1] > now}
        if key is not None and key in self._idempotency:
            return self.calls[self._idempotency[key][0]].call
        if self._client is None:
            raise NotStarted("the simulator's lifespan has not started")
        call = registered_call(
            call_id=new_call_id(),
            agent_id=request.override_agent_id or self.settings.retell.agent_id,
            from_number=request.from_number,
            to_number=request.to_number,
            metadata=request.metadata,
            dynamic_variables=request.retell_llm_dynamic_variables,
        )
        record = CallRecord(call=call, idempotency_key=key)
        self.calls[call["call_id"]] = record
        if key is not None:
            self._idempotency[key] = (call["call_id"], now + IDEMPOTENCY_TTL_S)
        task = asyncio.create_task(self._play(record, self._script(call)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("call created", call_id=call["call_id"], faults=self.faults.model_dump())
        return call

    def _script(self, call: dict[str, Any]) -> list[Delivery]:
        """The deliveries for a new call under the faults in force now."""
        # TODO [D]: when settings.simulator.llm_websocket_url is set, play the patient through
        # ringlog's custom-LLM WebSocket ({llm_websocket_url}/{call_id}) and build the
        # transcript from that dialog; until then the timed script is used (warned at start).
        return plan(
            call,
            created_ms=int(time.time() * 1000),
            pacing=Pacing.of(self.settings.simulator),
            faults=self.faults,
        )

    # playing ---------------------------------------------------------------------------------

    async def _play(self, record: CallRecord, deliveries: list[Delivery]) -> None:
        """Post each delivery on time; retries run beside the script, not in its way."""
        retries: list[asyncio.Task[None]] = []
        try:
            for delivery in deliveries:
                await asyncio.sleep(delivery.delay_s)
                record.advance(delivery.event, delivery.body["call"])
                raw = orjson.dumps(delivery.body)
                if not (await self._post(record, delivery.event, raw, attempt=1))["ok"]:
                    retries.append(asyncio.create_task(self._retry(record, delivery.event, raw)))
            await asyncio.gather(*retries)
            record.status = "done"
        except asyncio.CancelledError:
            record.status = "cancelled"
            for task in retries:
                task.cancel()
            await asyncio.gather(*retries, return_exceptions=True)
            raise

    async def _retry(self, record: CallRecord, event: str, raw: bytes) -> None:
        """Retry a failed post up to 3 times; after the last failure, record that it gave up."""
        for attempt, backoff in enumerate(RETRY_BACKOFF_S, start=2):
            await asyncio.sleep(backoff)
            entry = await self._post(record, event, raw, attempt=attempt)
            if entry["ok"]:
                return
        entry["gave_up"] = True
        log.warning("webhook given up", call_id=record.call["call_id"], webhook_event=event)

    async def _post(
        self, record: CallRecord, event: str, raw: bytes, *, attempt: int
    ) -> dict[str, Any]:
        """One signed post of ``raw`` (sent as is), recorded; ``ok`` says whether it got a 2xx."""
        if self._client is None:
            raise NotStarted("the simulator's lifespan has not started")
        headers = {
            HEADER: sign(raw, self.api_key, int(time.time() * 1000)),
            "content-type": "application/json",
        }
        entry: dict[str, Any] = {"event": event, "attempt": attempt}
        try:
            response = await self._client.post(
                self.settings.simulator.webhook_url, content=raw, headers=headers
            )
        except httpx.HTTPError as exc:
            entry |= {"error": f"{type(exc).__name__}: {exc}", "ok": False}
        else:
            entry |= {"status_code": response.status_code, "ok": response.is_success}
        record.deliveries.append(entry)
        return entry
