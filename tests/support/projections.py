"""Building projection runners for tests and reading their metrics."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from ringlog.config import Settings
from ringlog.projections.base import Projection, RetryPolicy
from ringlog.projections.metrics import ProjectionMetrics
from ringlog.projections.runner import ProjectionRunner

OpT = TypeVar("OpT")


def runner_for(
    settings: Settings,
    projection: Projection[OpT],
    target: Any,
    group: str,
    *,
    retry: RetryPolicy,
    cls: type[ProjectionRunner[OpT]] = ProjectionRunner,
    max_records: int = 5_000,
    max_pending: int | None = None,
    alone: bool = True,
) -> ProjectionRunner[OpT]:
    """A runner of ``projection`` into ``target`` with metrics of its own and fast retries.

    ``alone`` by default: these runners are the only reader of their group and no test using
    them is about group membership, so they take every partition without the join (~1.5 s on
    the embedded broker); the worker and view runtimes of :mod:`.worker_runtime` join."""
    return cls(
        settings.kafka,
        projection,
        target,
        group_id=group,
        deadletter_topic=settings.topic("deadletter"),
        metrics=ProjectionMetrics(CollectorRegistry()),
        retry=retry,
        max_records=max_records,
        max_pending=max_pending,
        alone=alone,
    )


def applied(runner: ProjectionRunner[Any]) -> int:
    """Records the runner committed to the target, over all its topics."""
    registry = runner.metrics.registry
    name = runner.projection.name
    return sum(
        int(
            registry.get_sample_value(
                "ringlog_projection_records_applied_total", {"projection": name, "topic": topic}
            )
            or 0
        )
        for topic in runner.projection.topics
    )


def lag(runner: ProjectionRunner[Any]) -> float:
    """The runner's lag gauge summed over its partitions."""
    return sum(
        s.value
        for metric in runner.metrics.registry.collect()
        if metric.name == "ringlog_projection_lag"
        for s in metric.samples
    )
