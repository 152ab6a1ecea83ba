"""Rebuilding the worker's book from the log on start.

1. Fold every ``calls`` record up to the current end (aiokafka batches, no effects).
2. Read ``abt`` and mark the ABT events already emitted.
3. Read ``tasks`` and append the call effects (reschedule, cancel) not derived before.
4. Read ``deadletter`` and dead-letter the unfoldable records not dead-lettered before.
5. Settle what every call still owes (a crash may have interrupted it), then open the book.
"""

from __future__ import annotations

import time

import structlog

from ringlog.config import Settings
from ringlog.schemas.abt import AbtEvent
from ringlog.streams.deadletter import HEADER_ORIGIN
from ringlog.streams.replay import read_to_end
from ringlog.worker.processor import CallProcessor

log = structlog.get_logger("ringlog.worker")


async def rebuild(settings: Settings, processor: CallProcessor) -> None:
    """Bring the processor's book up to the log's current end, then mark it ready."""
    started = time.perf_counter()
    kafka = settings.kafka
    records = 0
    async for batch in read_to_end(kafka, [settings.topic("calls")]):
        for record in batch:
            await processor.handle(record, live=False)
        records += len(batch)
    book = processor.book
    async for batch in read_to_end(kafka, [settings.topic("abt")]):
        for record in batch:
            payload = record.envelope.payload if record.envelope else None
            if isinstance(payload, AbtEvent):
                book.mark_abt(payload.call_ref, payload.name)
    async for batch in read_to_end(kafka, [settings.topic("tasks")]):
        for record in batch:
            await processor.handle_task(record, live=False)
    if processor.rebuild_poison:
        done: set[bytes] = set()
        async for batch in read_to_end(kafka, [settings.topic("deadletter")]):
            done.update(v for r in batch for k, v in r.headers if k == HEADER_ORIGIN)
        for record, exc in processor.rebuild_poison:
            if f"{record.topic}/{record.partition}/{record.offset}".encode() not in done:
                await processor.poisoned(record, exc)
        processor.rebuild_poison.clear()
    for state in book.states():
        await processor.settle(state)
    book.ready.set()
    log.info(
        "rebuilt",
        calls=len(book),
        records=records,
        seconds=round(time.perf_counter() - started, 3),
    )
