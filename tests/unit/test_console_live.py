"""The console's live streams: what they send as the views' checkpoints move (a reader
standing in for the database, so only the stream's logic is exercised)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from ringlog.calls.state import CallState
from ringlog.console.live import BoardUpdate, Feed, board_updates, format_since, parse_since
from ringlog.console.queries.calls import BoardRows
from ringlog.console.queries.checkpoints import Marks
from ringlog.console.queries.topics import ConsoleTopics, Position
from ringlog.schemas import AbtEvent, Envelope, abt_id_for
from ringlog.schemas.codec import encode
from ringlog.views.store import TimelineRow

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
TOPICS = ConsoleTopics("t.", "t.calls", "t.dialog", "t.abt", "t.sessions", "t.dl", "t.q")


def test_a_checkpoint_survives_its_text_form() -> None:
    positions = {("t.calls", 0): 12, ("t.abt", 5): 3, ("a/b", 1): 7}
    assert parse_since(format_since(positions)) == positions
    assert parse_since("t.calls/x:1,nothing,:3,t.abt/1:2") == {("t.abt", 1): 2}
    assert parse_since(None) == {}


def call(ref: str, phase: str) -> CallState:
    return CallState(call_ref=ref, direction="outbound", dispatch="dispatched", phase=phase)  # type: ignore[arg-type]


def abt_row(offset: int) -> TimelineRow:
    event = AbtEvent(abt_id=abt_id_for("c1", "call_started"), name="call_started", call_ref="c1")
    envelope = msgspec.structs.replace(Envelope.new(event, source="worker"), recorded_at=T0)
    return TimelineRow(
        "t.abt", 0, offset, "c1", T0, str(envelope.event_id), encode(envelope).decode()
    )


class Views:
    """The views as a stream sees them, changed by the test between polls."""

    topics = TOPICS

    def __init__(self) -> None:
        self.timeline: dict[Position, int] = {("t.abt", 0): 0}
        self.worker: dict[Position, int] = {("t.calls", 0): 1}
        self.phase = "ongoing"
        self.rows: list[TimelineRow] = []
        self.board_reads = 0

    async def marks(self) -> Marks:
        return Marks(dict(self.timeline), dict(self.worker))

    async def board_rows(self, limit: int) -> BoardRows:
        self.board_reads += 1
        state = call("c1", self.phase)
        live = (state,) if state.live else ()
        return BoardRows(live=live, recent=(("c1", T0, state),))

    async def latest_between(
        self, before: Mapping[Position, int], after: Mapping[Position, int], *_: Any
    ) -> list[TimelineRow]:
        return [r for r in self.rows if before.get((r.topic, r.partition), 0) <= r.offset]


async def test_the_board_stream_sends_the_board_then_only_what_changed() -> None:
    views = Views()
    stream = board_updates(views, limit=5, poll_s=0)  # type: ignore[arg-type]
    first = await anext(stream)
    assert isinstance(first, BoardUpdate) and first.full
    assert [r.status for r in first.changes.upsert] == ["in progress"]

    views.rows = [abt_row(0)]
    views.timeline = {("t.abt", 0): 1}
    feed = await anext(stream)  # the board did not change: only the new event
    assert isinstance(feed, Feed) and [e.abt for e in feed.events] == ["call_started"]
    assert feed.since == "t.abt/0:1"

    views.phase = "ended"
    views.worker = {("t.calls", 0): 2}
    update = await anext(stream)
    assert isinstance(update, BoardUpdate) and not update.full
    assert [r.status for r in update.changes.upsert] == ["ended"]
    assert update.changes.in_progress == () and update.changes.recent == ("c1",)
    reads = views.board_reads
    await stream.aclose()
    assert reads == 3, "the board is read again only when a checkpoint moved"
