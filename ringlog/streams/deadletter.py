"""The dead-letter record: an event a processor could not handle, with the error beside it.

The record's value and key are the original bytes; headers say where it came from (topic,
partition, offset), which processor gave up, and why. Later events keep flowing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ringlog.streams.producer import Headers, LogProducer, RecordPosition

HEADER_ERROR = "ringlog-deadletter-error"
HEADER_PROCESSOR = "ringlog-deadletter-processor"
HEADER_ORIGIN = "ringlog-deadletter-origin"
HEADER_FAILED_AT = "ringlog-deadletter-failed-at"


def deadletter_headers(
    *, processor: str, error: str, topic: str, partition: int, offset: int
) -> Headers:
    """Headers naming the processor, the error and the record's original position."""
    return [
        (HEADER_PROCESSOR, processor.encode()),
        (HEADER_ERROR, error.encode()[:4096]),
        (HEADER_ORIGIN, f"{topic}/{partition}/{offset}".encode()),
        (HEADER_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]


async def dead_letter(
    log: LogProducer,
    deadletter_topic: str,
    *,
    processor: str,
    error: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: Headers | None = None,
) -> RecordPosition:
    """Append the failed record unchanged (plus its original headers) to ``deadletter_topic``."""
    return await log.append_raw(
        deadletter_topic,
        value,
        key=key,
        headers=list(headers or [])
        + deadletter_headers(
            processor=processor, error=error, topic=topic, partition=partition, offset=offset
        ),
    )
