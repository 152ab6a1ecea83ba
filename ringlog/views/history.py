"""Time travel: a call's or a number's state at a past instant, folded with the live folds.

The state at an instant is the pure fold — the very function the live processors use — over
the entity's events recorded up to that instant:

* **A call** (:func:`call_state_at`): :func:`ringlog.calls.state.apply`, as the worker folds
  it, over the call's events on ``calls`` and ``abt`` whose ``recorded_at`` is at or before the
  instant, each topic in log order. The events come from the timeline view, which keeps every
  event of a call indexed by call ref (:meth:`~ringlog.views.store.ViewStore.call_rows`): one
  indexed lookup, the call's rows only.
* **A number's session** (:func:`session_at`): :func:`ringlog.sessions.state.apply`, as the
  sessions view folds it. That view keeps only the current state, so the history is read from
  the log: the number's partition of ``sessions`` (one of its partitions), from its first
  record to the last one the broker stamped at or before the instant (found by the broker's
  time index, ``ListOffsets`` by timestamp); other numbers' records on it are read and
  skipped. Nothing after the instant, and no other partition, is read.

An instant is an ISO-8601 datetime; one without an offset is taken as UTC
(:func:`parse_instant`). One before the log's start — the first record still held on the
entity's topic — or after now is refused (:func:`check_instant`), with a one-line
:class:`InstantRefused`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from ringlog.calls.state import CallState
from ringlog.calls.state import apply as apply_call
from ringlog.config import KafkaSettings
from ringlog.errors import RinglogError
from ringlog.projections.base import Event
from ringlog.schemas import Envelope, decode
from ringlog.sessions.state import SessionState
from ringlog.sessions.state import apply as apply_session
from ringlog.streams.deadletter import meant_for
from ringlog.streams.reading import first_timestamps, key_partition, read_partition
from ringlog.views.store import SESSIONS_VIEW, TimelineRow

#: An instant as the messages suggest writing one.
EXAMPLE = "2026-12-01T10:00:00Z"
#: The most of a refused input a message repeats.
_SHOWN_CHARS = 40


class InstantRefused(RinglogError):
    """An instant time travel cannot answer for: not an ISO-8601 datetime, before the log's
    start, or in the future. The message is one line saying which."""


def shown(instant: datetime) -> str:
    """``instant`` in UTC, to the millisecond, ``Z``-suffixed."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """The instant ``text`` names (ISO-8601, e.g. ``2026-12-01T10:00:00Z``), in UTC; without
    an offset it is taken as UTC. :class:`InstantRefused` when it is not a datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        cut = text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
        raise InstantRefused(f"{cut!r} is not an ISO-8601 datetime (write e.g. {EXAMPLE})") from exc


def check_instant(at: datetime, *, start: datetime | None, now: datetime) -> None:
    """Refuse (:class:`InstantRefused`) an instant after ``now``, or before ``start`` (the
    first record still held; ``None``: nothing is on the log yet)."""
    if at > now:
        raise InstantRefused(f"{shown(at)} is in the future (now is {shown(now)})")
    if start is None:
        raise InstantRefused(f"nothing is on the log yet: no state at {shown(at)}")
    if at < start:
        raise InstantRefused(
            f"{shown(at)} is before the log's start ({shown(start)}, its first record)"
        )


# -- the folds (pure) -----------------------------------------------------------------------


def timeline_events(rows: Iterable[TimelineRow]) -> list[Event]:
    """The timeline view's rows as the events they hold, at their positions (pure)."""
    return [Event(r.topic, r.partition, r.offset, decode(r.event.encode())) for r in rows]


def call_state_at(
    events: Iterable[Event], at: datetime, *, topics: Sequence[str]
) -> CallState | None:
    """The call's state at ``at``: its events on ``topics`` (``calls`` then ``abt``, what the
    worker folds) recorded at or before ``at``, folded with :func:`ringlog.calls.state.apply`
    in log order, topic by topic (``None``: none was recorded by then). An ``abt`` event only
    adds its activity's name to the state, so folding each topic after the other ends where
    the worker's interleaving does."""
    rank = {topic: i for i, topic in enumerate(topics)}
    chosen = sorted(
        (e for e in events if e.topic in rank and e.envelope.recorded_at <= at),
        key=lambda e: (rank[e.topic], e.partition, e.offset),
    )
    state: CallState | None = None
    for event in chosen:
        state = apply_call(state, event.envelope)
    return state


def session_state_at(envelopes: Iterable[Envelope], phone: str) -> SessionState | None:
    """The number's session after ``envelopes`` (``sessions`` events in log order; other
    numbers' are skipped), folded with :func:`ringlog.sessions.state.apply` (pure)."""
    state: SessionState | None = None
    for envelope in envelopes:
        if envelope.key == phone:
            state = apply_session(state, envelope)
    return state


def timeline_order(events: Iterable[Event]) -> list[Event]:
    """A call's events as its timeline lists them: in the order recorded (pure)."""
    return sorted(events, key=lambda e: (e.envelope.recorded_at, str(e.envelope.event_id)))


# -- reading --------------------------------------------------------------------------------


async def log_start(kafka: KafkaSettings, topics: Sequence[str]) -> datetime | None:
    """When the log of ``topics`` starts: the earliest first record still held by one of
    their partitions (``None`` when they hold nothing). One small fetch per partition."""
    return min((await first_timestamps(kafka, topics)).values(), default=None)


async def session_history(
    kafka: KafkaSettings, topic: str, phone: str, at: datetime
) -> list[Envelope]:
    """The number's events on ``topic`` (``sessions``) stamped at or before ``at``, in log
    order: its partition read from the start to the instant (see the module). Records that do
    not decode are skipped, as are re-driven copies meant for another processor than the
    sessions view (:func:`~ringlog.streams.deadletter.meant_for`)."""
    key = phone.encode()
    partition = await key_partition(kafka, topic, key)
    found: list[Envelope] = []
    async for batch in read_partition(kafka, topic, partition, until=at, role="history"):
        found.extend(
            r.envelope
            for r in batch
            if r.key == key and r.envelope is not None and meant_for(r.redriven_for, SESSIONS_VIEW)
        )
    return found


async def session_at(
    kafka: KafkaSettings, topic: str, phone: str, at: datetime, *, now: datetime | None = None
) -> tuple[SessionState | None, int]:
    """The number's session at ``at`` and how many of its events were folded: the instant is
    checked against ``topic``'s start and ``now``, then its history read and folded."""
    check_instant(at, start=await log_start(kafka, [topic]), now=now or datetime.now(UTC))
    envelopes = await session_history(kafka, topic, phone, at)
    return session_state_at(envelopes, phone), len(envelopes)


__all__ = [
    "EXAMPLE",
    "InstantRefused",
    "call_state_at",
    "check_instant",
    "log_start",
    "parse_instant",
    "session_at",
    "session_history",
    "session_state_at",
    "shown",
    "timeline_events",
    "timeline_order",
]
