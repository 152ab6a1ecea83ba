"""The worker store's tables, and the indexed columns a call's state gives its row.

One SQL database (the CRM database: SQLite embedded, PostgreSQL in production) holds, per
deployment topic:

* ``worker_calls`` — each call's :class:`~ringlog.calls.state.CallState` (JSON) folded from
  ``calls`` and ``abt``, with indexed columns the loops query instead of scanning: the time a
  pending request becomes due (``due_ms``), whether it holds a concurrency slot (``live``),
  whether it owes effects (``owes``), and its task;
* ``worker_tasks`` — every task id the log mentions, and whether it was deleted (the task API's
  index);
* ``worker_task_events`` — reschedules and deletions by task, so a call requested for the task
  but folded later still gets their effects;
* ``worker_outbox`` — task effects (``call.rescheduled`` / ``call.cancelled``) owed to the log;
  a call with one is *held*: not placed until the effect is folded, which deletes the row;
* ``worker_leases`` — placements with Retell in flight, across every worker process;
* ``worker_checkpoints`` — the next offset per ``(topic, partition)`` consumed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from ringlog.calls.dispatch import DispatchPolicy, due_at
from ringlog.calls.state import CallState
from ringlog.calls.tracking import abt_owed, record_owed
from ringlog.projections.checkpoint import checkpoint_table
from ringlog.projections.sql import FOLD_READS

#: The processor's name: its checkpoint rows, its consumer group suffix, dead-letter origin.
PROCESSOR = "call-lifecycle"

METADATA = MetaData()

CALLS = Table(
    "worker_calls",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("call_ref", String(128), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("due_ms", BigInteger),
    Column("live", Boolean, nullable=False),
    Column("owes", Boolean, nullable=False),
    Column("task_ref", String(200)),
    Index("worker_calls_due", "topic", "partition", "due_ms"),
    Index("worker_calls_live", "topic", "live"),
    Index("worker_calls_owes", "topic", "partition", "owes"),
    Index("worker_calls_task", "topic", "task_ref", info={FOLD_READS: True}),
)

TASKS = Table(
    "worker_tasks",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("task_id", String(200), primary_key=True),
    Column("deleted", Boolean, nullable=False),
)

TASK_EVENTS = Table(
    "worker_task_events",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("task_id", String(200), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("body", Text, nullable=False),
)

OUTBOX = Table(
    "worker_outbox",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("call_ref", String(128), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Index("worker_outbox_partition", "topic", "partition"),
)

LEASES = Table(
    "worker_leases",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("call_ref", String(128), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

CHECKPOINTS = checkpoint_table(METADATA, "worker_checkpoints")


def index_columns(state: CallState, policy: DispatchPolicy) -> dict[str, Any]:
    """The indexed columns of a call's row, derived from its state (pure)."""
    due = due_at(state, policy)
    return {
        "due_ms": None if due is None else to_ms(due),
        "live": state.live,
        "owes": bool(abt_owed(state)) or record_owed(state),
        "task_ref": state.request.task_ref if state.request else None,
    }


def to_ms(at: datetime) -> int:
    """Milliseconds since the epoch (how times are indexed, the same on every dialect)."""
    return int(at.timestamp() * 1000)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return to_ms(datetime.now(UTC))
