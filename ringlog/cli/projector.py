"""``ringlog projector``: keep the read views, the CRM and the warehouse in step with the log."""

from __future__ import annotations

import asyncio

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
    CRM (sessions, dialog, tasks) and the warehouse (every topic), each from its own
    checkpoint; stops on SIGINT/SIGTERM, within a few seconds even when the broker or a store
    is gone."""
    from prometheus_client import CollectorRegistry, start_http_server

    from ringlog.devstack.supervise import run_until_stopped
    from ringlog.projections.crm import run_crm_projector
    from ringlog.projections.warehouse import run_warehouse_projector
    from ringlog.views import VIEWS, run_views

    settings = Settings.load()
    require_phone_hash_key(settings)
    logs.configure()
    registry = CollectorRegistry()
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)

    async def main(stop: asyncio.Event) -> None:
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

    run_until_stopped(main, name="projector")
