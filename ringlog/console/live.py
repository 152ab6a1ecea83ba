"""Live updates for the console's pages: poll the views' checkpoints, send what changed.

A stream reads the two checkpoints every :data:`POLL_S` (:meth:`ConsoleReader.marks`: a few
rows by primary key). While they do not move, nothing else is read and nothing is sent (the
server-sent-events layer sends a comment now and then to keep the connection). When they move:

* **the live list** (:func:`board_updates`) reads the board again (bounded: see
  :mod:`ringlog.console.queries.calls`) and sends the rows that differ from what it sent before
  (:func:`~ringlog.console.models.board.board_changes`), then the events recorded since the last
  checkpoint seen (at most :data:`PER_PARTITION` per partition), newest first, for the feed;
* **a call's timeline** (:func:`call_updates`) reads the call's rows recorded since (per
  partition, by primary key, the call's only) and, when the worker's checkpoint moved, the
  call's state.

Both start from the checkpoint the page was rendered at (``since``), so nothing recorded
between the page and its stream is missed; the browser drops an event it already shows (by
its position). The first message of the live list is the whole board.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from ringlog.console.models.board import (
    Board,
    BoardChanges,
    CallRow,
    board,
    board_changes,
    call_row,
)
from ringlog.console.models.events import EventRow, activity, last_stage, timeline
from ringlog.console.queries.checkpoints import Marks
from ringlog.console.queries.reader import ConsoleReader
from ringlog.console.queries.topics import Position
from ringlog.views.store import TimelineRow

#: How often a stream looks at the checkpoints.
POLL_S = 0.5
#: The most new timeline rows read per partition and poll.
PER_PARTITION = 200
#: The most events the live list's feed shows.
FEED = 20


@dataclass(frozen=True)
class BoardUpdate:
    """A change of the live list (``full``: the whole board, drawn anew); ``since``: the
    timeline checkpoint it reflects (:func:`format_since`)."""

    changes: BoardChanges
    since: str
    full: bool = False


@dataclass(frozen=True)
class Feed:
    """Events recorded since the last update, newest first, up to the checkpoint ``since``."""

    events: tuple[EventRow, ...]
    since: str


@dataclass(frozen=True)
class CallUpdate:
    """A call's new events (in the order recorded) and its state, when it changed, up to
    the checkpoint ``since``."""

    events: tuple[EventRow, ...]
    since: str
    row: CallRow | None = None


#: The most partitions a checkpoint given by a client names (more are ignored).
SINCE_MAX = 256


def parse_since(text: str | None) -> dict[Position, int]:
    """A checkpoint written by :func:`format_since` (``topic/partition:offset`` pairs,
    comma-separated); anything malformed is left out, and pairs past :data:`SINCE_MAX`."""
    found: dict[Position, int] = {}
    for part in (text or "").split(",", SINCE_MAX)[:SINCE_MAX]:
        where, _, offset = part.rpartition(":")
        topic, _, partition = where.rpartition("/")
        if topic and partition.isdigit() and offset.isdigit():
            found[(topic, int(partition))] = int(offset)
    return found


def format_since(positions: Mapping[Position, int]) -> str:
    """A checkpoint as ``topic/partition:offset`` pairs, comma-separated."""
    return ",".join(f"{t}/{p}:{n}" for (t, p), n in sorted(positions.items()))


async def read_board(reader: ConsoleReader, limit: int) -> Board:
    """The live list now."""
    rows = await reader.board_rows(limit)
    return board(rows.live, rows.recent, limit=limit)


async def _starting_marks(reader: ConsoleReader, since: Mapping[Position, int] | None) -> Marks:
    """Where a stream starts: the timeline checkpoint ``since`` (the page's; default: now)
    and the worker's checkpoint now."""
    marks = await reader.marks()
    return Marks(timeline=dict(since) if since else marks.timeline, worker=marks.worker)


async def _moves(
    reader: ConsoleReader, seen: Marks, *, at_once: bool, poll_s: float
) -> AsyncIterator[tuple[Marks, Marks]]:
    """Forever, each time the checkpoints move: those seen before and those now. They are
    looked at every ``poll_s`` (the first time without waiting when ``at_once``)."""
    first = at_once
    while True:
        if not first:
            await asyncio.sleep(poll_s)
        first = False
        now = await reader.marks()
        if now == seen:
            continue
        yield seen, now
        seen = now


async def board_updates(
    reader: ConsoleReader,
    *,
    limit: int,
    since: Mapping[Position, int] | None = None,
    poll_s: float = POLL_S,
) -> AsyncIterator[BoardUpdate | Feed]:
    """The live list's updates, forever: the whole board first, then changes (see the
    module). ``since``: the timeline checkpoint the page showed (default: now)."""
    start = await _starting_marks(reader, since)
    current = await read_board(reader, limit)
    yield BoardUpdate(board_changes({}, current), format_since(start.timeline), full=True)
    shown = {row.call_ref: row for row in current.rows()}
    async for seen, now in _moves(reader, start, at_once=True, poll_s=poll_s):
        if now.worker != seen.worker or now.timeline != seen.timeline:
            current = await read_board(reader, limit)
            changes = board_changes(shown, current)
            shown = {row.call_ref: row for row in current.rows()}
            if changes:
                yield BoardUpdate(changes, format_since(seen.timeline))
        if now.timeline != seen.timeline:
            rows = await reader.latest_between(seen.timeline, now.timeline, PER_PARTITION, FEED)
            events = activity(rows, prefix=reader.topics.prefix, limit=FEED)
            if events:
                yield Feed(tuple(events), format_since(now.timeline))


async def call_updates(
    reader: ConsoleReader,
    call_ref: str,
    *,
    since: Mapping[Position, int] | None = None,
    shown: CallRow | None = None,
    stage: str | None = None,
    poll_s: float = POLL_S,
) -> AsyncIterator[CallUpdate]:
    """A call's new events and state changes, forever (see the module). ``since``: the
    timeline checkpoint its page was rendered at; ``shown``: the state it showed;
    ``stage``: the session's stage at its last dialog turn shown."""
    start = await _starting_marks(reader, since)
    async for seen, now in _moves(reader, start, at_once=since is not None, poll_s=poll_s):
        rows: list[TimelineRow] = []
        if now.timeline != seen.timeline:
            rows = await reader.rows_between(
                seen.timeline, now.timeline, PER_PARTITION, call_ref=call_ref
            )
        row = None
        if now.worker != seen.worker:
            state = await reader.call(call_ref)
            fresh = None if state is None else call_row(state)
            if fresh is not None and fresh != shown:
                row = shown = fresh
        events = timeline(rows, prefix=reader.topics.prefix, stage=stage)
        stage = last_stage(events, stage)
        if events or row is not None:
            yield CallUpdate(tuple(events), format_since(now.timeline), row)


__all__ = [
    "FEED",
    "POLL_S",
    "BoardUpdate",
    "CallUpdate",
    "Feed",
    "board_updates",
    "call_updates",
    "format_since",
    "parse_since",
    "read_board",
]
