"""The Prometheus metrics every projection reports (labelled by projection)."""

from __future__ import annotations

from typing import ClassVar, Self

from prometheus_client import CollectorRegistry, Counter, Gauge


class RegistryMetrics:
    """Metrics made once per registry: :meth:`shared` gives every user of a registry in one
    process the same instance (Prometheus refuses a metric registered twice)."""

    _by_registry: ClassVar[dict[tuple[type[RegistryMetrics], int], RegistryMetrics]] = {}

    @classmethod
    def shared(cls, registry: CollectorRegistry | None) -> Self:
        """The metrics of ``registry``, made once; a fresh registry when None."""
        if registry is None:
            return cls()
        key = (cls, id(registry))
        found = cls._by_registry.get(key)
        if not isinstance(found, cls) or found.registry is not registry:
            found = cls(registry)
            cls._by_registry[key] = found
        return found

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()


class ProjectionMetrics(RegistryMetrics):
    """Lag per partition and records applied, in ``registry`` (a fresh one by default);
    shared by the projections of one process (labelled by projection)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
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
