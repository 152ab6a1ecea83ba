"""``ringlog rebuild``: throw a projection away and rebuild it from the log.

A rebuild starts at the log's start, so it meets each dead-lettered record itself: it applies
it (or parks it again, if it still fails) and skips the copies ``ringlog deadletter replay``
re-drove, which would apply it a second time.
"""

from __future__ import annotations

import asyncio
import secrets

import typer

from ringlog.cli.output import console
from ringlog.config import Settings

app = typer.Typer(help="Rebuild projections from the log.", no_args_is_help=True)


def _rebuild_view(view: str, timeout_s: float) -> int:
    """Empty ``view`` and fold the log into it again, in a consumer group of its own; returns
    the records folded. A running ``ringlog projector`` may stay up (versions guard rows)."""
    from ringlog.views import ViewStore, view_runners

    settings = Settings.load()
    store = ViewStore.open(settings.crm.url)
    try:
        suffix = f"-rebuild-{secrets.token_hex(4)}"
        (runner,) = view_runners(settings, store, [view], group_suffix=suffix, redriven=False)
        store.reset(view, runner.projection.topics)
        asyncio.run(runner.run_until_caught_up(timeout_s))
        return sum(runner.checkpoint.values())
    finally:
        store.close()


@app.command("sessions")
def sessions(
    timeout_s: float = typer.Option(600.0, help="Give up if the log is not folded by then."),
) -> None:
    """Rebuild the sessions view (each number's session) from the ``sessions`` topic. The
    Redis cache needs nothing: a miss is answered from the view."""
    folded = _rebuild_view("sessions", timeout_s)
    console.print(f"sessions view rebuilt: {folded} record(s) folded")


@app.command("timeline")
def timeline(
    timeout_s: float = typer.Option(600.0, help="Give up if the log is not folded by then."),
) -> None:
    """Rebuild the timeline view (each call's events) from ``calls``, ``dialog`` and ``abt``."""
    folded = _rebuild_view("timeline", timeout_s)
    console.print(f"timeline view rebuilt: {folded} record(s) folded")


@app.command("crm")
def crm(
    timeout_s: float = typer.Option(600.0, help="Give up if the log is not applied by then."),
) -> None:
    """Drop the CRM tables and project the whole log into them again (sessions, dialog, tasks).

    A running ``ringlog projector`` may stay up: rows carry their Kafka offset as version, so
    its writes and the rebuild's agree.
    """
    from ringlog.projections.crm import crm_runner, default_group_id
    from ringlog.projections.crm.store import CrmStore

    settings = Settings.load()
    store = CrmStore(settings.crm.url)
    try:
        store.reset()
        group = f"{default_group_id(settings)}-rebuild-{secrets.token_hex(4)}"
        runner = crm_runner(settings, store, group_id=group, redriven=False)
        asyncio.run(runner.run_until_caught_up(timeout_s))
        counts = {table: len(rows) for table, rows in store.snapshot().items()}
    finally:
        store.close()
    console.print("CRM rebuilt from the log: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
