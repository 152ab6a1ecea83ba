"""A restarted projector ends the warehouse session its killed predecessor left open.

A projector killed inside a batch's transaction cannot roll it back. The server keeps that
session, with its transaction and its row versions: Snowflake leaves a detached transaction
holding its locks until it has been idle for hours, and the fakesnow server keeps it for good,
so every later update of the same rows fails ("Conflict on update!", HTTP 500) and the
restarted projector would retry its first batch forever.

So each connection the store opens for a projection first *claims* the projection:

1. read the session recorded in ``PROJECTOR_SESSIONS`` for the projection;
2. if it is not this connection's session, end it: ``SYSTEM$ABORT_SESSION(id)`` where the
   server gives session ids (Snowflake), or the connector's own logout request
   (``POST /session?delete=true`` with the session's token) where it gives none (the fakesnow
   stand-in; a token is recorded only then). Ending an already ended session is harmless;
3. record this connection's session.

This assumes one projector per projection name (as the checkpoints do): a second live
projector of the same name would end the first's session, whose batch then fails and is
retried. Claiming runs in autocommit, outside every batch transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ringlog.projections.warehouse.schema import PROJECTOR_SESSIONS, q

log = structlog.get_logger("ringlog.projections.warehouse")

#: How long ending a predecessor's session may take before the claim goes on without it.
END_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SessionHandle:
    """What is needed to end a session later: Snowflake's id, or else its token and server."""

    session_id: str | None
    token: str | None
    server: str


def handle_of(conn: Any, server: str) -> SessionHandle:
    """The handle of an open connector connection to ``server`` (``protocol://host:port``)."""
    session_id = conn.session_id
    if session_id is not None:
        return SessionHandle(str(session_id), None, server)
    return SessionHandle(None, str(conn.rest.token), server)


def claim(conn: Any, projection: str, server: str) -> SessionHandle | None:
    """Make ``conn``'s session the one recorded for ``projection``; end the one recorded before.

    Returns the handle of the session that was ended (or found already gone), ``None`` when
    there was none or it was this one.
    """
    ours = handle_of(conn, server)
    cursor = conn.cursor()
    cursor.execute(select_sql(), (projection,))
    found = cursor.fetchone()
    previous = SessionHandle(found[0], found[1], found[2]) if found else None
    ended = None
    if previous is not None and previous != ours:
        _end(cursor, previous)
        ended = previous
    cursor.execute(delete_sql(), (projection,))
    cursor.execute(insert_sql(), (projection, ours.session_id, ours.token, ours.server))
    return ended


def _end(cursor: Any, handle: SessionHandle) -> None:
    """End ``handle``'s session (rolling back its transaction); failures are only logged."""
    try:
        if handle.session_id is not None:
            cursor.execute("SELECT SYSTEM$ABORT_SESSION(?)", (int(handle.session_id),))
        else:
            response = httpx.post(
                f"{handle.server}/session",
                params={"delete": "true"},
                headers={"Authorization": f'Snowflake Token="{handle.token}"'},
                timeout=END_TIMEOUT_S,
            )
            if response.status_code not in (200, 401):  # 401: the session is already gone
                response.raise_for_status()
    except Exception as exc:  # noqa: BLE001 - the batch will fail and retry if it mattered
        log.warning("warehouse.previous_session_not_ended", error=f"{type(exc).__name__}: {exc}")
    else:
        log.info("warehouse.previous_session_ended", by_id=handle.session_id is not None)


def select_sql() -> str:
    """The session recorded for one projection."""
    t = PROJECTOR_SESSIONS
    return (
        f"SELECT {q('SESSION_ID')}, {q('SESSION_TOKEN')}, {q('SERVER')} FROM {q(t.name)} "
        f"WHERE {q('PROJECTION')} = ?"
    )


def delete_sql() -> str:
    """Forget the session recorded for one projection."""
    return f"DELETE FROM {q(PROJECTOR_SESSIONS.name)} WHERE {q('PROJECTION')} = ?"


def insert_sql() -> str:
    """Record a projection's session (claimed now)."""
    t = PROJECTOR_SESSIONS
    names = ", ".join(q(n) for n in ("PROJECTION", "SESSION_ID", "SESSION_TOKEN", "SERVER"))
    return (
        f"INSERT INTO {q(t.name)} ({names}, {q('CLAIMED_AT')}) "
        "VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP())"
    )
