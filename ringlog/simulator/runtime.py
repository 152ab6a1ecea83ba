"""The simulator's state and its call player: created calls, idempotency, webhook delivery.

One :class:`Simulator` lives as long as the app. Each call (created outbound, or simulated
inbound) is played by a background task that posts its webhooks to
``settings.simulator.webhook_url``, signed like Retell signs them. A failed post (non-2xx or
connection error) is retried up to 3 times with a short backoff, without holding up the call's
later webhooks, then given up and recorded.

Without ``settings.simulator.llm_websocket_url`` a call plays the timed script of
:mod:`ringlog.simulator.script`. With it, a connected call is a dialog: after ``call_started``
is posted, the scripted patient talks to ringlog's custom-LLM socket
(``{llm_websocket_url}/{call_id}``) until someone hangs up, and ``call_ended`` and
``call_analyzed`` carry that dialog. An inbound call first asks Retell's inbound webhook
(``{webhook_url}/inbound``) for its metadata and dynamic variables, while it rings. A web call
(``create-web-call``) has no numbers and plays at once. The faults that play real calls'
situations on the socket (a caller who keeps talking, requests back to back, a lost socket, a
2-hour call) are described in :mod:`ringlog.simulator.faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson
import structlog

from ringlog.config import Settings
from ringlog.simulator.dialog import Dialog, Outcome
from ringlog.simulator.dialog_calls import (
    answered_inbound,
    dialog_analyzed,
    dialog_ended,
)
from ringlog.simulator.faults import Faults
from ringlog.simulator.llm_client import IDLE_TIMEOUT_S, PING_INTERVAL_S, converse, socket_url
from ringlog.simulator.models import CreatePhoneCall, CreateWebCall, InboundCall
from ringlog.simulator.patient import Patient, Persona
from ringlog.simulator.records import CallRecord, NotStarted
from ringlog.simulator.script import (
    Delivery,
    Pacing,
    new_call_id,
    not_connected_plan,
    plan,
    registered_call,
    registered_web_call,
)
from ringlog.simulator.webhooks import WebhookPoster, now_ms

log = structlog.get_logger("ringlog.simulator")

#: How long an ``idempotency_key`` maps to its call (Retell: one hour).
IDEMPOTENCY_TTL_S = 3600.0


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
        self.persona = Persona()
        #: Seconds between ``ping_pong`` frames, and the silence that ends a dialog.
        self.ping_interval_s = PING_INTERVAL_S
        self.idle_timeout_s = IDLE_TIMEOUT_S
        self.calls: dict[str, CallRecord] = {}
        self.create_requests = 0
        self._faulted_window = 0
        self._idempotency: dict[str, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.webhooks = WebhookPoster(self.api_key, settings.simulator.webhook_url)

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client used to post webhooks."""
        await self.webhooks.start()
        if self.settings.simulator.llm_websocket_url:
            log.info(
                "calls talk to the custom-LLM socket",
                llm_websocket_url=self.settings.simulator.llm_websocket_url,
            )

    async def close(self) -> None:
        """Cancel every call still playing, wait for them, then close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.webhooks.close()

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

    def replace_persona(self, persona: Persona) -> None:
        """Put ``persona`` in force as the patient of calls made from now on."""
        self.persona = persona

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
        if not self.webhooks.started:
            raise NotStarted("the simulator's lifespan has not started")
        call = registered_call(
            call_id=new_call_id(),
            agent_id=request.override_agent_id or self.settings.retell.agent_id,
            from_number=request.from_number,
            to_number=request.to_number,
            metadata=request.metadata,
            dynamic_variables=request.retell_llm_dynamic_variables,
        )
        record = CallRecord(
            call=call, idempotency_key=key, faults=self.faults, persona=self.persona
        )
        self.calls[call["call_id"]] = record
        if key is not None:
            self._idempotency[key] = (call["call_id"], now + IDEMPOTENCY_TTL_S)
        self._start(record, self._connected(record))
        log.info("call created", call_id=call["call_id"], faults=self.faults.model_dump())
        return call

    def create_web_call(self, request: CreateWebCall) -> dict[str, Any]:
        """Register a web call (the patient opens the clinic's page) and start playing it at
        once, like a connected call: no numbers, no direction, an ``access_token``."""
        if not self.webhooks.started:
            raise NotStarted("the simulator's lifespan has not started")
        call = registered_web_call(
            call_id=new_call_id(),
            agent_id=request.agent_id,
            metadata=request.metadata,
            dynamic_variables=request.retell_llm_dynamic_variables,
            agent_version=request.agent_version or 1,
        )
        record = CallRecord(
            call=call, idempotency_key=None, faults=self.faults, persona=self.persona
        )
        self.calls[call["call_id"]] = record
        self._start(record, self._connected(record))
        log.info("web call created", call_id=call["call_id"], faults=self.faults.model_dump())
        return call

    def inbound(self, request: InboundCall) -> str:
        """Simulate a patient calling in; return the new call's id at once.

        The persona is the one in force with ``request.persona`` applied, the faults
        ``request.faults`` or those in force. Raises ``pydantic.ValidationError`` for persona
        overrides that do not fit :class:`Persona`, and :class:`NotStarted` before the lifespan.
        """
        persona = Persona.model_validate(self.persona.model_dump() | request.persona)
        if not self.webhooks.started:
            raise NotStarted("the simulator's lifespan has not started")
        call = registered_call(
            call_id=new_call_id(),
            agent_id=self.settings.retell.agent_id,
            from_number=request.from_number,
            to_number=request.to_number,
            direction="inbound",
        )
        faults = request.faults or self.faults
        record = CallRecord(call=call, idempotency_key=None, faults=faults, persona=persona)
        self.calls[call["call_id"]] = record
        self._start(record, self._inbound(record))
        log.info("inbound call", call_id=call["call_id"], faults=faults.model_dump())
        return str(call["call_id"])

    def _start(self, record: CallRecord, source: AsyncGenerator[Delivery, None]) -> None:
        task = asyncio.create_task(self._play(record, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # what a call posts -----------------------------------------------------------------------

    def _connected(self, record: CallRecord) -> AsyncGenerator[Delivery, None]:
        """The deliveries of a call that rings now: a dialog if a socket is set, else timed."""
        if self.settings.simulator.llm_websocket_url and not record.faults.dial_failure:
            return self._dialog(record)
        return _timed(
            plan(
                record.call,
                created_ms=now_ms(),
                pacing=Pacing.of(self.settings.simulator),
                faults=record.faults,
            )
        )

    async def _inbound(self, record: CallRecord) -> AsyncGenerator[Delivery, None]:
        """Ask the inbound webhook while ringing, then play the call with its answer.

        If every attempt fails the call never connects (``error_inbound_webhook``).
        """
        answer = await self.webhooks.ask_inbound(record)
        if answer is None:
            source = _timed(
                not_connected_plan(
                    record.call,
                    created_ms=now_ms(),
                    pacing=Pacing.of(self.settings.simulator),
                    faults=record.faults,
                    reason="error_inbound_webhook",
                )
            )
        else:
            record.inbound_answer = answer
            record.call = answered_inbound(record.call, answer)
            source = self._connected(record)
        async with contextlib.aclosing(source):
            async for delivery in source:
                yield delivery

    async def _dialog(self, record: CallRecord) -> AsyncGenerator[Delivery, None]:
        """The dialog's webhooks as they happen, duplicated or held back and reversed."""
        faults = record.faults
        held: list[Delivery] = []
        events = self._dialog_events(record)
        async with contextlib.aclosing(events):
            async for event, call in events:
                copies = [
                    Delivery(0.0, event, {"event": event, "call": copy.deepcopy(call)})
                    for _ in range(2 if faults.duplicate else 1)
                ]
                if faults.reorder:
                    held[:0] = copies
                    continue
                for delivery in copies:
                    yield delivery
        for delivery in held:
            yield delivery

    async def _dialog_events(
        self, record: CallRecord
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Ring, start, talk through the socket until someone hangs up, end, then analyse."""
        pacing = Pacing.of(self.settings.simulator)
        await asyncio.sleep(pacing.ring_s)
        started = record.call | {"call_status": "ongoing", "start_timestamp": now_ms()}
        yield "call_started", started
        patient = Patient(record.persona, drop_after=record.faults.drop_phrase())
        dialog = Dialog(copy.deepcopy(started), patient, faults=record.faults)
        record.dialog = dialog
        url = socket_url(self.settings.simulator.llm_websocket_url, started["call_id"])
        await converse(
            url, dialog, ping_interval_s=self.ping_interval_s, idle_timeout_s=self.idle_timeout_s
        )
        outcome = dialog.outcome or Outcome("error_llm_websocket_lost_connection")
        ended = dialog_ended(
            started,
            outcome=outcome,
            transcript=dialog.transcript,
            end_ms=now_ms(),
            two_hours=record.faults.two_hours,
        )
        yield "call_ended", ended
        await asyncio.sleep(pacing.analysis_s + record.faults.delay_analyzed_s)
        yield "call_analyzed", dialog_analyzed(ended, outcome=outcome, persona=record.persona)

    # playing ---------------------------------------------------------------------------------

    async def _play(self, record: CallRecord, source: AsyncGenerator[Delivery, None]) -> None:
        """Post each delivery as ``source`` yields it; retries run beside, not in its way."""
        retries: list[asyncio.Task[None]] = []
        try:
            async with contextlib.aclosing(source):
                async for delivery in source:
                    call = delivery.body["call"]
                    record.advance(delivery.event, call)
                    if delivery.event == "call_ended":
                        record.disconnection_reason = call.get("disconnection_reason")
                    raw = orjson.dumps(delivery.body)
                    if not (await self.webhooks.post(record, delivery.event, raw, attempt=1))["ok"]:
                        retry = self.webhooks.retry(record, delivery.event, raw)
                        retries.append(asyncio.create_task(retry))
            await asyncio.gather(*retries)
            record.status = "done"
        except asyncio.CancelledError:
            record.status = "cancelled"
            for task in retries:
                task.cancel()
            await asyncio.gather(*retries, return_exceptions=True)
            raise
        except Exception:  # a bug in one call must not leave it "playing" forever
            record.status = "failed"
            log.exception("call failed", call_id=record.call["call_id"])


async def _timed(deliveries: list[Delivery]) -> AsyncGenerator[Delivery, None]:
    """Yield each planned delivery once its wait has passed."""
    for delivery in deliveries:
        await asyncio.sleep(delivery.delay_s)
        yield delivery
