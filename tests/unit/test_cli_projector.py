"""``ringlog projector --only`` names projections (several, or a clear refusal) and the
metrics endpoint binds the address it is given."""

from __future__ import annotations

import socket

import httpx
from prometheus_client import CollectorRegistry, Counter
from typer.testing import CliRunner

from ringlog.cli import app
from ringlog.cli.metrics import serve_metrics


def test_an_unknown_projection_is_refused_with_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["projector", "--only", "crm", "--only", "ledger"])
    said = " ".join(result.output.replace("│", " ").split())  # unwrapped from rich's box
    assert result.exit_code == 2
    assert "no projection ledger: --only takes timeline, sessions, crm, warehouse" in said


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_metrics_bind_the_address_given() -> None:
    registry = CollectorRegistry()
    Counter("probe_total", "a probe", registry=registry).inc()
    assert serve_metrics(registry, 0, "0.0.0.0") is None
    port = _free_port()
    server = serve_metrics(registry, port, "0.0.0.0")
    assert server is not None
    try:
        assert server.server_address[0] == "0.0.0.0"
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "probe_total 1.0" in body
    finally:
        server.shutdown()
        server.server_close()
