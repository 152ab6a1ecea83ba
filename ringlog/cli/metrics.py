"""The Prometheus endpoint of a long-running command (``projector``, ``bridge``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

MetricsHost = Annotated[
    str,
    typer.Option(
        help="Address the metrics port binds: 127.0.0.1 serves this machine only; 0.0.0.0 "
        "lets a scraper on another host in (inside a container, say)."
    ),
]


def serve_metrics(registry: CollectorRegistry, port: int, host: str) -> WSGIServer | None:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread (it lives as
    long as the process); port 0: off (None)."""
    if not port:
        return None
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
