"""The dead-letter record: an event a processor could not handle, with the error beside it.

The record's value and key are the original bytes; headers say where it came from (topic,
partition, offset), which processor gave up, and why. Later events keep flowing.

A parked record is re-driven (``ringlog deadletter replay``, :mod:`ringlog.streams.redrive`) by
appending a *copy* of it to its source partition that names, in :data:`HEADER_REDRIVE_FOR`,
the one processor it is for: every other processor reading that topic skips it
(:func:`meant_for`), since it had applied the original already.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ringlog.streams.consumer import HEADER_REDRIVE_FOR as HEADER_REDRIVE_FOR  # re-exported
from ringlog.streams.producer import Headers, LogProducer, RecordPosition

HEADER_ERROR = "ringlog-deadletter-error"
HEADER_PROCESSOR = "ringlog-deadletter-processor"
HEADER_ORIGIN = "ringlog-deadletter-origin"
HEADER_FAILED_AT = "ringlog-deadletter-failed-at"
#: On a re-driven copy and on the markers of a replay: the dead letter it re-drives
#: (``topic/partition/offset`` on the dead-letter topic).
HEADER_REDRIVE_OF = "ringlog-redrive-of"


def processor_of(projection: str) -> str:
    """The processor name a projection's dead letters carry (``projection:crm``)."""
    return f"projection:{projection}"


def meant_for(redriven: str | None, projection: str) -> bool:
    """Whether a record re-driven for ``redriven`` (``None``: not a copy; a consumed record's
    ``LogRecord.redriven_for``) is ``projection``'s to apply: every record is, except a
    re-driven copy naming another processor."""
    return redriven is None or redriven == processor_of(projection)


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
