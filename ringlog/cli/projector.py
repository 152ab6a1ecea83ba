"""``ringlog projector``: keep the read views, the CRM and the warehouse in step with the log."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ringlog import heap, logs
from ringlog.cli.metrics import MetricsHost
from ringlog.config import Settings, require_phone_hash_key

#: what ``--only`` can name
PROJECTIONS = ("timeline", "sessions", "crm", "warehouse")


def projector(
    metrics_port: Annotated[
        int,
        typer.Option(
            help="Serve Prometheus metrics (projection lag, records applied) on this port; 0: off."
        ),
    ] = 0,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this projection (timeline, sessions, crm or warehouse); repeat the "
            "option to run several."
        ),
    ] = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Project the log into the read views (each call's timeline, each number's session), the
    CRM (sessions, dialog, tasks) and the warehouse (every topic), each from its own
    checkpoint; stops on SIGINT/SIGTERM, within a few seconds even when the broker or a store
    is gone."""
    from prometheus_client import CollectorRegistry

    from ringlog.cli.metrics import serve_metrics
    from ringlog.devstack.supervise import run_until_stopped
    from ringlog.projections.crm import run_crm_projector
    from ringlog.projections.warehouse import run_warehouse_projector
    from ringlog.views import VIEWS, run_views

    chosen = set(only or PROJECTIONS)
    if unknown := sorted(chosen - set(PROJECTIONS)):
        raise typer.BadParameter(
            f"no projection {', '.join(unknown)}: --only takes {', '.join(PROJECTIONS)}"
        )
    settings = Settings.load()
    require_phone_hash_key(settings)
    logs.configure()
    registry = CollectorRegistry()
    serve_metrics(registry, metrics_port, metrics_host)

    async def main(stop: asyncio.Event) -> None:
        runs = []
        views = [view for view in VIEWS if view in chosen]
        if views:
            runs.append(run_views(settings, stop, views=views, registry=registry))
        if "crm" in chosen:
            runs.append(run_crm_projector(settings, stop, registry=registry))
        if "warehouse" in chosen:
            runs.append(run_warehouse_projector(settings, stop, registry=registry))
        heap.settle(folds=True)
        await asyncio.gather(*runs)

    run_until_stopped(main, name="projector")
