"""``ringlog projector``: keep the read views, the CRM and the warehouse in step with the log."""

from __future__ import annotations

import asyncio
import signal

import typer

from ringlog import heap, logs
from ringlog.config import Settings, require_phone_hash_key


def projector(
    metrics_port: int = typer.Option(
        0, help="Serve Prometheus metrics (projection lag, records applied) on this port; 0: off."
    ),
    only: str | None = typer.Option(
        None, help="Run one projection only: timeline, sessions, crm or warehouse."
    ),
) -> None:
    """Project the log into the read views (each call's timeline, each number's session), the
    CRM (sessions, dialog, tasks) and the warehouse (every topic) until SIGINT/SIGTERM; each
    resumes from its own checkpoint."""
    from prometheus_client import CollectorRegistry, start_http_server

    from ringlog.projections.crm import run_crm_projector
    from ringlog.projections.warehouse import run_warehouse_projector
    from ringlog.views import VIEWS, run_views

    settings = Settings.load()
    require_phone_hash_key(settings)
    logs.configure()
    registry = CollectorRegistry()
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runs = []
        views = [view for view in VIEWS if only in (None, view)]
        if views:
            runs.append(run_views(settings, stop, views=views, registry=registry))
        if only in (None, "crm"):
            runs.append(run_crm_projector(settings, stop, registry=registry))
        if only in (None, "warehouse"):
            runs.append(run_warehouse_projector(settings, stop, registry=registry))
        if not runs:
            raise typer.BadParameter("--only takes timeline, sessions, crm or warehouse")
        heap.settle()
        await asyncio.gather(*runs)

    asyncio.run(main())
