"""Booking sessions as the console shows them: the sessions list's rows and a session's
dialog, turn by turn.

Pure: built from the sessions view's :class:`~ringlog.sessions.state.SessionState` and the
timeline view's ``dialog`` rows. Numbers and texts are masked here
(:func:`ringlog.logs.mask_phone`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from ringlog.logs import mask_phone
from ringlog.sessions.state import SessionState
from ringlog.views.store import TimelineRow


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


__all__ = ["SessionRow", "TurnRow", "session_row", "session_rows", "turns"]
