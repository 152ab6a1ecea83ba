"""The console's view models: what a page or a live update shows, built from view rows.

Every function here is pure: it takes the rows the read side fetched (a call's
:class:`~ringlog.calls.state.CallState` from the worker's view, timeline rows as recorded, a
number's :class:`~ringlog.sessions.state.SessionState`) and returns frozen dataclasses the
templates render. Phone numbers are masked here, once, with the project's one rule
(:func:`ringlog.logs.mask_phone`); numbers and texts reach the templates masked only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from ringlog.calls.state import CallState
from ringlog.cli.tail import summary
from ringlog.logs import mask_phone
from ringlog.sessions.state import SessionState
from ringlog.views.store import TimelineRow

#: The three ABT activities of an outbound call, in the order they happen.
ABT_ORDER = ("voice_call_initiated", "call_started", "call_completed")
#: The most of one event's payload a timeline shows (longer ones are cut, after masking).
PAYLOAD_CHARS = 20_000
#: The most of a dialog turn's text a list shows.
TEXT_CHARS = 400
#: Fields of an event's payload a summary names first.
_FIRST = ("event", "name", "call_status", "role", "stage", "reason", "disconnection_reason")


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
class EventRow:
    """One event of a call's timeline: where it is on the log, when, what, and its payload."""

    topic: str
    position: str
    recorded_at: datetime
    type: str
    source: str
    call_ref: str
    #: one line of the payload's telling fields (numbers masked)
    summary: str
    #: the payload as indented JSON, numbers masked, cut at :data:`PAYLOAD_CHARS`
    payload: str
    #: the ABT activity, for an ``abt.event``
    abt: str | None = None
    #: a dialog turn's stage (where the session stood)
    stage: str | None = None
    #: the session's stage, when this dialog turn moved it
    stage_change: str | None = None


@dataclass(frozen=True)
class SessionRow:
    """One booking session as the sessions list shows it."""

    phone: str
    session_id: str
    status: str
    stage: str
    calls: int
    started_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    #: the call the session's page is reached through (its latest)
    call_ref: str | None
    slots: tuple[tuple[str, str], ...]
    active_call: str | None


@dataclass(frozen=True)
class TurnRow:
    """One thing said in a session's dialog."""

    call_ref: str
    at: datetime
    index: int
    role: str
    text: str
    stage: str | None


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


# -- calls ------------------------------------------------------------------------------------


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


# -- events -------------------------------------------------------------------------------------


