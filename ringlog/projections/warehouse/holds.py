"""A rebuild holds the live warehouse projector's writes while it swaps a new version in.

Snowflake has no row locks to take and its fakesnow stand-in (DuckDB, optimistic) has no
locks at all, so the hold is a row of ``PROJECTION_HOLDS`` per projection that both sides
write, and their writes conflict where they must:

* **the fence** — every batch of a projector (a store made the projection's:
  :meth:`~.store.WarehouseStore.hold`) starts its transaction with :func:`fence_sql`:
  ``TURN = TURN + 1`` where the row is not held (no ``HOLDER``, or its ``HELD_UNTIL`` has
  passed). One row changed: the batch goes on. None: the projection is held (or the row is
  missing: :func:`ensure_sql` creates it), and the batch is rolled back having written
  nothing, then tried again (:class:`~.store.WarehouseHeld`).
* **taking the hold** (:func:`take`), in two autocommitted statements: the rebuild records
  itself as ``HOLDER`` (a batch fencing after that commits changes no row), then moves
  ``TURN`` itself, the *barrier*: it cannot commit while a batch that fenced before the hold
  is in flight (on Snowflake the UPDATE waits for that batch's table lock; on fakesnow it
  fails on the write-write conflict and the connector retries it until the batch has
  committed). When :func:`take` returns, every batch the projector commits before the hold
  ends has committed, so the live position read then is the last one.
* **the swap** starts its transaction with :func:`release_sql` (moves ``TURN``, clears the
  holder) and commits with it: a batch fencing meanwhile waits for the swap's lock
  (Snowflake) or still sees the hold (fakesnow), and writes onto the new version after.
  :func:`end` clears a hold without a swap (a comparison, a failed rebuild).

Why two columns and two steps: DuckDB detects write-write conflicts per column, so the fence
and the barrier both move ``TURN``; recording the holder first stops new batches, so the
barrier waits for one batch at most instead of contending with a projector that starts its
next batch as soon as the last one commits. A batch is therefore never stopped on a conflict
itself, except in the instant between its fence statement's snapshot and its update.

A rebuild names the live schema in every statement: its session's current schema is not the
live one once it has created the shadow (``CREATE SCHEMA`` makes the new schema current).

``HELD_UNTIL`` bounds a hold whose rebuild was killed: the projector resumes then. A swap that
runs past it stays correct: its transaction moves ``TURN`` before it reads the live position
(no batch commits between that read and the swap's commit) and swaps only a shadow at or past
that position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringlog.errors import RetryableError
from ringlog.projections.warehouse.schema import HOLDS, q

if TYPE_CHECKING:
    from ringlog.projections.warehouse.store import WarehouseStore

#: How long a hold lasts unless its rebuild ends it first (a killed rebuild's, for instance).
HOLD_S = 120


class HoldLost(RetryableError):
    """The hold is no longer this holder's: another rebuild took it over."""


def _t(schema: str | None) -> str:
    """The table, in ``schema`` when given (else the session's current schema)."""
    return q(HOLDS.name) if schema is None else f"{q(schema)}.{q(HOLDS.name)}"


def fence_sql(schema: str | None = None) -> str:
    """A batch's first statement: move ``TURN`` of the projection (bound) unless it is held;
    changes one row when the batch may write, none when it may not."""
    return (
        f"UPDATE {_t(schema)} SET {q('TURN')} = {q('TURN')} + 1 WHERE {q('PROJECTION')} = ? "
        f"AND ({q('HOLDER')} IS NULL OR {q('HELD_UNTIL')} <= CURRENT_TIMESTAMP())"
    )


def ensure_sql(schema: str | None = None) -> str:
    """Create the projection's row (bound twice), unheld, when it is missing."""
    return (
        f"INSERT INTO {_t(schema)} ({q('PROJECTION')}, {q('HOLDER')}, {q('HELD_UNTIL')}, "
        f"{q('TURN')}) SELECT ?, NULL, NULL, 0 WHERE NOT EXISTS "
        f"(SELECT 1 FROM {_t(schema)} WHERE {q('PROJECTION')} = ?)"
    )


def request_sql(seconds: int, schema: str | None = None) -> str:
    """Record the holder (bound first) of the projection (bound second) for ``seconds``."""
    return (
        f"UPDATE {_t(schema)} SET {q('HOLDER')} = ?, "
        f"{q('HELD_UNTIL')} = DATEADD(SECOND, {int(seconds)}, CURRENT_TIMESTAMP()) "
        f"WHERE {q('PROJECTION')} = ?"
    )


def barrier_sql(schema: str | None = None) -> str:
    """Move ``TURN`` of the projection (bound first) while the holder (bound second) holds it:
    commits only once no batch that fenced before is in flight."""
    return (
        f"UPDATE {_t(schema)} SET {q('TURN')} = {q('TURN')} + 1 "
        f"WHERE {q('PROJECTION')} = ? AND {q('HOLDER')} = ?"
    )


def release_sql(schema: str | None = None) -> str:
    """The swap's first statement: move ``TURN`` and clear the hold of the projection (bound
    first) if the holder (bound second) still holds it; the hold ends when the swap commits."""
    return (
        f"UPDATE {_t(schema)} SET {q('TURN')} = {q('TURN')} + 1, {q('HOLDER')} = NULL, "
        f"{q('HELD_UNTIL')} = NULL WHERE {q('PROJECTION')} = ? AND {q('HOLDER')} = ?"
    )


def end_sql(schema: str | None = None) -> str:
    """Clear the hold of the projection (bound first) if the holder (bound second) holds it."""
    return (
        f"UPDATE {_t(schema)} SET {q('HOLDER')} = NULL, {q('HELD_UNTIL')} = NULL "
        f"WHERE {q('PROJECTION')} = ? AND {q('HOLDER')} = ?"
    )


def take(
    store: WarehouseStore, schema: str, projection: str, holder: str, seconds: int = HOLD_S
) -> None:
    """Hold the projector of ``projection`` in ``schema`` for ``holder`` (at most ``seconds``):
    returns once no batch of it is in flight and none will commit until the hold ends (see
    the module). ``store`` is any store of the database (autocommit)."""
    store.changed(ensure_sql(schema), (projection, projection))
    store.changed(request_sql(seconds, schema), (holder, projection))
    if store.changed(barrier_sql(schema), (projection, holder)) != 1:
        raise HoldLost(f"the hold of {projection} was taken over before it was in force")


def end(store: WarehouseStore, schema: str, projection: str, holder: str) -> None:
    """End ``holder``'s hold of ``projection`` in ``schema`` (nothing when it no longer holds
    it)."""
    store.changed(end_sql(schema), (projection, holder))


__all__ = [
    "HOLD_S",
    "HoldLost",
    "barrier_sql",
    "end",
    "end_sql",
    "ensure_sql",
    "fence_sql",
    "release_sql",
    "request_sql",
    "take",
]
