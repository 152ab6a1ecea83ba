"""Dead letters re-driven once: what is parked on the dead-letter topic, and putting it back.

A processor that gives up on a record parks it on ``deadletter`` (:mod:`.deadletter`): the
original key, value and headers, plus headers naming the processor, the error and the
record's source position. After a fix, :func:`redrive` re-drives parked records:

* **Where it goes.** A *copy* of the parked record (same key, value and original headers) is
  appended to its source partition, with :data:`~.deadletter.HEADER_REDRIVE_FOR` naming the
  processor that parked it and :data:`~.deadletter.HEADER_REDRIVE_OF` the dead letter it
  re-drives. That processor's live runtime applies it like any record: with its retries, its
  checkpoint in the target's transaction, and — should it still fail — a new dead letter.
* **Only that processor.** Every other reader of the topic had applied the original, and
  would not drop a second one: the worker folds a call's events with
  :func:`ringlog.calls.state.apply`, which counts every ``call.dispatched`` attempt again; the
  sessions view folds a second ``session.started`` into a reset session; the CRM and the
  warehouse version rows by offset, so an old event at a new offset overwrites newer state
  (and the warehouse folds it into its call and session rows again); the timeline view keys
  rows by position, so the call would list the event twice. None of them deduplicates by event
  id. So the runtime skips a copy meant for another processor
  (:func:`~.deadletter.meant_for`, in :mod:`ringlog.projections.isolation`): checkpointed,
  never applied.
* **When.** The copy is applied where it lands: after every record before it. A target that
  versions rows by offset (the CRM, the warehouse) lets the event's columns overwrite what
  later events of the same key wrote in the meantime; a fold (the sessions view, the worker)
  folds it after them. That is what re-driving is — the event applied now — so look at the
  key's later events (``list`` shows the key) before re-driving an old one. A rebuild from the
  log's start skips every copy and meets the original instead (``ringlog rebuild``).
* **Once.** Markers on ``deadletter`` itself (keyed by the dead letter's original key) record
  each re-drive in two steps: *redriving* (before the copy is appended; it names the source
  partition's end offset read before, below which no copy can be) and *redriven* (after; it
  names the copy). A parked record with a *redriven* marker is never re-driven again. One
  left at *redriving* by a run that stopped midway is looked for on its source partition,
  from the offset its marker names: a copy found there (its ``HEADER_REDRIVE_OF`` names the
  dead letter) is marked *redriven*; otherwise the copy is appended then. Each copy is applied
  once by its processor (its checkpoint is written with its rows), so each parked event is
  delivered once, however often the replay is run or wherever it stopped. Two replays running
  at the same time are not guarded against: run one at a time.

What it reads: the whole dead-letter topic (a small topic: records that failed, and markers),
and, only for records left at *redriving*, their source partition from the marked offset on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, NamedTuple

import orjson

from ringlog.config import KafkaSettings
from ringlog.schemas.codec import HEADER_TYPE
from ringlog.streams.consumer import LogRecord
from ringlog.streams.deadletter import (
    HEADER_ERROR,
    HEADER_FAILED_AT,
    HEADER_ORIGIN,
    HEADER_PROCESSOR,
    HEADER_REDRIVE_FOR,
    HEADER_REDRIVE_OF,
)
from ringlog.streams.offsets import end_offsets
from ringlog.streams.producer import Headers, LogProducer
from ringlog.streams.reading import read_partition

#: On a marker: ``redriving`` or ``redriven``.
HEADER_REDRIVE_STATE = "ringlog-redrive-state"
#: On a *redriving* marker: the source partition's end before the copy (``topic/partition/offset``).
HEADER_REDRIVE_FROM = "ringlog-redrive-from"
#: On a *redriven* marker: where the copy landed (``topic/partition/offset``).
HEADER_REDRIVE_COPY = "ringlog-redrive-copy"

#: Headers a dead letter or a copy adds to the original record's (dropped from a new copy).
_ADDED = ("ringlog-deadletter-", "ringlog-redrive-")

State = Literal["parked", "redriving", "redriven"]


class Where(NamedTuple):
    """A record's place on the log."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def shown(self, prefix: str = "") -> str:
        """``topic/partition:offset``, the topic without the deployment's ``prefix``."""
        return f"{self.topic.removeprefix(prefix)}/{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Where | None:
        """The inverse of ``str()``; ``None`` for anything else (a topic may hold ``/``)."""
        topic, _, rest = text.rpartition("/")
        topic, _, partition = topic.rpartition("/")
        if not topic or not partition.isdigit() or not rest.isdigit():
            return None
        return cls(topic, int(partition), int(rest))


