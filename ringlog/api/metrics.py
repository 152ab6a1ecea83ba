"""Prometheus metrics of the API, held in a registry per app so tests never share counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class ApiMetrics:
    """Requests by route and status, append latency, and quarantined inputs."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "ringlog_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "ringlog_append_seconds",
            "Time to append one record to Kafka and receive the acks=all acknowledgement.",
            ["topic"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self._append_timers: dict[str, Histogram] = {}
        self._request_counters: dict[tuple[str, str, str], Counter] = {}
        self.quarantined = Counter(
            "ringlog_quarantined",
            "Inputs rejected as malformed and kept on the quarantine topic, by reason.",
            ["source", "reason"],
            registry=self.registry,
        )

    def append_timer(self, topic: str) -> Histogram:
        """The append-latency histogram's child for ``topic`` (looked up once, then cached)."""
        timer = self._append_timers.get(topic)
        if timer is None:
            timer = self._append_timers[topic] = self.append_seconds.labels(topic)
        return timer

    def count_request(self, route: str, method: str, status: str) -> None:
        """Count one answered request (the labelled child is looked up once, then cached)."""
        labels = (route, method, status)
        counter = self._request_counters.get(labels)
        if counter is None:
            counter = self._request_counters[labels] = self.requests.labels(*labels)
        counter.inc()
