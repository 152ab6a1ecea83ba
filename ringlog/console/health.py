"""The console's health page: lag per reader and partition, parked records, the stack's parts.

What it shows, and where each part comes from (nothing is computed twice):

* **lag**: every consumer group and projection checkpoint of this deployment against the log's
  end, per partition — :func:`ringlog.cli.lag.collect` and :func:`ringlog.cli.lag.measure`,
  what ``ringlog lag`` prints;
* **dead letters**: the records processors parked, in the state their replay markers leave
  them — :func:`ringlog.streams.redrive.read_ledger`, what ``ringlog deadletter list`` reads
  (the whole ``deadletter`` topic, a small one; when it is empty, as usual, its offsets only);
* **quarantine**: how many raw inputs were refused (the topic's end minus its start, no record
  read) and the latest few, read from the partition's end backwards by offset;
* **the stack's parts**: the broker (its topic list), Redis (PING), the SQL database
  (``SELECT 1``) and the warehouse (a TCP connection) — the probes ``ringlog dev status``
  uses (:mod:`ringlog.devstack.parts`), at the configured addresses.

Each part is bounded by :data:`PART_TIMEOUT_S`: one that does not answer is shown so, with the
others. Gathering it all costs a few broker round trips and a warehouse login, so an answer is
kept :data:`HEALTH_TTL_S` and shared by the requests that arrive meanwhile (:class:`HealthCache`).
Keys, reasons and addresses are shown with phone numbers masked, database row values removed
(:func:`ringlog.logs.scrub`) and credentials left out of addresses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit

from ringlog.cli.lag import PartitionLag, Reader, collect, measure
from ringlog.config import Settings
from ringlog.console.queries.reader import ConsoleReader
from ringlog.console.queries.topics import ConsoleTopics
from ringlog.devstack.parts import configured_address, probe
from ringlog.logs import mask_phone, scrub
from ringlog.streams.admin import start_offsets, topic_names
from ringlog.streams.consumer import LogRecord
from ringlog.streams.offsets import end_offsets
from ringlog.streams.quarantine import HEADER_REASON, HEADER_RECEIVED_AT, HEADER_SOURCE
from ringlog.streams.reading import read_partition
from ringlog.streams.redrive import DeadLetter, read_ledger
from ringlog.streams.topics import TOPICS

#: How long one part may take before it is shown as not answering.
PART_TIMEOUT_S = 5.0
#: How long a gathered health answer is reused.
HEALTH_TTL_S = 2.0
#: How many of the latest dead letters and quarantined inputs are listed.
LATEST = 5
#: The longest reason shown.
REASON_CHARS = 200

T = TypeVar("T")


@dataclass(frozen=True)
class PartHealth:
    """One part of the stack and whether it answered."""

    name: str
    address: str
    answers: bool
    detail: str = ""


@dataclass(frozen=True)
class LagRow:
    """One reader's position on one topic: its lag per partition and in total."""

    reader: str
    kind: str
    store: str
    topic: str
    #: ``(partition, position, end, lag)`` per partition
    partitions: tuple[tuple[int, int, int, int], ...]

    @property
    def lag(self) -> int:
        """Records on the topic the reader has not read yet."""
        return sum(lag for *_, lag in self.partitions)


@dataclass(frozen=True)
class Parked:
    """One dead letter or quarantined input as listed."""

    at: datetime
    position: str
    who: str
    kind: str
    key: str
    reason: str
    state: str = ""


