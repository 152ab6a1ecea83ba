"""The Prometheus metrics every projection reports (labelled by projection)."""

from __future__ import annotations

from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge


class ProjectionMetrics:
    """Lag per partition and records applied, in ``registry`` (a fresh one by default)."""

    _by_registry: ClassVar[dict[int, ProjectionMetrics]] = {}

    @classmethod
    def shared(cls, registry: CollectorRegistry | None) -> ProjectionMetrics:
        """The metrics of ``registry``, made once, so several projections in one process
        report to one registry (labelled by projection); a fresh registry when None."""
        if registry is None:
            return cls()
        found = cls._by_registry.get(id(registry))
        if found is None or found.registry is not registry:
            found = cls._by_registry[id(registry)] = cls(registry)
        return found

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.lag = Gauge(
            "ringlog_projection_lag",
            "Records on the log not yet applied to the projection's target.",
            ["projection", "topic", "partition"],
            registry=self.registry,
        )
        self.applied = Counter(
            "ringlog_projection_records_applied",
            "Records whose effects (possibly none) were committed to the target.",
            ["projection", "topic"],
            registry=self.registry,
        )
        self.deadlettered = Counter(
            "ringlog_projection_deadlettered",
            "Records sent to the dead-letter topic because they could not be projected.",
            ["projection", "topic"],
            registry=self.registry,
        )
        self.retries = Counter(
            "ringlog_projection_apply_retries",
            "Target writes that failed and were retried.",
            ["projection"],
            registry=self.registry,
        )
