"""The bridges a deployment runs, and how each is started: what ``ringlog bridge`` composes.

:func:`configured_bridges` reads the settings (pure): a bridge in for each inbound queue set
(``call_requests_queue`` as call requests, ``webhook_events_queue`` as Retell events), a
bridge out of ``abt`` for ``outbound_queue``; a setting left empty turns its bridge off.
:func:`run_bridges` runs them in one process until stopped; the first one to fail stops the
others and its error is raised. On the embedded stack, :func:`create_embedded_queues` makes
the queues in the moto server (which keeps nothing across restarts); anywhere else a queue
must exist, and a missing one is a clear :class:`~ringlog.errors.ConfigurationError` before
anything is received, appended or deleted.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ringlog.bridges.inbound import BridgeMetrics, InboundBridge
from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.outbound import run_outbound
from ringlog.bridges.sqs import SqsQueue
from ringlog.bridges.together import run_together
from ringlog.config import Settings, read_stack_file
from ringlog.errors import ConfigurationError
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import BY_NAME


@dataclass(frozen=True)
class SqsIn:
    """A bridge in: ``queue`` (a name or URL) holding bodies of ``kind``."""

    queue: str
    kind: InboundKind

    def describe(self) -> str:
        """One line for people: ``sqs-in <queue> as <kind>``."""
        return f"sqs-in {self.queue} as {self.kind.value}"


@dataclass(frozen=True)
class SqsOut:
    """A bridge out: the logical ``topic`` (``abt``) sent to ``queue`` (a name or URL)."""

    topic: str
    queue: str

    def describe(self) -> str:
        """One line for people: ``sqs-out <topic> to <queue>``."""
        return f"sqs-out {self.topic} to {self.queue}"


Bridge = SqsIn | SqsOut


def configured_bridges(settings: Settings) -> list[Bridge]:
    """The bridges of the queues set in ``settings.sqs`` (empty settings: none)."""
    sqs = settings.sqs
    found: list[Bridge] = []
    if sqs.call_requests_queue:
        found.append(SqsIn(sqs.call_requests_queue, InboundKind.CALL_REQUEST))
    if sqs.webhook_events_queue:
        found.append(SqsIn(sqs.webhook_events_queue, InboundKind.RETELL_EVENT))
    if sqs.outbound_queue:
        found.append(SqsOut("abt", sqs.outbound_queue))
    return found


def logical_topic(name: str) -> str:
    """``name`` if it is a declared topic (``abt``, ``calls`` …), else ``ConfigurationError``."""
    if name not in BY_NAME:
        raise ConfigurationError(
            f"--topic {name!r} is not a ringlog topic; one of: {', '.join(BY_NAME)}"
        )
    return name


async def run_sqs_in(
    settings: Settings,
    bridge: SqsIn,
    stop: asyncio.Event,
    *,
    registry: CollectorRegistry | None = None,
) -> None:
    """Check the queue exists (``ConfigurationError`` if not), then bridge it in until ``stop``."""
    queue = await SqsQueue.open(settings.sqs, bridge.queue)
    # connected on the first append: a broker that is down delays appends (the messages go
    # back to the queue, the pollers back off), it does not stop the bridge
    producer = LogProducer(settings.kafka)
    try:
        metrics = BridgeMetrics.shared(registry)
        await InboundBridge(settings, queue, bridge.kind, producer, metrics=metrics).run(stop)
    finally:
        await producer.stop()
        queue.close()


async def run_sqs_out(
    settings: Settings,
    bridge: SqsOut,
    stop: asyncio.Event,
    *,
    registry: CollectorRegistry | None = None,
) -> None:
    """Check the queue exists (``ConfigurationError`` if not), then bridge the topic out to
    it until ``stop``; raises :class:`~ringlog.bridges.outbound.SendFailed` when a record
    cannot be sent."""
    topic = settings.topic(logical_topic(bridge.topic))
    queue = await SqsQueue.open(settings.sqs, bridge.queue)
    try:
        await run_outbound(settings, queue, [topic], stop, registry=registry)
    finally:
        queue.close()


async def run_bridges(
    settings: Settings,
    bridges: Sequence[Bridge],
    stop: asyncio.Event | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> None:
    """Run ``bridges`` until ``stop``; the first failure stops the others and is raised."""
    loops = [
        functools.partial(run_sqs_in, settings, bridge, registry=registry)
        if isinstance(bridge, SqsIn)
        else functools.partial(run_sqs_out, settings, bridge, registry=registry)
        for bridge in bridges
    ]
    await run_together(loops, stop)


def on_embedded_sqs(settings: Settings) -> bool:
    """Whether ``settings`` reach the moto server ``ringlog dev up`` started under
    ``settings.home`` (not SQS given by ``RINGLOG_SQS_ENDPOINT_URL`` or real AWS)."""
    started = read_stack_file(settings.home).get("sqs")
    if not started:
        return False
    return settings.sqs.endpoint_url == started.get("endpoint_url")


async def create_embedded_queues(settings: Settings) -> list[str]:
    """Create the configured bridges' queues on the embedded stack's moto server (a no-op
    for those that exist; FIFO for a ``.fifo`` name); return their names. Anywhere else
    queues are not created: ``ConfigurationError``."""
    if not on_embedded_sqs(settings):
        raise ConfigurationError(
            "queues are created only on the embedded stack's moto server; create them in SQS"
        )
    names = []
    for bridge in configured_bridges(settings):
        queue = await SqsQueue.open(settings.sqs, bridge.queue, create=True)
        queue.close()
        names.append(queue.name)
    return names
