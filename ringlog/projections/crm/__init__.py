"""The CRM projection: ``sessions``, ``dialog`` and ``tasks`` → patients, appointments,
interactions and tasks.

:func:`run_crm_projector` is what ``ringlog projector`` runs; :func:`crm_runner` builds the
runner for tests and rebuilds. Rows come from :mod:`.rows` (pure), writes from :mod:`.store`.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from ringlog.config import Settings
from ringlog.projections.base import Projection, RetryPolicy
from ringlog.projections.crm import rows
from ringlog.projections.crm.rows import Upsert
from ringlog.projections.crm.store import CrmStore
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.retrying import until_open
from ringlog.projections.runner import ProjectionRunner

#: The projection's name in the checkpoint table and in metrics.
NAME = "crm"

__all__ = ["NAME", "CrmStore", "crm_projection", "crm_runner", "run_crm_projector"]


def crm_projection(settings: Settings) -> Projection[Upsert]:
    """The CRM projection over this deployment's ``sessions``, ``dialog`` and ``tasks`` topics."""
    return Projection(
        name=NAME,
        topics=(settings.topic("sessions"), settings.topic("dialog"), settings.topic("tasks")),
        project=rows.project,
        handles=rows.HANDLED,
    )


def default_group_id(settings: Settings) -> str:
    """The consumer group of the CRM projector (``<client_id>-projector-crm``)."""
    return f"{settings.kafka.client_id}-projector-{NAME}"


def crm_runner(
    settings: Settings,
    store: CrmStore,
    *,
    group_id: str | None = None,
    registry: CollectorRegistry | None = None,
    retry: RetryPolicy | None = None,
    redriven: bool = True,
    max_records: int = 5_000,
) -> ProjectionRunner[Upsert]:
    """A runner applying the CRM projection to ``store``; metrics go to ``registry``
    (``redriven``: see :class:`~ringlog.projections.runner.ProjectionRunner`)."""
    return ProjectionRunner(
        settings.kafka,
        crm_projection(settings),
        store,
        group_id=group_id or default_group_id(settings),
        deadletter_topic=settings.topic("deadletter"),
        metrics=ProjectionMetrics.shared(registry),
        retry=retry,
        redriven=redriven,
        max_records=max_records,
    )


async def run_crm_projector(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> None:
    """Keep the CRM database (``settings.crm.url``) in step with the log until ``stop`` is set
    (waiting for the database while it is unreachable at start)."""
    stop = stop or asyncio.Event()
    store = await until_open(lambda: CrmStore(settings.crm.url), what="crm", stop=stop)
    if store is None:
        return
    try:
        await crm_runner(settings, store, registry=registry).run(stop)
    finally:
        store.close()
