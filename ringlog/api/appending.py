"""Appending from request handlers: timed, logged with the call ref and event type, and
remembered for the response (:class:`~ringlog.api.middleware.WritePositions` names where a
request's writes landed in ``X-Ringlog-Position``, so a read elsewhere can ask to see them)."""

from __future__ import annotations

import time
from contextvars import ContextVar

import structlog

from ringlog.api.metrics import ApiMetrics
from ringlog.schemas import Envelope
from ringlog.schemas.codec import AsWritten
from ringlog.streams.consumer import follow
from ringlog.streams.producer import LogProducer, RecordPosition
from ringlog.streams.quarantine import quarantine

log = structlog.get_logger("ringlog.api")

#: the next offset after this request's writes, per partition (None outside a request)
written: ContextVar[dict[tuple[str, int], int] | None] = ContextVar("written", default=None)


async def append_event(
    producer: LogProducer,
    metrics: ApiMetrics,
    envelope: Envelope,
    *,
    as_written: AsWritten | None = None,
) -> RecordPosition:
    """Append ``envelope`` (acks=all), record the latency, and log where it landed."""
    topic = producer.topic_for(envelope)
    started = time.perf_counter()
    try:
        position = await producer.append(envelope, as_written=as_written)
    except BaseException:
        # so the failure logged further up (503) names the call and the event too
        structlog.contextvars.bind_contextvars(
            call_ref=envelope.correlation_id, event_type=envelope.type
        )
        raise
    metrics.append_timer(envelope.payload.topic).observe(time.perf_counter() - started)
    if (positions := written.get()) is not None:
        follow(positions, position.topic, position.partition, position.offset)
    # one line per request is debug: at thousands of requests/s it would dominate the CPU;
    # warnings and quarantines carry the same call ref and event type at info and above
    log.debug("appended", topic=topic, partition=position.partition, offset=position.offset)
    return position


async def quarantine_input(
    producer: LogProducer,
    metrics: ApiMetrics,
    topic: str,
    *,
    source: str,
    raw: bytes,
    reason: str,
    kind: str,
) -> RecordPosition:
    """Keep a rejected input on the quarantine topic and count it."""
    position = await quarantine(producer, topic, source=source, raw=raw, reason=reason)
    metrics.quarantined.labels(source, kind).inc()
    log.warning("quarantined", source=source, reason=reason, offset=position.offset)
    return position