@dataclass(frozen=True)
class DeadLetter:
    """One parked record and what became of it."""

    #: where it is parked on the dead-letter topic
    at: Where
    key: bytes | None
    value: bytes
    #: every header it was parked with (the original's and the dead letter's)
    headers: tuple[tuple[str, bytes], ...]
    #: the processor that gave up (``projection:crm``)
    processor: str
    error: str
    #: where it was read when it failed
    origin: Where | None
    failed_at: datetime
    event_type: str | None
    state: State = "parked"
    #: *redriving*: the source position no copy can precede; *redriven*: where the copy is
    since: Where | None = None
    copy: Where | None = None

    @property
    def projection(self) -> str:
        """The processor's name without ``projection:``."""
        return self.processor.removeprefix("projection:")

    @property
    def key_text(self) -> str:
        """The key as text (empty when the record had none)."""
        return (self.key or b"").decode(errors="replace")

    def copy_headers(self) -> Headers:
        """The copy's headers: the original record's, then the processor it is for and the
        dead letter it re-drives (those of an earlier re-drive replaced)."""
        original = [(k, v) for k, v in self.headers if not k.startswith(_ADDED)]
        return [
            *original,
            (HEADER_REDRIVE_FOR, self.processor.encode()),
            (HEADER_REDRIVE_OF, str(self.at).encode()),
        ]


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return None


def _failed_at(text: str | None, timestamp_ms: int) -> datetime:
    if text:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def ledger(records: Iterable[LogRecord]) -> list[DeadLetter]:
    """The dead letters on the dead-letter topic's ``records`` (log order), each in the state
    its markers leave it (pure). Markers naming no parked record are ignored."""
    found: dict[str, DeadLetter] = {}
    for record in records:
        headers = record.headers
        state = _header(headers, HEADER_REDRIVE_STATE)
        if state is None:
            origin = _header(headers, HEADER_ORIGIN)
            if origin is None:
                continue  # not a dead letter
            at = Where(record.topic, record.partition, record.offset)
            found[str(at)] = DeadLetter(
                at=at,
                key=record.key,
                value=record.value,
                headers=headers,
                processor=_header(headers, HEADER_PROCESSOR) or "",
                error=_header(headers, HEADER_ERROR) or "",
                origin=Where.parse(origin),
                failed_at=_failed_at(_header(headers, HEADER_FAILED_AT), record.timestamp_ms),
                event_type=_header(headers, HEADER_TYPE),
            )
            continue
        of = _header(headers, HEADER_REDRIVE_OF)
        entry = found.get(of or "")
        if entry is None or entry.state == "redriven":
            continue
        if state == "redriving":
            since = Where.parse(_header(headers, HEADER_REDRIVE_FROM) or "")
            found[str(entry.at)] = replace(entry, state="redriving", since=since)
        elif state == "redriven":
            copy = Where.parse(_header(headers, HEADER_REDRIVE_COPY) or "")
            found[str(entry.at)] = replace(entry, state="redriven", copy=copy)
    return sorted(found.values(), key=lambda e: e.at)


def chosen(
    letters: Iterable[DeadLetter],
    *,
    key: str | None = None,
    projection: str | None = None,
    redriven: bool = True,
) -> list[DeadLetter]:
    """The dead letters of ``key`` and of ``projection`` (either may be ``None``: any), with
    those already re-driven only when ``redriven`` (pure)."""
    return [
        e
        for e in letters
        if (key is None or e.key_text == key)
        and (projection is None or projection in (e.projection, e.processor))
        and (redriven or e.state != "redriven")
    ]


def marker(letter: DeadLetter, state: State, where: Where) -> tuple[bytes, Headers]:
    """The value and headers of a *redriving* (``where``: the source position no copy can
    precede) or *redriven* (``where``: the copy) marker for ``letter``."""
    named = HEADER_REDRIVE_FROM if state == "redriving" else HEADER_REDRIVE_COPY
    value = orjson.dumps({"redrive_of": str(letter.at), "state": state, "at": str(where)})
    return value, [
        (HEADER_REDRIVE_STATE, state.encode()),
        (HEADER_REDRIVE_OF, str(letter.at).encode()),
        (named, str(where).encode()),
    ]


def copies_of(records: Iterable[LogRecord], wanted: Iterable[Where]) -> dict[Where, Where]:
    """Among source ``records``, the copies re-driving the ``wanted`` dead letters: dead letter
    → where its copy is (pure)."""
    names = {str(w): w for w in wanted}
    found: dict[Where, Where] = {}
    for record in records:
        of = _header(record.headers, HEADER_REDRIVE_OF)
        if of in names and _header(record.headers, HEADER_REDRIVE_STATE) is None:
            found.setdefault(names[of], Where(record.topic, record.partition, record.offset))
    return found


