"""The bridge in: an SQS queue's messages appended to the log as events.

``ringlog bridge sqs-in --queue URL --as call-request|retell-event`` runs ``in_pollers``
pollers; each, in turn:

1. long-polls the queue for up to 10 messages (``receive_wait_s``), each made invisible for
   ``visibility_timeout_s``;
2. decides each message (:func:`~.messages.decide`, pure): the event the API would append
   for the same body, the quarantine, or a refusal (a body larger than the API takes);
3. appends the events and the quarantined bodies (acks=all), all at once — while they are in
   flight the messages' visibility is extended every third of the timeout;
4. deletes, in batches, the messages whose records the log acknowledged; the others (the
   append failed) are made visible again at once (visibility 0), so they are retried soon,
   and the poller backs off (``backoff_s`` doubling up to ``backoff_max_s``) while appends
   keep failing.

A message is deleted only after its record is acknowledged, so a crash between the two
appends it again when SQS delivers it again: the same event id and the same call ref (both
derived from the SQS ``MessageId``), which consumers deduplicate (see :mod:`.messages`). A
refused message is left on the queue, with an error logged each time it is received, until
the queue's redrive policy moves it to a dead-letter queue; it is never deleted.

Scans: a poller holds one receive's messages (10 at most) and their records; nothing grows
with the queue or the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import structlog
from prometheus_client import CollectorRegistry, Counter

from ringlog.bridges.failures import describe
from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.messages import (
    Append,
    Decision,
    Quarantine,
    Refuse,
    SqsMessage,
    body_limit,
    decide,
)
from ringlog.bridges.sqs import SqsQueue
from ringlog.bridges.together import run_together
from ringlog.config import Settings
from ringlog.projections.metrics import RegistryMetrics
from ringlog.schemas import encode, headers
from ringlog.streams.producer import LogProducer
from ringlog.streams.quarantine import quarantine

log = structlog.get_logger("ringlog.bridges")


class BridgeMetrics(RegistryMetrics):
    """``ringlog_bridge_messages_total{queue,outcome}``: messages bridged in, by outcome
    (``appended``, ``quarantined``, ``refused``, ``failed``: the append failed and the message
    was handed back; ``deleted``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.messages = Counter(
            "ringlog_bridge_messages",
            "SQS messages bridged in, by outcome.",
            ["queue", "outcome"],
            registry=self.registry,
        )

    def count(self, queue: str, outcome: str, n: int = 1) -> None:
        """Add ``n`` messages of ``queue`` to ``outcome``."""
        if n:
            self.messages.labels(queue, outcome).inc(n)

    def seen(self, queue: str, outcome: str) -> int:
        """How many messages of ``queue`` ended in ``outcome`` so far."""
        value = self.registry.get_sample_value(
            "ringlog_bridge_messages_total", {"queue": queue, "outcome": outcome}
        )
        return int(value or 0)


class InboundBridge:
    """Bridges one queue of ``kind`` into the log through ``producer`` (see the module).

    :meth:`run` polls until ``stop``; :meth:`handle` settles one receive's messages.
    :meth:`on_appended` is a hook between the log's acknowledgement and the delete (tests
    kill the process there).
    """

    def __init__(
        self,
        settings: Settings,
        queue: SqsQueue,
        kind: InboundKind,
        producer: LogProducer,
        *,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.queue = queue
        self.kind = kind
        self.metrics = metrics or BridgeMetrics()
        self._sqs = settings.sqs
        self._producer = producer
        self._quarantine_topic = settings.topic("quarantine")
        self._max_bytes = body_limit(kind, settings.api)
        self._default_agent_id = settings.retell.agent_id

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll, append and delete until ``stop`` is set; a message received when the stop
        comes is settled first, a receive still waiting is abandoned (its messages, if any,
        come back after their visibility timeout, or at once if SQS answers in time).

        Raises :class:`~ringlog.errors.ConfigurationError` when the queue goes away, and
        :class:`~ringlog.bridges.failures.SqsError` when SQS refuses a receive."""
        log.info(
            "bridge in started",
            queue=self.queue.name,
            kind=self.kind.value,
            pollers=self._sqs.in_pollers,
        )
        try:
            await run_together([self._poll] * self._sqs.in_pollers, stop)
        finally:
            log.info("bridge in stopped", queue=self.queue.name)

    async def _poll(self, stop: asyncio.Event) -> None:
        """One poller: receive, settle, repeat; back off while appends fail."""
        failures = 0
        while not stop.is_set():
            messages = await self._receive(stop)
            if messages is None:
                return
            if not messages:
                continue
            failures = 0 if await self.handle(messages) else failures + 1
            if failures:
                delay = min(self._sqs.backoff_s * 2 ** (failures - 1), self._sqs.backoff_max_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _receive(self, stop: asyncio.Event) -> list[SqsMessage] | None:
        """The next receive's messages, or None once ``stop`` is set first."""
        receiving = asyncio.ensure_future(self.queue.receive())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not receiving.done():
                receiving.cancel()  # the receive's messages, if any, are handed back
        if not receiving.done():
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
            return None
        return receiving.result()

    async def handle(self, messages: Sequence[SqsMessage]) -> bool:
        """Settle one receive's ``messages``; True when none failed (see the module)."""
        decisions: list[tuple[SqsMessage, Decision]] = [
            (
                message,
                decide(
                    message,
                    kind=self.kind,
                    queue=self.queue.name,
                    max_bytes=self._max_bytes,
                    default_agent_id=self._default_agent_id,
                ),
            )
            for message in messages
        ]
        work: list[tuple[SqsMessage, Append | Quarantine]] = []
        for message, decision in decisions:
            if isinstance(decision, Refuse):
                log.error(
                    "SQS message refused; left on the queue",
                    queue=self.queue.name,
                    message_id=message.message_id,
                    reason=decision.reason,
                )
                self.metrics.count(self.queue.name, "refused")
            else:
                work.append((message, decision))
        if not work:
            return True
        done: list[SqsMessage] = []
        failed: list[tuple[SqsMessage, BaseException]] = []
        # invisible until the delete or the hand-back below, however long the appends take
        async with self._kept_invisible([message for message, _ in work]):
            outcomes = await asyncio.gather(
                *(self._settle(message, decision) for message, decision in work),
                return_exceptions=True,
            )
            for (message, _), outcome in zip(work, outcomes, strict=True):
                if outcome is None:
                    done.append(message)
                elif isinstance(outcome, Exception):
                    failed.append((message, outcome))
                else:
                    raise outcome  # cancelled, or the process is ending
            if done:
                await self.on_appended(done)
        if done:
            not_deleted = await self.queue.delete(done)
            self.metrics.count(self.queue.name, "deleted", len(done) - len(not_deleted))
        if failed:
            self.metrics.count(self.queue.name, "failed", len(failed))
            log.warning(
                "append failed; messages handed back to the queue",
                queue=self.queue.name,
                messages=len(failed),
                error=describe(failed[0][1]),
            )
            await self.queue.change_visibility([message for message, _ in failed], 0)
        return not failed

    async def _settle(self, message: SqsMessage, decision: Append | Quarantine) -> None:
        """Append the event, or the quarantined body with the message's id and attributes."""
        if isinstance(decision, Append):
            envelope = decision.envelope
            version = decision.as_written[0] if decision.as_written else None
            await self._producer.append_raw(
                self._producer.topic_for(envelope),
                encode(envelope, as_written=decision.as_written),
                key=envelope.key.encode(),
                headers=[*headers(envelope, version=version), *decision.headers],
            )
            self.metrics.count(self.queue.name, "appended")
            return
        position = await quarantine(
            self._producer,
            self._quarantine_topic,
            source=decision.source,
            raw=decision.raw,
            reason=decision.reason,
            extra_headers=decision.headers,
        )
        self.metrics.count(self.queue.name, "quarantined")
        log.warning(
            "quarantined",
            source=decision.source,
            message_id=message.message_id,
            reason=decision.reason,
            offset=position.offset,
        )

    async def on_appended(self, messages: Sequence[SqsMessage]) -> None:
        """Called once the log acknowledged ``messages``' records, before they are deleted.
        Does nothing; a hook for subclasses."""

    @contextlib.asynccontextmanager
    async def _kept_invisible(self, messages: Sequence[SqsMessage]) -> AsyncIterator[None]:
        """While the body runs, extend ``messages``' visibility every third of the timeout."""
        keeper = asyncio.create_task(self._keep_invisible(messages))
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_invisible(self, messages: Sequence[SqsMessage]) -> None:
        timeout = self._sqs.visibility_timeout_s
        while True:
            await asyncio.sleep(timeout / 3)
            await self.queue.change_visibility(messages, timeout)
