"""The live calls board: one row per call, the board of calls in progress and the latest
others, and what changed between two boards (what the live list's stream sends).

Pure: built from the worker's :class:`~ringlog.calls.state.CallState` of each call and the
time of its latest event in the timeline view. Numbers are masked here
(:func:`ringlog.logs.mask_phone`); they reach the templates masked only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ringlog.calls.state import CallState
from ringlog.logs import mask_phone

#: The three ABT activities of an outbound call, in the order they happen.
ABT_ORDER = ("voice_call_initiated", "call_started", "call_completed")


@dataclass(frozen=True)
class CallRow:
    """One call as the live list and a timeline's header show it."""

    call_ref: str
    direction: str
    #: what the call is doing, in words (``in progress``, ``ended``, ``pending`` …)
    status: str
    #: ``live``, ``pending``, ``ended`` or ``failed`` (the row's colour)
    kind: str
    in_progress: bool
    from_number: str
    to_number: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    #: each ABT activity and whether it is on the log yet, in :data:`ABT_ORDER`
    abt: tuple[tuple[str, bool], ...]
    #: the time of the call's latest event in the timeline view, when known
    last_activity: datetime | None = None
    disconnection_reason: str | None = None
    recorded: bool = False

    @property
    def duration(self) -> str:
        """The duration as ``m:ss`` (``h:mm:ss`` past an hour); ``-`` when unknown."""
        return duration_text(self.duration_ms)

    @property
    def started_ms(self) -> int | None:
        """When the call connected, in epoch milliseconds (a live duration counts from it)."""
        return None if self.started_at is None else int(self.started_at.timestamp() * 1000)

    @property
    def abt_count(self) -> int:
        """How many ABT activities are on the log."""
        return sum(1 for _, done in self.abt if done)


@dataclass(frozen=True)
class Board:
    """The live list: the calls in progress, then the latest others."""

    in_progress: tuple[CallRow, ...]
    recent: tuple[CallRow, ...]

    def rows(self) -> tuple[CallRow, ...]:
        """Every row, in the order shown."""
        return self.in_progress + self.recent


@dataclass(frozen=True)
class BoardChanges:
    """What changed between two boards: rows to (re)draw, refs to drop, and the new order
    of each section."""

    upsert: tuple[CallRow, ...]
    remove: tuple[str, ...]
    in_progress: tuple[str, ...]
    recent: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.upsert or self.remove)


def duration_text(ms: int | None) -> str:
    """``ms`` as ``m:ss``, or ``h:mm:ss`` from an hour; ``-`` for ``None``."""
    if ms is None or ms < 0:
        return "-"
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def in_progress(state: CallState) -> bool:
    """Whether the call is under way: placed and not over (it holds one of Retell's slots),
    or announced by Retell (an inbound call) and not over."""
    return state.live or (not state.finished and state.phase in ("registered", "ongoing"))


def call_status(state: CallState) -> tuple[str, str]:
    """The call's status in words and its kind (``live``, ``pending``, ``ended``,
    ``failed``): a cancelled or refused request, then Retell's phase, then the dispatch."""
    if state.dispatch == "cancelled":
        return "cancelled", "ended"
    if state.dispatch == "failed":
        return "dispatch failed", "failed"
    recorded = ", recorded" if state.recorded else ""
    if state.phase == "ended":
        return f"ended{recorded}", "ended"
    if state.phase in ("not_connected", "error"):
        return f"{state.phase.replace('_', ' ')}{recorded}", "failed"
    if state.phase == "ongoing":
        return "in progress", "live"
    if state.phase == "registered":
        return "ringing", "live"
    if state.dispatch == "pending":
        return ("pending, retrying" if state.last_failure else "pending"), "pending"
    return "unknown", "pending"