# -- I/O --------------------------------------------------------------------------------------


async def read_ledger(kafka: KafkaSettings, deadletter_topic: str) -> list[DeadLetter]:
    """Every dead letter on ``deadletter_topic`` in its current state: the whole topic is read,
    from its start to its end (a small topic: records that failed, and replay markers)."""
    records: list[LogRecord] = []
    partitions = sorted(p for t, p in await end_offsets(kafka, [deadletter_topic]))
    for partition in partitions:
        async for batch in read_partition(kafka, deadletter_topic, partition, role="deadletter"):
            records.extend(batch)
    return ledger(records)


@dataclass
class Outcome:
    """What a replay did with one dead letter."""

    letter: DeadLetter
    #: ``redriven`` (a copy appended now), ``found`` (a copy from a stopped run was found) or
    #: ``planned`` (a dry run)
    done: Literal["redriven", "found", "planned"]
    copy: Where | None = None


async def redrive(
    kafka: KafkaSettings,
    deadletter_topic: str,
    letters: Sequence[DeadLetter],
    *,
    dry_run: bool = False,
    said: Callable[[Outcome], None] = lambda _outcome: None,
) -> list[Outcome]:
    """Re-drive ``letters`` (from :func:`ledger`; those already *redriven* are left alone), in
    dead-letter order, once each (see the module). ``said`` hears each outcome as it happens.
    A dry run appends nothing and reads no source partition."""
    todo = [e for e in letters if e.state != "redriven" and e.origin is not None]
    if dry_run:
        planned = [Outcome(e, "planned") for e in todo]
        for outcome in planned:
            said(outcome)
        return planned
    found = await _earlier_copies(kafka, [e for e in todo if e.state == "redriving"])
    fresh = sorted({e.origin.topic for e in todo if e.origin is not None and e.state == "parked"})
    # read before any copy of this run is appended: no copy of this run can precede them
    ends = await end_offsets(kafka, fresh) if fresh else {}
    outcomes: list[Outcome] = []
    async with LogProducer(kafka) as log:
        for letter in todo:
            origin = letter.origin
            assert origin is not None
            copy = found.get(letter.at)
            if copy is None:
                if letter.state == "parked":
                    since = Where(
                        origin.topic,
                        origin.partition,
                        ends.get((origin.topic, origin.partition), 0),
                    )
                    await _mark(log, deadletter_topic, letter, "redriving", since)
                position = await log.append_raw(
                    origin.topic,
                    letter.value,
                    key=letter.key,
                    headers=letter.copy_headers(),
                    partition=origin.partition,
                )
                copy = Where(position.topic, position.partition, position.offset)
                outcome = Outcome(letter, "redriven", copy)
            else:
                outcome = Outcome(letter, "found", copy)
            await _mark(log, deadletter_topic, letter, "redriven", copy)
            outcomes.append(outcome)
            said(outcome)
    return outcomes


async def _mark(
    log: LogProducer, deadletter_topic: str, letter: DeadLetter, state: State, where: Where
) -> None:
    value, headers = marker(letter, state, where)
    await log.append_raw(deadletter_topic, value, key=letter.key, headers=headers)


async def _earlier_copies(
    kafka: KafkaSettings, letters: Sequence[DeadLetter]
) -> Mapping[Where, Where]:
    """The copies that runs stopped midway appended for ``letters`` (left at *redriving*):
    each of their source partitions read once, from the lowest offset their markers name."""
    starts: dict[tuple[str, int], int] = {}
    for letter in letters:
        since = letter.since or (
            Where(letter.origin.topic, letter.origin.partition, letter.origin.offset)
            if letter.origin
            else None
        )
        if since is None:
            continue
        place = (since.topic, since.partition)
        starts[place] = min(since.offset, starts.get(place, since.offset))
    found: dict[Where, Where] = {}
    for (topic, partition), start in sorted(starts.items()):
        async for batch in read_partition(kafka, topic, partition, start=start, role="redrive"):
            found.update(copies_of(batch, [e.at for e in letters]))
    return found


__all__ = [
    "HEADER_REDRIVE_COPY",
    "HEADER_REDRIVE_FROM",
    "HEADER_REDRIVE_STATE",
    "DeadLetter",
    "Outcome",
    "Where",
    "chosen",
    "copies_of",
    "ledger",
    "marker",
    "read_ledger",
    "redrive",
]
