"""The dispatch queries of the worker's store: leasing due calls, holding and dropping
leases, and the earliest due time.

Each function takes a connection and runs in the caller's transaction. The due calls are read
by the ``due_ms`` index; live calls and leases are counted against Retell's cap across every
worker process (:func:`~ringlog.calls.dispatch.free_slots`).
"""

from __future__ import annotations

import zlib

from sqlalchemy import Connection, and_, delete, exists, func, select, text, update

from ringlog.calls.dispatch import DispatchPolicy, free_slots
from ringlog.calls.state import CallState
from ringlog.projections.sql import insert_for
from ringlog.worker.schema import CALLS, LEASES, OUTBOX, now_ms


def claim_due(
    connection: Connection,
    *,
    topic: str,
    policy: DispatchPolicy,
    partitions: list[int],
    owner: str,
    lease_ms: int,
    limit: int,
) -> list[CallState]:
    """Lease to ``owner`` the due calls of ``partitions`` that may be placed now, oldest due
    first (see :meth:`WorkerStore.claim_due <ringlog.worker.store.WorkerStore.claim_due>`).

    ``connection`` must be in a transaction of its own (``engine.begin()``): it is serialised
    across processes here (an advisory lock on PostgreSQL, the write lock on SQLite) before
    live calls and unexpired leases are counted, both in one statement: a fold (which takes
    no lock) turns a lease into a live call in one commit, and one snapshot sees either.
    """
    now = now_ms()
    if connection.dialect.name == "postgresql":
        lock = zlib.crc32(f"ringlog-dispatch:{topic}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
    else:  # take SQLite's write lock first, so the count below cannot go stale
        connection.execute(delete(LEASES).where(LEASES.c.expires_ms < 0))
    # one statement, so one snapshot: a fold committing between two counts would turn a
    # lease into a live call unseen by both, and free its slot twice
    live, leased = connection.execute(
        select(
            select(func.count())
            .where(CALLS.c.topic == topic, CALLS.c.live.is_(True))
            .scalar_subquery(),
            select(func.count())
            .where(LEASES.c.topic == topic, LEASES.c.expires_ms > now)
            .scalar_subquery(),
        )
    ).one()
    free = free_slots(policy, live=live, in_flight=leased)
    if free <= 0:
        return []
    held = exists().where(and_(OUTBOX.c.topic == topic, OUTBOX.c.call_ref == CALLS.c.call_ref))
    busy = exists().where(
        and_(
            LEASES.c.topic == topic,
            LEASES.c.call_ref == CALLS.c.call_ref,
            LEASES.c.expires_ms > now,
        )
    )
    rows = connection.execute(
        select(CALLS.c.state)
        .where(
            CALLS.c.topic == topic,
            CALLS.c.partition.in_(partitions),
            CALLS.c.due_ms <= now,
            ~held,
            ~busy,
        )
        .order_by(CALLS.c.due_ms, CALLS.c.call_ref)
        .limit(min(free, limit))
    )
    states = [CallState.decode(raw) for (raw,) in rows]
    if states:
        insert = insert_for(connection)(LEASES)
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=[LEASES.c.topic, LEASES.c.call_ref],
                set_={
                    "owner": insert.excluded.owner,
                    "expires_ms": insert.excluded.expires_ms,
                },
            ),
            [
                {
                    "topic": topic,
                    "call_ref": s.call_ref,
                    "owner": owner,
                    "expires_ms": now + lease_ms,
                }
                for s in states
            ],
        )
    return states


def hold(connection: Connection, *, topic: str, call_ref: str, hold_ms: int) -> None:
    """Make the lease of ``call_ref`` expire ``hold_ms`` from now (no lease: nothing)."""
    connection.execute(
        update(LEASES)
        .where(LEASES.c.topic == topic, LEASES.c.call_ref == call_ref)
        .values(expires_ms=now_ms() + hold_ms)
    )


def release(connection: Connection, *, topic: str, call_ref: str) -> None:
    """Drop the lease of ``call_ref``."""
    connection.execute(delete(LEASES).where(LEASES.c.topic == topic, LEASES.c.call_ref == call_ref))


def next_due_ms(connection: Connection, *, topic: str, partitions: list[int]) -> int | None:
    """The earliest ``due_ms`` of the calls of ``partitions`` (``None``: none is pending).

    One ``min`` per partition, each the first entry of the ``due_ms`` index for its
    ``(topic, partition)``: a ``min`` over ``partition IN (…)`` cannot walk that index in
    ``due_ms`` order, and PostgreSQL answers it by scanning every call ever made."""
    if not partitions:
        return None
    firsts = [
        select(func.min(CALLS.c.due_ms))
        .where(CALLS.c.topic == topic, CALLS.c.partition == partition)
        .scalar_subquery()
        for partition in partitions
    ]
    row = connection.execute(select(*firsts)).one()
    return min((due for due in row if due is not None), default=None)