@dataclass(frozen=True)
class Health:
    """Everything the health page shows."""

    measured_at: datetime
    parts: tuple[PartHealth, ...]
    lag: tuple[LagRow, ...]
    deadletters: int | None
    deadletter_latest: tuple[Parked, ...]
    quarantined: int | None
    quarantine_latest: tuple[Parked, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_lag(self) -> int:
        """Records behind, over every reader and partition."""
        return sum(row.lag for row in self.lag)


# -- the pure parts ---------------------------------------------------------------------------


def lag_rows(report: Iterable[tuple[Reader, Sequence[PartitionLag]]], prefix: str) -> list[LagRow]:
    """One row per reader and topic (the topic without the deployment's prefix), partitions
    in order, readers as ``ringlog lag`` orders them."""
    rows: list[LagRow] = []
    for reader, lags in report:
        for topic in sorted({p.topic for p in lags}):
            partitions = tuple(
                (p.partition, p.position, p.end, p.lag)
                for p in sorted(lags, key=lambda p: p.partition)
                if p.topic == topic
            )
            rows.append(
                LagRow(
                    reader.name, reader.kind, reader.store, topic.removeprefix(prefix), partitions
                )
            )
    return rows


def _reason(text: str) -> str:
    reason = " ".join(scrub(text).split())
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


def parked_letters(letters: Sequence[DeadLetter], prefix: str, limit: int = LATEST) -> list[Parked]:
    """The latest ``limit`` dead letters, newest first: where parked, by which processor,
    from where, of which type, the key masked, the reason scrubbed, and their state."""
    return [
        Parked(
            at=letter.failed_at,
            position=f"#{letter.at.offset}",
            who=letter.projection,
            kind=letter.event_type or "(not an event)",
            key=mask_phone(letter.key_text) or "-",
            reason=_reason(letter.error),
            state=letter.state
            + (f" (from {letter.origin.shown(prefix)})" if letter.origin else ""),
        )
        for letter in sorted(letters, key=lambda e: e.at, reverse=True)[:limit]
    ]


def _header(record: LogRecord, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode(errors="replace")
    return None


def quarantined_inputs(
    records: Iterable[LogRecord], prefix: str, limit: int = LATEST
) -> list[Parked]:
    """The latest ``limit`` quarantined inputs, newest first: when received, from which
    source, how many bytes, and why refused (never the bytes themselves)."""
    rows: list[Parked] = []
    for record in sorted(records, key=lambda r: (r.timestamp_ms, r.offset), reverse=True)[:limit]:
        received = _header(record, HEADER_RECEIVED_AT)
        try:
            at = datetime.fromisoformat(received) if received else None
        except ValueError:
            at = None
        topic = record.topic.removeprefix(prefix)
        rows.append(
            Parked(
                at=at or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
                position=f"{topic}/{record.partition}:{record.offset}",
                who=_header(record, HEADER_SOURCE) or "-",
                kind=f"{len(record.value)} bytes",
                key=mask_phone((record.key or b"").decode(errors="replace")) or "-",
                reason=_reason(_header(record, HEADER_REASON) or ""),
            )
        )
    return rows


def shown_address(address: str) -> str:
    """An address without credentials: ``scheme://host:port`` (a SQLite URL: its file)."""
    if "://" not in address:
        return address
    parts = urlsplit(address)
    if parts.scheme.startswith("sqlite"):
        return f"{parts.scheme}:///{parts.path.rsplit('/', 1)[-1]}"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


# -- gathering --------------------------------------------------------------------------------


async def _bounded(work: Awaitable[T], what: str, notes: list[str]) -> T | None:
    """``work``'s result, or ``None`` with a note when it fails or takes too long."""
    try:
        return await asyncio.wait_for(work, PART_TIMEOUT_S)
    except TimeoutError:
        notes.append(f"{what}: no answer within {PART_TIMEOUT_S:.0f} s")
    except Exception as exc:  # noqa: BLE001 - any failure of one part is shown, not raised
        notes.append(f"{what}: {_reason(f'{type(exc).__name__}: {exc}')}")
    return None


async def _broker(settings: Settings) -> PartHealth:
    names = await topic_names(settings.kafka)
    missing = [t.name for t in TOPICS if settings.topic(t.name) not in names]
    detail = f"topics missing: {', '.join(missing)}" if missing else f"{len(TOPICS)} topics"
    return PartHealth("broker", settings.kafka.bootstrap, True, detail)


async def _probed(name: str, part: str, settings: Settings) -> PartHealth:
    address = configured_address(part, settings)
    answers = await asyncio.to_thread(probe, part, address)
    return PartHealth(name, shown_address(address), answers)


async def _spans(settings: Settings, topic: str) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition of ``topic``: its start and end offsets (no record read)."""
    ends = await end_offsets(settings.kafka, [topic])
    starts = await start_offsets(settings.kafka, sorted(ends))
    return {p: (starts[p], end) for p, end in ends.items()}


async def _deadletters(settings: Settings, topic: str) -> list[DeadLetter]:
    """The dead letters on ``topic`` (:func:`~ringlog.streams.redrive.read_ledger`); an empty
    topic, the usual case, is known from its offsets and not read."""
    spans = await _spans(settings, topic)
    if all(end <= start for start, end in spans.values()):
        return []
    return await read_ledger(settings.kafka, topic)


async def _quarantine(settings: Settings, topic: str) -> tuple[int, list[LogRecord]]:
    spans = await _spans(settings, topic)
    count = sum(end - start for start, end in spans.values())
    records: list[LogRecord] = []
    for (name, partition), (start, end) in sorted(spans.items()):
        first = max(start, end - LATEST)
        if end > first:
            async for batch in read_partition(
                settings.kafka, name, partition, start=first, role="console"
            ):
                records.extend(batch)
    return count, records


async def gather(settings: Settings, reader: ConsoleReader) -> Health:
    """Measure everything the health page shows, each part bounded (see the module)."""
    topics: ConsoleTopics = reader.topics
    notes: list[str] = []

    async def lag() -> list[tuple[Reader, list[PartitionLag]]]:
        readers, said = await collect(settings)
        notes.extend(said)
        return await measure(settings, readers)

    async def sql() -> PartHealth:
        return PartHealth("SQL database", shown_address(settings.crm.url), await reader.answers())

    stack = asyncio.gather(
        _bounded(_broker(settings), "broker", notes),
        _bounded(_probed("Redis", "redis", settings), "Redis", notes),
        _bounded(sql(), "SQL database", notes),
        _bounded(_probed("warehouse", "warehouse", settings), "warehouse", notes),
    )
    readers = asyncio.gather(
        _bounded(lag(), "lag", notes),
        _bounded(_deadletters(settings, topics.deadletter), "dead letters", notes),
        _bounded(_quarantine(settings, topics.quarantine), "quarantine", notes),
    )
    (broker, redis, database, warehouse), (report, letters, quarantine) = await asyncio.gather(
        stack, readers
    )
    parts = (
        broker or PartHealth("broker", settings.kafka.bootstrap, False),
        redis or PartHealth("Redis", shown_address(settings.redis.url), False),
        database or PartHealth("SQL database", shown_address(settings.crm.url), False),
        warehouse
        or PartHealth("warehouse", shown_address(configured_address("warehouse", settings)), False),
    )
    prefix = topics.prefix
    return Health(
        measured_at=datetime.now(UTC),
        parts=parts,
        lag=tuple(lag_rows(report or [], prefix)),
        deadletters=None if letters is None else sum(1 for e in letters if e.state != "redriven"),
        deadletter_latest=tuple(parked_letters(letters or [], prefix)),
        quarantined=None if quarantine is None else quarantine[0],
        quarantine_latest=tuple(quarantined_inputs(quarantine[1] if quarantine else [], prefix)),
        notes=tuple(notes),
    )


class HealthCache:
    """The latest :class:`Health`, reused for :data:`HEALTH_TTL_S`; requests arriving while
    it is being measured wait for that measurement instead of starting another."""

    def __init__(
        self, measure_health: Callable[[], Awaitable[Health]], ttl_s: float = HEALTH_TTL_S
    ) -> None:
        self._measure = measure_health
        self._ttl_s = ttl_s
        self._lock = asyncio.Lock()
        self._value: Health | None = None
        self._at = 0.0

    async def get(self) -> Health:
        """A measurement at most ``ttl_s`` old."""
        async with self._lock:
            if self._value is None or time.monotonic() - self._at > self._ttl_s:
                self._value = await self._measure()
                self._at = time.monotonic()
            return self._value


__all__ = [
    "HEALTH_TTL_S",
    "Health",
    "HealthCache",
    "LagRow",
    "Parked",
    "PartHealth",
    "gather",
    "lag_rows",
    "parked_letters",
    "quarantined_inputs",
    "shown_address",
]