def masked_json(data: Any, limit: int = PAYLOAD_CHARS) -> str:
    """``data`` as indented JSON with phone numbers masked, cut at ``limit`` characters."""
    text = mask_phone(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    if len(text) > limit:
        return f"{text[:limit]}\n… ({len(text) - limit} more characters)"
    return text


def _scalars(data: Mapping[str, Any], parent: str = "") -> list[tuple[str, Any]]:
    """The payload's scalar fields as ``(name, value)``; Retell's ``call`` object inline,
    other objects prefixed, lists and empty values left out."""
    found: list[tuple[str, Any]] = []
    for name, value in data.items():
        if value in (None, "", {}, []) or isinstance(value, list):
            continue
        if isinstance(value, dict):
            inline = not parent and name in ("call", "call_inbound")
            found.extend(_scalars(value, "" if inline else f"{parent}{name}."))
        else:
            found.append((f"{parent}{name}", value))
    return found


def event_summary(event_type: str, payload: Mapping[str, Any], key: str) -> str:
    """One line for an event: a dialog turn as ``role: text``, any other as its telling
    scalar fields (``name=value``, the key and long transcripts left out), numbers masked."""
    if event_type == "dialog.turn":
        text = " ".join(str(payload.get("text") or "").split())
        return mask_phone(f"{payload.get('role', '?')}: {_cut(text, TEXT_CHARS)}")
    fields = [
        (name, value)
        for name, value in _scalars(payload)
        if value != key and name not in ("transcript", "call_ref", "abt_id")
    ]
    fields.sort(key=lambda field: _FIRST.index(field[0]) if field[0] in _FIRST else len(_FIRST))
    return summary(fields)


def _brief(row: TimelineRow, envelope: Mapping[str, Any], prefix: str) -> EventRow:
    """The row's event without summary and payload."""
    payload = envelope.get("payload") or {}
    event_type = str(envelope.get("type", "?"))
    topic = row.topic.removeprefix(prefix)
    stage = payload.get("stage") if event_type == "dialog.turn" else None
    return EventRow(
        topic=topic,
        position=f"{topic}/{row.partition}:{row.offset}",
        recorded_at=row.recorded_at,
        type=event_type,
        source=str(envelope.get("source", "?")),
        call_ref=row.call_ref,
        summary="",
        payload="",
        abt=str(payload.get("name")) if event_type == "abt.event" else None,
        stage=str(stage) if stage else None,
    )


def event_row(row: TimelineRow, *, prefix: str) -> EventRow:
    """A timeline row as a call's timeline shows it: its envelope's type, source and time,
    a summary, and its payload masked."""
    envelope = orjson.loads(row.event)
    payload = envelope.get("payload") or {}
    brief = _brief(row, envelope, prefix)
    return replace(
        brief,
        summary=event_summary(brief.type, payload, row.call_ref),
        payload=masked_json(payload),
    )


def feed_row(row: TimelineRow, *, prefix: str) -> EventRow:
    """A timeline row as the live list's feed shows it: type, topic, time, the ABT activity
    or the dialog's stage; no summary and no payload (nothing said, nothing personal)."""
    return _brief(row, orjson.loads(row.event), prefix)


def timeline(
    rows: Iterable[TimelineRow], *, prefix: str, stage: str | None = None
) -> list[EventRow]:
    """A call's events in the order recorded (time, then event id, as the read API lists
    them), each dialog turn that moved the session's stage (from ``stage``, the stage
    before these rows) marked with the new stage."""
    ordered = sorted(rows, key=lambda r: (r.recorded_at, r.event_id))
    shown: list[EventRow] = []
    for row in ordered:
        event = event_row(row, prefix=prefix)
        if event.stage is not None and event.stage != stage:
            event = replace(event, stage_change=event.stage)
            stage = event.stage
        shown.append(event)
    return shown


def last_stage(events: Iterable[EventRow], default: str | None = None) -> str | None:
    """The stage of the last dialog turn among ``events`` (``default`` when none has one)."""
    stage = default
    for event in events:
        if event.stage is not None:
            stage = event.stage
    return stage


def activity(rows: Iterable[TimelineRow], *, prefix: str, limit: int) -> list[EventRow]:
    """The latest ``limit`` of ``rows``, newest first, as the feed shows them."""
    ordered = sorted(rows, key=lambda r: (r.recorded_at, r.event_id), reverse=True)
    return [feed_row(row, prefix=prefix) for row in ordered[:limit]]


# -- sessions -----------------------------------------------------------------------------------


def session_row(state: SessionState) -> SessionRow:
    """A session as listed (the number masked, slot values masked as text)."""
    return SessionRow(
        phone=mask_phone(state.phone),
        session_id=state.session_id,
        status=state.status,
        stage=state.stage,
        calls=len(state.call_refs),
        started_at=state.started_at,
        updated_at=state.updated_at,
        expires_at=state.expires_at,
        call_ref=state.call_refs[-1] if state.call_refs else None,
        slots=tuple((name, mask_phone(value)) for name, value in sorted(state.slots.items())),
        active_call=state.active_call,
    )


def session_rows(states: Iterable[SessionState]) -> list[SessionRow]:
    """Sessions as listed, the latest change first."""
    return [
        session_row(s)
        for s in sorted(states, key=lambda s: (s.updated_at, s.session_id), reverse=True)
    ]


def turns(rows: Iterable[TimelineRow], call_refs: Sequence[str]) -> list[TurnRow]:
    """The dialog turns among ``rows``, call by call in the order of ``call_refs``, each
    call's turns by their index; texts masked."""
    rank = {ref: i for i, ref in enumerate(call_refs)}
    found: list[tuple[int, int, TurnRow]] = []
    for row in rows:
        envelope = orjson.loads(row.event)
        if envelope.get("type") != "dialog.turn":
            continue
        payload = envelope.get("payload") or {}
        index = int(payload.get("turn_index", 0))
        text = mask_phone(" ".join(str(payload.get("text") or "").split()))
        turn = TurnRow(
            call_ref=row.call_ref,
            at=row.recorded_at,
            index=index,
            role=str(payload.get("role", "?")),
            text=text,
            stage=payload.get("stage"),
        )
        found.append((rank.get(row.call_ref, len(rank)), index, turn))
    return [turn for _, _, turn in sorted(found, key=lambda item: (item[0], item[1]))]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "ABT_ORDER",
    "Board",
    "BoardChanges",
    "CallRow",
    "EventRow",
    "SessionRow",
    "TurnRow",
    "activity",
    "board",
    "board_changes",
    "call_row",
    "call_status",
    "duration_text",
    "event_row",
    "event_summary",
    "feed_row",
    "in_progress",
    "last_stage",
    "latest_refs",
    "masked_json",
    "session_row",
    "session_rows",
    "timeline",
    "turns",
    "unknown_row",
]
