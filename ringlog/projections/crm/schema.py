"""The CRM tables (SQLAlchemy Core), all prefixed ``crm_``.

Every entity row carries ``version``: the log offset of the event that last wrote it, so an
older event never overwrites newer state (see :mod:`ringlog.projections.crm.rows`).

* ``crm_patients`` — one row per patient; the id is derived from phone and date of birth.
* ``crm_appointments`` — one row per completed session; the id is derived from the session id.
* ``crm_interactions`` — one row per call of a session: outcome, stage reached, and the
  transcript, which is recomputed from ``crm_interaction_turns`` whenever either changes.
* ``crm_interaction_turns`` — one row per dialog turn (``call_ref``, ``turn_index``).
* ``crm_tasks`` — one row per business task: its fields (a JSON object, recomputed from
  ``crm_task_fields``), schedule, incoming-call details, and a tombstone when deleted.
* ``crm_task_fields`` — one row per task and field name: the field's latest value (JSON).
* ``crm_projection_checkpoints`` — the next log offset per projection, topic and partition.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from ringlog.projections.checkpoint import checkpoint_table

METADATA = MetaData()

PATIENTS = Table(
    "crm_patients",
    METADATA,
    Column("patient_id", String(36), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("date_of_birth", Date, nullable=False),
    Column("phone", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
)

APPOINTMENTS = Table(
    "crm_appointments",
    METADATA,
    Column("appointment_id", String(36), primary_key=True),
    Column("patient_id", String(36), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("time", String(32), nullable=False),
    Column("site", String(256), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
)

INTERACTIONS = Table(
    "crm_interactions",
    METADATA,
    Column("call_ref", String(128), primary_key=True),
    Column("session_id", String(128), nullable=False, index=True),
    Column("phone", String(32), nullable=False, index=True),
    Column("direction", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("outcome", String(16), nullable=False),
    Column("stage_reached", String(64)),
    Column("turns", Integer, nullable=False),
    Column("transcript", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
)

TURNS = Table(
    "crm_interaction_turns",
    METADATA,
    Column("call_ref", String(128), primary_key=True),
    Column("turn_index", Integer, primary_key=True, autoincrement=False),
    Column("role", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
)

TASKS = Table(
    "crm_tasks",
    METADATA,
    # columns whose event field has no length limit are Text, so no event can fail the write
    Column("task_id", String(128), primary_key=True),
    #: JSON object of the task's fields, keys sorted; derived from ``crm_task_fields``
    Column("fields", Text, nullable=False),
    Column("scheduled_at", DateTime(timezone=True)),
    Column("scheduled_call_ref", Text),
    Column("deleted", Boolean, nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Column("deleted_reason", Text),
    Column("incoming_from", String(32)),
    Column("incoming_to", String(32)),
    Column("incoming_notes", Text),
    Column("patient_ref", Text),
    Column("last_event_type", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
)

TASK_FIELDS = Table(
    "crm_task_fields",
    METADATA,
    Column("task_id", String(128), primary_key=True),
    Column("name", Text, primary_key=True),
    #: the value as JSON (``null`` for a cleared field)
    Column("value", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
)

CHECKPOINTS = checkpoint_table(METADATA, "crm_projection_checkpoints")

#: The tables operations name, by the short name used in :class:`~.rows.Upsert`.
TABLES: dict[str, Table] = {
    "patients": PATIENTS,
    "appointments": APPOINTMENTS,
    "interactions": INTERACTIONS,
    "turns": TURNS,
    "tasks": TASKS,
    "task_fields": TASK_FIELDS,
}
