"""The warehouse projection: every family of events → Snowflake tables (fakesnow locally).

:func:`run_warehouse_projector` is what the projector process runs; :func:`warehouse_runner`
builds the runner for tests, benchmarks and rebuilds. Rows come from :mod:`.rows` (pure), DDL
and SQL from :mod:`.schema`, writes from :mod:`.store`. The README (warehouse) describes the
tables and the analyst queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from ringlog.config import Settings
from ringlog.projections.runner import (
    Projection,
    ProjectionMetrics,
    ProjectionRunner,
    RetryPolicy,
)
from ringlog.projections.warehouse import rows
from ringlog.projections.warehouse.rows import Operation, Protect, hash_phone, phone_protector
from ringlog.projections.warehouse.store import WarehouseError, WarehouseStore, connect_kwargs

log = structlog.get_logger("ringlog.projections.warehouse")

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
    """The warehouse projection over this deployment's five event topics (every event type)."""
    return Projection(
        name=NAME,
        topics=tuple(settings.topic(t) for t in TOPICS),
        project=functools.partial(rows.project, protect=protector(settings)),
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
    """A runner applying the warehouse projection to ``store``; metrics go to ``registry``."""
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
    retry_s: float = 0.5,
    retry_max_s: float = 30.0,
) -> None:
    """Keep the warehouse (``settings.warehouse``) in step with the log until ``stop`` is set.

    While the warehouse is unreachable the runner retries the same batch with backoff (lag
    grows); once it answers, the projection catches up from its own checkpoint. The runner reads
    that checkpoint outside its retry loop (on start and on a rebalance), so when that read
    fails the runner is started again after a backoff (``retry_s`` doubling up to
    ``retry_max_s``) instead of ending the process. ``store`` defaults to one built from
    ``settings.warehouse``; it is closed on return either way.
    """
    stop = stop or asyncio.Event()
    store = store or warehouse_store(settings)
    runner = warehouse_runner(settings, store, registry=registry)
    delay = retry_s
    try:
        while not stop.is_set():
            try:
                await runner.run(stop)
            except WarehouseError as exc:
                if stop.is_set():
                    return
                log.warning("warehouse unavailable, restarting", error=str(exc), in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, retry_max_s)
            else:
                return
    finally:
        store.close()
