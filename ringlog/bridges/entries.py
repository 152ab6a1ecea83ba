"""A record bridged out, as an SQS entry (pure), and where the checkpoint stands after a send.

Each record becomes one message: the body is the event's envelope as JSON (at the current
schema version, as every reader of the log decodes it), and string attributes carry what a
consumer routes on without decoding it (type, version, event id, key) and where it came from
(``topic-partition-offset``). For a FIFO queue the message group is the record's key (a call's
events stay in order) and the deduplication id is ``topic-partition-offset``: a record sent
again (after a restart between the send and the checkpoint) is dropped by SQS inside its
five-minute deduplication window. A standard queue has no such window: a consumer
deduplicates on the ``ringlog-event-id`` attribute.

Batches hold at most :data:`MAX_BATCH` entries and ``max_bytes`` of payload (SQS counts the
body and the attributes); an entry larger than that goes alone, and SQS judges it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ringlog.projections.base import Event
from ringlog.schemas import encode
from ringlog.streams.offsets import Position

#: SQS takes at most 10 entries per batch request.
MAX_BATCH = 10
#: Message attributes ringlog sets on what it sends.
ATTR_TYPE = "ringlog-type"
ATTR_VERSION = "ringlog-version"
ATTR_EVENT_ID = "ringlog-event-id"
ATTR_KEY = "ringlog-key"
ATTR_POSITION = "ringlog-position"

#: What SQS accepts in a group or deduplication id: 1-128 printable ASCII characters.
_TOKEN = re.compile(r"^[\x21-\x7e]{1,128}$")

T = TypeVar("T")

#: A record's place on the log: ``(topic, partition, offset)``.
Offset = tuple[str, int, int]


@dataclass(frozen=True)
class OutboundEntry:
    """One record as the message to send."""

    topic: str
    partition: int
    offset: int
    body: str
    attributes: Mapping[str, str]
    #: FIFO queues only
    group_id: str | None = None
    dedup_id: str | None = None

    @property
    def where(self) -> Offset:
        """The record's ``(topic, partition, offset)``."""
        return (self.topic, self.partition, self.offset)

    @property
    def size(self) -> int:
        """The bytes SQS counts against its limits: the body, each attribute's name, type
        (``String``) and value."""
        attributes = sum(
            len(name.encode()) + len("String") + len(value.encode())
            for name, value in self.attributes.items()
        )
        return len(self.body.encode()) + attributes

    def request(self, entry_id: str) -> dict[str, Any]:
        """This entry in a ``SendMessageBatch`` request, under the batch-local ``entry_id``."""
        entry: dict[str, Any] = {
            "Id": entry_id,
            "MessageBody": self.body,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value}
                for name, value in self.attributes.items()
            },
        }
        if self.group_id is not None:
            entry["MessageGroupId"] = self.group_id
        if self.dedup_id is not None:
            entry["MessageDeduplicationId"] = self.dedup_id
        return entry


def sqs_token(value: str) -> str:
    """``value`` as a group or deduplication id: itself when SQS takes it (1-128 printable
    ASCII characters), else ``h-`` and 64 hex digits of its SHA-256 (the same value always
    gives the same id, so order and deduplication still hold)."""
    if _TOKEN.match(value):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()


def dedup_id(topic: str, partition: int, offset: int) -> str:
    """A record's deduplication id: ``topic-partition-offset``."""
    return sqs_token(f"{topic}-{partition}-{offset}")


def entry_for(event: Event, *, fifo: bool) -> OutboundEntry:
    """The message for one record (``fifo``: with group and deduplication ids)."""
    envelope = event.envelope
    position = f"{event.topic}-{event.partition}-{event.offset}"
    return OutboundEntry(
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
        body=encode(envelope).decode(),
        attributes={
            ATTR_TYPE: envelope.type,
            ATTR_VERSION: str(envelope.schema_version),
            ATTR_EVENT_ID: str(envelope.event_id),
            ATTR_POSITION: position,
            # SQS refuses an attribute with an empty value
            **({ATTR_KEY: envelope.key} if envelope.key else {}),
        },
        group_id=sqs_token(envelope.key or event.topic) if fifo else None,
        dedup_id=dedup_id(event.topic, event.partition, event.offset) if fifo else None,
    )


def entries_for(events: Sequence[Event], *, fifo: bool) -> list[OutboundEntry]:
    """The messages for ``events``, in log order (a projection's ``project``)."""
    return [entry_for(event, fifo=fifo) for event in events]


def batches(items: Sequence[T], size: int = MAX_BATCH) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``, in order."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def send_batches(
    entries: Sequence[OutboundEntry], *, max_bytes: int, size: int = MAX_BATCH
) -> Iterator[list[OutboundEntry]]:
    """``entries`` in consecutive batches, in order, of at most ``size`` entries and
    ``max_bytes`` bytes (:attr:`OutboundEntry.size`); an entry over ``max_bytes`` goes alone."""
    batch: list[OutboundEntry] = []
    used = 0
    for entry in entries:
        if batch and (len(batch) == size or used + entry.size > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(entry)
        used += entry.size
    if batch:
        yield batch


def delivered_positions(
    entries: Sequence[OutboundEntry],
    accepted: Collection[Offset],
    positions: Mapping[Position, int],
) -> dict[Position, int]:
    """The checkpoint a batch may write when only ``accepted`` of its ``entries`` were sent:
    per partition, the batch's next offset (``positions``) if every entry of the partition was
    accepted, else the offset of its first entry not accepted — never past a record SQS did
    not take."""
    first_unsent: dict[Position, int] = {}
    for entry in entries:
        if entry.where not in accepted:
            key = (entry.topic, entry.partition)
            first_unsent[key] = min(entry.offset, first_unsent.get(key, entry.offset))
    return {
        position: min(offset, first_unsent.get(position, offset))
        for position, offset in positions.items()
    }


def still_to_send(
    entries: Sequence[OutboundEntry],
    checkpoint: Mapping[Position, int],
    accepted: Collection[Offset],
) -> list[OutboundEntry]:
    """The entries of a batch not yet sent, in order: at or past the partition's
    ``checkpoint`` and not among those SQS already ``accepted`` (a batch retried after a
    failure sends only what it has not delivered)."""
    return [
        entry
        for entry in entries
        if entry.offset >= checkpoint.get((entry.topic, entry.partition), 0)
        and entry.where not in accepted
    ]
