"""The quarantine record: raw input bytes exactly as received, with why they were refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ringlog.streams.producer import Headers, LogProducer, RecordPosition

HEADER_REASON = "ringlog-quarantine-reason"
HEADER_SOURCE = "ringlog-source"
HEADER_RECEIVED_AT = "ringlog-received-at"


def quarantine_headers(source: str, reason: str, received_at: datetime) -> Headers:
    """Headers of a quarantine record: the source, the reason and when it arrived."""
    return [
        (HEADER_SOURCE, source.encode()),
        (HEADER_REASON, reason.encode()[:4096]),
        (HEADER_RECEIVED_AT, received_at.astimezone(UTC).isoformat().encode()),
    ]


async def quarantine(
    log: LogProducer,
    topic: str,
    *,
    source: str,
    raw: bytes,
    reason: str,
    extra_headers: Sequence[tuple[str, bytes]] = (),
) -> RecordPosition:
    """Append ``raw`` unchanged to ``topic`` keyed by ``source``, acknowledged like any event.

    ``extra_headers`` add what the source knows of the input besides its bytes (an SQS
    message's id and attributes), after the quarantine headers.
    """
    return await log.append_raw(
        topic,
        raw,
        key=source.encode(),
        headers=[*quarantine_headers(source, reason, datetime.now(UTC)), *extra_headers],
    )
