"""Reads of booking sessions: the open ones, the session a call belongs to, its dialog.

* **open sessions** (:meth:`SessionReads.open_sessions`): the open ones (active or dropped),
  at most ``limit``, by the ``view_sessions (topic, open)`` index;
* **a call's session** (:meth:`SessionReads.session_of`): the call's state by the worker's
  primary key, then the sessions of its numbers by ``view_sessions``' key;
* **a session's dialog** (:meth:`SessionReads.dialog_rows`): by the timeline's ``call_ref``
  index, for its calls only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from sqlalchemy import Engine, func, select, true

from ringlog.calls.state import CallState
from ringlog.console.queries.calls import call_states
from ringlog.console.queries.timeline import row_select
from ringlog.console.queries.topics import ConsoleTopics
from ringlog.sessions.state import SessionState
from ringlog.views.store import SESSIONS, TIMELINE, TimelineRow


class SessionReads:
    """The reads of sessions of :class:`~ringlog.console.queries.reader.ConsoleReader`."""

    engine: Engine
    topics: ConsoleTopics

    async def open_sessions(self, limit: int) -> tuple[list[SessionState], int]:
        """Up to ``limit`` open sessions (active or dropped) and how many are open."""
        return await asyncio.to_thread(self._open_sessions, limit)

    def _open_sessions(self, limit: int) -> tuple[list[SessionState], int]:
        s = SESSIONS.c
        where = (s.topic == self.topics.sessions, s.open == true())
        with self.engine.connect() as connection:
            rows = connection.execute(select(s.state).where(*where).limit(limit))
            states = [SessionState.from_json(orjson.loads(raw)) for (raw,) in rows]
            total = len(states)
            if total >= limit:
                counted = select(func.count()).select_from(SESSIONS).where(*where)
                total = int(connection.execute(counted).scalar_one())
        return states, total

    async def session_of(self, call_ref: str) -> tuple[CallState | None, SessionState | None]:
        """The call's state and the session it belongs to: the session of one of its numbers
        (the patient's: ``to`` for an outbound call, ``from`` for an inbound one) that
        names the call."""
        return await asyncio.to_thread(self._session_of, call_ref)

    def _session_of(self, call_ref: str) -> tuple[CallState | None, SessionState | None]:
        s = SESSIONS.c
        with self.engine.connect() as connection:
            state = call_states(connection, self.topics.calls, [call_ref]).get(call_ref)
            if state is None:
                return None, None
            numbers = [n for n in (state.to_number, state.from_number) if n]
            if not numbers:
                return state, None
            rows = connection.execute(
                select(s.state).where(s.topic == self.topics.sessions, s.phone.in_(numbers))
            )
            sessions = [SessionState.from_json(orjson.loads(raw)) for (raw,) in rows]
        for session in sessions:
            if call_ref in session.call_refs:
                return state, session
        return state, None

    async def dialog_rows(self, call_refs: Sequence[str]) -> list[TimelineRow]:
        """The ``dialog`` rows of ``call_refs`` (a session's calls)."""
        if not call_refs:
            return []
        return await asyncio.to_thread(self._dialog_rows, list(call_refs))

    def _dialog_rows(self, call_refs: list[str]) -> list[TimelineRow]:
        t = TIMELINE.c
        query = row_select().where(t.call_ref.in_(call_refs), t.topic == self.topics.dialog)
        with self.engine.connect() as connection:
            return [TimelineRow(*row) for row in connection.execute(query)]


__all__ = ["SessionReads"]
