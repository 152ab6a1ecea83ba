"""The dispatcher: places due call requests with Retell and appends the outcome.

It runs beside the stream, never inside it, so a slow or failing Retell cannot hold back the
webhooks that free concurrency slots. Each round asks the pure :func:`ringlog.calls.dispatch.choose`
which requests to place, then for each one, in its own task:

* Retell creates the call (retrying 429/5xx with backoff) → ``call.dispatched``;
* Retell refuses it (other 4xx) → ``call.dispatch_failed`` (permanent);
* retries run out → ``call.dispatch_failed`` (not permanent): the request stays pending and is
  placed again after the cool-down — an outage never loses a request.

A request stays "in flight" until its outcome is folded back from the log, so it is never chosen
twice. After a crash the rebuilt book chooses it again, and Retell's ``idempotency_key`` (the call
ref) answers with the call it created before: one Retell call, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog

from ringlog.adapters.retell import CreatePhoneCall, RetellClient, RetellRejected, RetellUnavailable
from ringlog.calls.dispatch import DispatchPolicy, choose, next_due_at
from ringlog.calls.state import CallState
from ringlog.config import WorkerSettings
from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.calls import CallDispatched, CallDispatchFailed
from ringlog.streams.producer import LogProducer
from ringlog.worker.book import CallBook
from ringlog.worker.processor import CallProcessor

log = structlog.get_logger("ringlog.dispatcher")

SOURCE = "dispatcher"


def policy_from(worker: WorkerSettings, max_live_calls: int) -> DispatchPolicy:
    """The dispatch policy the settings describe."""
    return DispatchPolicy(
        max_live_calls=max_live_calls, cooldown=timedelta(seconds=worker.dispatch_cooldown_s)
    )


class Dispatcher:
    """Places due requests; wake it when the book changes."""

    def __init__(
        self,
        book: CallBook,
        processor: CallProcessor,
        log_producer: LogProducer,
        retell: RetellClient,
        policy: DispatchPolicy,
        poll_s: float,
    ) -> None:
        self._book = book
        self._processor = processor
        self._log = log_producer
        self._retell = retell
        self._policy = policy
        self._poll_s = poll_s
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due requests now (a new event arrived)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Dispatch rounds until cancelled; in-flight placements are cancelled with it."""
        await self._book.ready.wait()
        try:
            while True:
                self._round(datetime.now(UTC))
                await self._processor.resettle()
                await self._sleep()
        finally:
            for task in self._tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _round(self, now: datetime) -> None:
        in_flight = frozenset(self._book.dispatching | self._book.held)
        for state in choose(self._book.states(), now, self._policy, in_flight):
            self._book.dispatching.add(state.call_ref)
            task = asyncio.create_task(self._place(state), name=f"dispatch {state.call_ref}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sleep(self) -> None:
        delay = self._poll_s
        due = next_due_at(self._book.states(), self._policy)
        if due is not None:
            delay = min(delay, max(0.0, (due - datetime.now(UTC)).total_seconds()))
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(delay, 0.01))

    async def _place(self, state: CallState) -> None:
        ref = state.call_ref
        request = state.request
        assert request is not None
        outcome: EventModel
        try:
            created = await self._retell.create_phone_call(
                CreatePhoneCall(
                    call_ref=ref,
                    from_number=request.from_number,
                    to_number=request.to_number,
                    agent_id=request.agent_id,
                    metadata=request.metadata,
                )
            )
            outcome = CallDispatched(
                call_ref=ref,
                retell_call_id=created.call_id,
                agent_id=request.agent_id,
                attempt=created.attempts,
            )
        except RetellRejected as exc:
            outcome = CallDispatchFailed(call_ref=ref, reason=str(exc), permanent=True, attempts=1)
        except RetellUnavailable as exc:
            outcome = CallDispatchFailed(
                call_ref=ref, reason=str(exc), permanent=False, attempts=max(1, exc.attempts)
            )
        try:
            await self._log.append(Envelope.new(outcome, source=SOURCE, correlation_id=ref))
        except Exception as exc:  # noqa: BLE001 - the request stays pending; Retell dedupes
            self._book.dispatching.discard(ref)
            log.warning("outcome not appended", call_ref=ref, error=f"{type(exc).__name__}: {exc}")
            return
        log.info("dispatch", call_ref=ref, outcome=outcome.event_type)
