"""The dispatcher: places due call requests of the owned partitions with Retell.

Each round leases the due calls the store offers (:meth:`WorkerStore.claim_due`: oldest due
first, within Retell's concurrency cap counted across every worker, skipping held and leased
calls), then places each one in its own task, so a slow or failing Retell never holds back the
runtime that folds the webhooks which free slots:

* Retell creates the call (retrying 429/5xx with backoff) → the call is announced in the
  :class:`~ringlog.calls.directory.CallDirectory` (so its dialog socket is served), then
  ``call.dispatched``;
* Retell refuses it (other 4xx) → ``call.dispatch_failed`` (permanent);
* retries run out → ``call.dispatch_failed`` (not permanent): the request stays pending and is
  placed again after the cool-down — an outage never loses a request.

The lease lasts until the outcome is folded (which deletes it): ``dispatch_lease_s`` while
Retell is asked, then an hour once the outcome is appended, however far the fold lags. If this
process dies between Retell creating the call and the outcome's append, the partition's next
owner waits for the lease to expire and places the call again with the same
``idempotency_key`` (the call ref): Retell answers with the call it created before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

import structlog

from ringlog.adapters.retell import CreatePhoneCall, RetellClient, RetellRejected, RetellUnavailable
from ringlog.calls.directory import CallDirectory
from ringlog.calls.known import known_from_call
from ringlog.calls.state import CallState
from ringlog.schemas import Envelope
from ringlog.schemas.base import EventModel
from ringlog.schemas.calls import CallDispatched, CallDispatchFailed
from ringlog.streams.producer import LogProducer
from ringlog.worker.store import WorkerStore

log = structlog.get_logger("ringlog.dispatcher")

SOURCE = "dispatcher"

#: Once a call's outcome is on the log, its lease is held this long for the fold to catch up
#: (the fold deletes it); a next owner folds the outcome before it serves the partition.
HOLD_FOLDED_MS = 3_600_000


class Dispatcher:
    """Leases due calls and places them; :meth:`aclose` cancels placements in flight."""

    def __init__(
        self,
        store: WorkerStore,
        producer: LogProducer,
        retell: RetellClient,
        directory: CallDirectory,
        *,
        owner: str,
        lease_s: float,
    ) -> None:
        self._store = store
        self._log = producer
        self._retell = retell
        self._directory = directory
        self._owner = owner
        self._lease_ms = int(lease_s * 1000)
        self._tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self, partitions: Collection[int]) -> int:
        """Lease and start placing what is due in ``partitions``; returns how many."""
        states = await self._store.claim_due(partitions, owner=self._owner, lease_ms=self._lease_ms)
        for state in states:
            task = asyncio.create_task(self._place(state), name=f"dispatch {state.call_ref}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(states)

    async def aclose(self) -> None:
        """Cancel placements in flight (their leases expire; the next owner places them)."""
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
            await self._announce(created.call)
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
            log.warning("outcome not appended", call_ref=ref, error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await self._store.release(ref)
            return
        try:
            await self._store.hold(ref, HOLD_FOLDED_MS)
        except Exception as exc:  # noqa: BLE001 - the lease may then expire before the fold
            log.warning("lease not held", call_ref=ref, error=f"{type(exc).__name__}: {exc}")
        log.info("dispatch", call_ref=ref, outcome=outcome.event_type)

    async def _announce(self, call: dict[str, object]) -> None:
        """Announce the call Retell created, so its socket is served without asking get-call
        (if Redis fails, the socket asks get-call: the placement goes on)."""
        known = known_from_call(call)
        if known is None:
            return
        try:
            await self._directory.announce(known)
        except Exception as exc:  # noqa: BLE001 - the socket falls back to get-call
            log.warning("call not announced", call_ref=known.call_ref, error=type(exc).__name__)
