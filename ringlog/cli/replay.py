"""``ringlog replay PROCESSOR --to-earliest|--to-datetime T|--by-duration D [--dry-run]``.

Kafka's reset tool moves a stopped group's offsets and leaves its state alone; ringlog moves
both. The processor's state becomes the fold of the log up to the position (built in a shadow
by the live folds and swapped in at once), its checkpoint that position, so that when it
starts again it folds everything after it anew. Outputs it appended before stay on the log
and are folded back before it emits anything, and carry ids derived from their inputs, so no
ABT event or task effect is appended twice. ``--dry-run`` prints, per partition, where the
processor is, where it would be, and how many records it would fold again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import typer
from pydantic import TypeAdapter, ValidationError

from ringlog.cli.output import err_console, fail, fail_cleanly, print_table, quiet_libraries
from ringlog.cli.rebuild import WORKERS_HELP


def replay(
    processor: str = typer.Argument(
        ...,
        help="call-lifecycle, sessions, timeline, crm or warehouse.",
        show_default=False,
    ),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="From the log's start."),
    to_datetime: str | None = typer.Option(
        None, "--to-datetime", help="From this instant (ISO-8601, UTC without an offset)."
    ),
    by_duration: str | None = typer.Option(
        None, "--by-duration", help="From this long ago (ISO-8601 duration, e.g. PT1H, P2D)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replay although the broker lists members in the processor's group (the "
        "embedded broker keeps listing members that left): only when they are all stopped.",
    ),
    timeout_s: float = typer.Option(3_600.0, help="Give up if the log is not folded by then."),
    workers: int | None = typer.Option(None, min=1, help=WORKERS_HELP, show_default=False),
) -> None:
    """Rewind the stopped PROCESSOR to a position of the log; it folds what follows again."""
    from ringlog import heap
    from ringlog.config import Settings
    from ringlog.projections import rebuilds
    from ringlog.projections.rebuildable import rebuildable
    from ringlog.views.history import parse_instant

    quiet_libraries()
    chosen = [to_earliest, to_datetime is not None, by_duration is not None]
    if sum(chosen) != 1:
        fail("say where to replay from: one of --to-earliest, --to-datetime, --by-duration")
    with fail_cleanly():
        spec = rebuildable(processor)
        at: datetime | None = None
        if to_datetime is not None:
            at = parse_instant(to_datetime)
        elif by_duration is not None:
            at = datetime.now(UTC) - _duration(by_duration)
        settings = Settings.load()
        plan = asyncio.run(rebuilds.plan_replay(settings, spec.name, at))
        prefix = settings.kafka.topic_prefix
        print_table(
            f"replay {spec.name} " + ("from the start" if at is None else f"from {at.isoformat()}"),
            ["topic", "partition", "now at", "would be at", "folded again"],
            [
                (r.topic.removeprefix(prefix), r.partition, r.current, r.target, r.again)
                for r in plan
            ],
        )
        if dry_run:
            typer.echo("dry run: nothing changed")
            return
        heap.settle(folds=True)  # as the worker and projector do: the bulk fold allocates a lot
        folded = asyncio.run(
            rebuilds.replay(
                settings,
                spec.name,
                plan,
                console=err_console,
                timeout_s=timeout_s,
                force=force,
                workers=workers,
            )
        )
    typer.echo(
        f"{spec.name} rewound: its state is the fold of {folded.records} record(s); it folds "
        f"{sum(max(0, r.again) for r in plan)} record(s) again when it starts"
    )


def _duration(text: str) -> timedelta:
    """An ISO-8601 duration (``PT1H``, ``P2D``), positive; exits with a message otherwise."""
    try:
        value = TypeAdapter(timedelta).validate_python(text.strip())
    except ValidationError:
        fail(f"{text[:40]!r} is not an ISO-8601 duration (write e.g. PT1H or P2D)")
    if value <= timedelta(0):
        fail("--by-duration must be a positive duration")
    return value
