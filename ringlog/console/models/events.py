"""A call's events as the console shows them: the timeline of a call page (summary and
masked payload of each event, the dialog's stage changes marked) and the live list's feed
(type, topic and time only).

Pure: built from the timeline view's rows as recorded. Phone numbers are masked here
(:func:`ringlog.logs.mask_phone`), once, before anything reaches a template.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from ringlog.cli.tail import summary
from ringlog.logs import mask_phone
from ringlog.views.store import TimelineRow

#: The most of one event's payload a timeline shows (longer ones are cut, after masking).
PAYLOAD_CHARS = 20_000
#: The most of a dialog turn's text a list shows.
TEXT_CHARS = 400
#: Fields of an event's payload a summary names first.
_FIRST = ("event", "name", "call_status", "role", "stage", "reason", "disconnection_reason")


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


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "EventRow",
    "activity",
    "event_row",
    "event_summary",
    "feed_row",
    "last_stage",
    "masked_json",
    "timeline",
]
