"""``ringlog rebuild PROJECTION [--verify]``: rebuild a projection from the log, blue/green.

The new version is folded into a shadow of the database by the live folds, caught up to the
live head, then swapped in for readers in one transaction; the live projection (and a
projector running on it) carries on meanwhile, and an interrupted rebuild leaves it untouched
(:mod:`ringlog.projections.rebuilds`); the swap holds the live projector's writes for the
moment it needs them still (the warehouse's too: :mod:`ringlog.projections.warehouse.holds`).
``--verify`` folds a shadow to the live projection's position and prints every row that
differs, changing nothing: none when the code that built the live projection is the code
running now.

A rebuild starts at the log's start, so it meets each dead-lettered record itself: it applies
it (or parks it again, if it still fails) and skips the copies ``ringlog deadletter replay``
re-drove, which would apply it a second time.
"""

from __future__ import annotations

import asyncio

import typer

from ringlog.cli.output import err_console, fail, fail_cleanly, quiet_libraries

#: ``--workers`` of rebuild and replay
WORKERS_HELP = (
    "Processes folding the log, one slice of the partitions each (a core each). "
    "Default: one per core for a large log, else one (the warehouse: always one)."
)


def rebuild(
    projection: str = typer.Argument(
        ...,
        help="sessions, timeline, crm, call-lifecycle or warehouse.",
        show_default=False,
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Rebuild into a shadow and print how it differs; swap nothing."
    ),
    timeout_s: float = typer.Option(3_600.0, help="Give up if the log is not folded by then."),
    workers: int | None = typer.Option(None, min=1, help=WORKERS_HELP, show_default=False),
) -> None:
    """Rebuild PROJECTION from the whole log without readers ever seeing it half-built."""
    from ringlog import heap
    from ringlog.config import Settings
    from ringlog.projections import rebuilds
    from ringlog.projections.rebuildable import rebuildable

    quiet_libraries()
    with fail_cleanly():
        spec = rebuildable(projection)
        settings = Settings.load()
        heap.settle(folds=True)  # as the worker and projector do: the bulk fold allocates a lot
        if verify:
            found = asyncio.run(
                rebuilds.verify(
                    settings, spec.name, console=err_console, timeout_s=timeout_s, workers=workers
                )
            )
            for difference in found.differences:
                typer.echo(
                    f"{difference.table}: only in the {difference.side} version: {difference.row}"
                )
            if found.counted:
                fail(f"{spec.name}: {found.counted} row(s) differ from a fresh fold of the log")
            typer.echo(
                f"{spec.name}: the live projection equals a fresh fold of the log "
                f"({sum(found.live.values())} record position(s) compared)"
            )
            return
        done = asyncio.run(
            rebuilds.rebuild(
                settings, spec.name, console=err_console, timeout_s=timeout_s, workers=workers
            )
        )
    typer.echo(
        f"{spec.name} rebuilt: {done.folded.records} record(s) folded at "
        f"{done.folded.rate:,.0f}/s, swapped in; rows now: "
        + ", ".join(f"{table} {n}" for table, n in done.rows.items())
        + (f"; {done.after}" if done.after else "")
    )
