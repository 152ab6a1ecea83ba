"""The read views (a call's timeline, a number's session), kept by the one runtime.

:func:`run_views` is what ``ringlog projector`` runs beside the CRM and the warehouse; the
API reads the views through :class:`~ringlog.views.store.ViewStore` after waiting, bounded,
for them to reach the log's end on the key's partitions (see :mod:`ringlog.api.views`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from ringlog.config import Settings
from ringlog.projections.base import Event, Projection, Target
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.retrying import until_open
from ringlog.projections.runner import ProjectionRunner
from ringlog.views.store import (
    SESSIONS_VIEW,
    TIMELINE_VIEW,
    TimelineRow,
    ViewStore,
    timeline_rows,
)

#: The views ``ringlog projector --only`` can name.
VIEWS = (TIMELINE_VIEW, SESSIONS_VIEW)
#: The topics the timeline view holds (logical names).
TIMELINE_TOPICS = ("calls", "dialog", "abt", "sessions")


def _events(events: Sequence[Event]) -> list[Event]:
    return list(events)


def timeline_projection(settings: Settings) -> Projection[TimelineRow]:
    """Every event on ``calls``, ``dialog``, ``abt`` and ``sessions`` into the timeline view
    (a session event under the call it happened in)."""
    return Projection(
        name=TIMELINE_VIEW,
        topics=tuple(settings.topic(t) for t in TIMELINE_TOPICS),
        project=timeline_rows,
    )


def sessions_projection(settings: Settings) -> Projection[Event]:
    """``sessions`` into the sessions view (the events are the operations: the target folds)."""
    return Projection(name=SESSIONS_VIEW, topics=(settings.topic("sessions"),), project=_events)


def view_group_id(settings: Settings, view: str) -> str:
    """The consumer group keeping ``view`` (``<client_id>-view-<view>``)."""
    return f"{settings.kafka.client_id}-view-{view}"


def view_runners(
    settings: Settings,
    store: ViewStore,
    views: Sequence[str] = VIEWS,
    *,
    registry: CollectorRegistry | None = None,
    group_suffix: str = "",
    redriven: bool = True,
    max_records: int = 5_000,
) -> list[ProjectionRunner[TimelineRow] | ProjectionRunner[Event]]:
    """One runner per view named in ``views``, each in its own consumer group (``redriven``:
    see :class:`~ringlog.projections.runner.ProjectionRunner`)."""
    metrics = ProjectionMetrics.shared(registry)
    deadletter = settings.topic("deadletter")
    built: list[ProjectionRunner[TimelineRow] | ProjectionRunner[Event]] = []
    pairs: list[tuple[Projection[Any], Target[Any]]] = [
        (timeline_projection(settings), store.timeline_target()),
        (sessions_projection(settings), store.sessions_target()),
    ]
    for projection, target in pairs:
        if projection.name in views:
            built.append(
                ProjectionRunner[Any](
                    settings.kafka,
                    projection,
                    target,
                    group_id=view_group_id(settings, projection.name) + group_suffix,
                    deadletter_topic=deadletter,
                    metrics=metrics,
                    redriven=redriven,
                    max_records=max_records,
                )
            )
    return built


async def run_views(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    views: Sequence[str] = VIEWS,
    registry: CollectorRegistry | None = None,
) -> None:
    """Keep the named views (in ``settings.crm.url``) in step with the log until ``stop``
    (waiting for the database while it is unreachable at start)."""
    stop = stop or asyncio.Event()
    store = await until_open(lambda: ViewStore.open(settings.crm.url), what="views", stop=stop)
    if store is None:
        return
    try:
        await asyncio.gather(
            *(
                runner.run(stop)
                for runner in view_runners(settings, store, views, registry=registry)
            )
        )
    finally:
        store.close()


__all__ = [
    "TIMELINE_TOPICS",
    "VIEWS",
    "ViewStore",
    "run_views",
    "sessions_projection",
    "timeline_projection",
    "view_group_id",
    "view_runners",
]