def call_row(state: CallState, *, last_activity: datetime | None = None) -> CallRow:
    """The row of one call (numbers masked)."""
    status, kind = call_status(state)
    duration = state.duration_ms
    if duration is None and state.started_at and state.ended_at:
        duration = int((state.ended_at - state.started_at).total_seconds() * 1000)
    return CallRow(
        call_ref=state.call_ref,
        direction=state.direction or "-",
        status=status,
        kind=kind,
        in_progress=in_progress(state),
        from_number=mask_phone(state.from_number or "-"),
        to_number=mask_phone(state.to_number or "-"),
        started_at=state.started_at,
        ended_at=state.ended_at,
        duration_ms=duration,
        abt=tuple((name, name in state.abt_emitted) for name in ABT_ORDER),
        last_activity=last_activity,
        disconnection_reason=state.disconnection_reason,
        recorded=state.recorded,
    )


def unknown_row(call_ref: str, last_activity: datetime | None) -> CallRow:
    """The row of a call the timeline view has and the worker's view has not folded yet."""
    return CallRow(
        call_ref=call_ref,
        direction="-",
        status="not folded yet",
        kind="pending",
        in_progress=False,
        from_number="-",
        to_number="-",
        started_at=None,
        ended_at=None,
        duration_ms=None,
        abt=tuple((name, False) for name in ABT_ORDER),
        last_activity=last_activity,
    )


def latest_refs(rows: Iterable[tuple[str, datetime]], limit: int) -> list[tuple[str, datetime]]:
    """The ``limit`` call refs whose latest event is the most recent, newest first, each with
    that time, from ``(call_ref, recorded_at)`` rows in any order."""
    newest: dict[str, datetime] = {}
    for ref, at in rows:
        if ref not in newest or at > newest[ref]:
            newest[ref] = at
    ordered = sorted(newest.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return ordered[:limit]


def board(
    live: Iterable[CallState],
    recent: Sequence[tuple[str, datetime, CallState | None]],
    *,
    limit: int,
) -> Board:
    """The live list: every call in progress (the worker's live calls, and any recent one
    under way), newest start first; then the ``limit`` latest other calls, by their latest
    event. ``recent`` is ``(call_ref, latest event time, state or None)``, newest first."""
    activity = {ref: at for ref, at, _ in recent}
    going: dict[str, CallRow] = {}
    for live_state in live:
        ref = live_state.call_ref
        going[ref] = call_row(live_state, last_activity=activity.get(ref))
    others: list[CallRow] = []
    for ref, at, state in recent:
        if ref in going:
            continue
        if state is None:
            others.append(unknown_row(ref, at))
            continue
        row = call_row(state, last_activity=at)
        if row.in_progress:
            going[ref] = row
        else:
            others.append(row)
    ordered = sorted(going.values(), key=lambda r: (_sort_time(r), r.call_ref), reverse=True)
    return Board(in_progress=tuple(ordered), recent=tuple(others[:limit]))


def _sort_time(row: CallRow) -> float:
    """When a call in progress started (else its latest event), as a number for sorting."""
    at = row.started_at or row.last_activity
    return at.timestamp() if at is not None else 0.0


def board_changes(before: Mapping[str, CallRow], after: Board) -> BoardChanges:
    """The rows of ``after`` that are new or differ from ``before`` (keyed by call ref), the
    refs of ``before`` no longer shown, and the order of each section."""
    shown = after.rows()
    now = {row.call_ref for row in shown}
    return BoardChanges(
        upsert=tuple(row for row in shown if before.get(row.call_ref) != row),
        remove=tuple(ref for ref in before if ref not in now),
        in_progress=tuple(row.call_ref for row in after.in_progress),
        recent=tuple(row.call_ref for row in after.recent),
    )


__all__ = [
    "ABT_ORDER",
    "Board",
    "BoardChanges",
    "CallRow",
    "board",
    "board_changes",
    "call_row",
    "call_status",
    "duration_text",
    "in_progress",
    "latest_refs",
    "unknown_row",
]
