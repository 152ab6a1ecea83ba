"""The warehouse projection: every family of events → Snowflake tables (fakesnow locally).

:func:`run_warehouse_projector` is what the projector process runs; :func:`warehouse_runner`
builds the runner for tests, benchmarks and rebuilds. Rows come from :mod:`.rows` (pure), DDL
and SQL from :mod:`.schema`, writes from :mod:`.store`. The README (warehouse) describes the
tables and the analyst queries.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from prometheus_client import CollectorRegistry

from ringlog.config import Settings
from ringlog.projections.base import Projection, RetryPolicy
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.runner import ProjectionRunner
from ringlog.projections.warehouse import rows
from ringlog.projections.warehouse.phones import Protect, hash_phone, phone_protector
from ringlog.projections.warehouse.rows import Operation
from ringlog.projections.warehouse.store import WarehouseError, WarehouseStore, connect_kwargs

#: The projection's name in the checkpoint table and in metrics.
NAME = "warehouse"
#: The logical topics it reads.
TOPICS: tuple[str, ...] = ("calls", "dialog", "abt", "sessions", "tasks")

__all__ = [
    "NAME",
    "TOPICS",
    "WarehouseError",
    "WarehouseStore",
    "connect_kwargs",
    "default_group_id",
    "hash_phone",
    "protector",
    "run_warehouse_projector",
    "warehouse_projection",
    "warehouse_runner",
    "warehouse_store",
]


def protector(settings: Settings) -> Protect:
    """How this deployment stores phone numbers (``RINGLOG_SNOWFLAKE_PHONE_HASH_KEY``,
    ``RINGLOG_SNOWFLAKE_HASH_PHONE_NUMBERS``)."""
    w = settings.warehouse
    return phone_protector(w.phone_hash_key.get_secret_value(), enabled=w.hash_phone_numbers)


def warehouse_projection(settings: Settings) -> Projection[Operation]:
    """The warehouse projection over this deployment's five event topics (every event type):
    phone numbers as :func:`protector` says, names, dates of birth and utterances only with
    ``RINGLOG_WAREHOUSE_TRANSCRIPTS`` (:mod:`.personal`)."""
    return Projection(
        name=NAME,
        topics=tuple(settings.topic(t) for t in TOPICS),
        project=functools.partial(
            rows.project,
            protect=protector(settings),
            transcripts=settings.warehouse.transcripts,
        ),
        handles=None,
    )


def default_group_id(settings: Settings) -> str:
    """The consumer group of the warehouse projector (``<client_id>-projector-warehouse``)."""
    return f"{settings.kafka.client_id}-projector-{NAME}"


def warehouse_store(settings: Settings, **timeouts: Any) -> WarehouseStore:
    """A store connecting as ``settings.warehouse`` says (timeouts: see :func:`connect_kwargs`)."""
    return WarehouseStore(connect_kwargs(settings.warehouse, **timeouts))


def warehouse_runner(
    settings: Settings,
    store: WarehouseStore,
    *,
    group_id: str | None = None,
    registry: CollectorRegistry | None = None,
    retry: RetryPolicy | None = None,
    max_records: int = 5_000,
) -> ProjectionRunner[Operation]:
    """A runner applying the warehouse projection to ``store``, which it holds for the
    projection (:meth:`WarehouseStore.hold`); metrics go to ``registry``."""
    store.hold(NAME)
    return ProjectionRunner(
        settings.kafka,
        warehouse_projection(settings),
        store,
        group_id=group_id or default_group_id(settings),
        deadletter_topic=settings.topic("deadletter"),
        metrics=ProjectionMetrics.shared(registry),
        retry=retry,
        max_records=max_records,
    )


async def run_warehouse_projector(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    registry: CollectorRegistry | None = None,
    store: WarehouseStore | None = None,
    retry: RetryPolicy | None = None,
) -> None:
    """Keep the warehouse (``settings.warehouse``) in step with the log until ``stop`` is set.

    While the warehouse is unreachable (at start or later) the runner retries with backoff and
    lag grows; once it answers, the projection catches up from its own checkpoint. ``store``
    defaults to one built from ``settings.warehouse``; it is closed on return either way.
    """
    stop = stop or asyncio.Event()
    store = store or warehouse_store(settings)
    try:
        await warehouse_runner(settings, store, registry=registry, retry=retry).run(stop)
    except WarehouseError:
        if not stop.is_set():
            raise
    finally:
        store.close()
