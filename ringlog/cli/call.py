"""``ringlog call``: a call's state, now or at a past instant, and its timeline.

``show CALL_REF`` prints the state ``GET /v1/calls/{call_ref}`` answers, as JSON: now, from
the worker's view; with ``--at``, at that instant — the worker's fold
(:func:`ringlog.calls.state.apply`) over the call's events on ``calls`` and ``abt`` recorded
by then (:mod:`ringlog.views.history`). ``timeline CALL_REF`` prints every event of the call,
in the order recorded, one line each: time, position, type, source, summary.

What they read: one indexed lookup by call ref (the worker's view, or the timeline view's rows
of the call), after waiting at most 2 s for the view to reach the log's end on the call's
partitions, as the API does; ``--at`` also reads where the log starts (the first record of
each ``calls`` partition). Phone numbers are masked in everything printed
(:func:`ringlog.logs.mask_phone`, as ``ringlog tail`` masks them).

Exit codes: 2 for an instant that is not a datetime, is before the log's start or is in the
future; 1 for a call the view does not know (at that instant).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ringlog.calls.state import CallState
    from ringlog.config import Settings
    from ringlog.projections.base import Event
    from ringlog.streams.head import Coverage

app = typer.Typer(
    help="A call's state, now or at a past instant, and its timeline.", no_args_is_help=True
)

AtOption = typer.Option(
    None,
    "--at",
    help="An instant (ISO-8601; UTC when it has no offset), e.g. 2026-12-01T10:00:00Z: "
    "the state then.",
)


@app.command("show")
def show(
    call_ref: str = typer.Argument(..., help="The call's ref."),
    at: str | None = AtOption,
) -> None:
    """Print the call's state as JSON (numbers masked): now, from the worker's view; with
    --at, folded from its events recorded by then. Exit 2 for a refused instant, 1 for an
    unknown call."""
    from ringlog.cli.output import fail, quiet_libraries
    from ringlog.config import Settings
    from ringlog.views.history import InstantRefused, parse_instant, shown

    quiet_libraries()
    settings = Settings.load()
    try:
        instant = None if at is None else parse_instant(at)
        state, coverage = asyncio.run(call_state(settings, call_ref, instant))
    except InstantRefused as exc:
        fail(str(exc), 2)
    view = "the worker's view" if instant is None else "the timeline view"
    if state is None:
        if coverage.behind:
            runs = "ringlog worker" if instant is None else "ringlog projector"
            fail(f"{view} is behind the log and has no call {call_ref}: is `{runs}` running?")
        if instant is None:
            fail(f"no call {call_ref} on the log")
        fail(f"no call {call_ref} at {shown(instant)}: none of its events was recorded by then")
    write_json(state.to_json())
    said = "now" if instant is None else f"at {shown(instant)}"
    note(f"call {call_ref} {said}: {state.events} event(s) folded ({view} at {coverage.header()})")
    if coverage.behind:
        note(f"{view} is behind the log: later events may be missing")


@app.command("timeline")
def timeline(
    call_ref: str = typer.Argument(..., help="The call's ref."),
    text: bool = typer.Option(
        False,
        "--text",
        help="Also show what was said, names and dates of birth (phone numbers stay masked).",
    ),
) -> None:
    """Print every event of the call (calls, dialog, abt) in the order recorded: time,
    position, type, source, summary; numbers masked. Exit 1 for an unknown call."""
    from ringlog.cli.output import fail, quiet_libraries
    from ringlog.config import Settings

    quiet_libraries()
    settings = Settings.load()
    events, coverage = asyncio.run(call_timeline(settings, call_ref))
    if not events:
        if coverage.behind:
            fail(
                f"the timeline view is behind the log and has no call {call_ref}: is "
                "`ringlog projector` running?"
            )
        fail(f"no call {call_ref} on the log")
    prefix = settings.kafka.topic_prefix
    for event in events:
        typer.echo(line(event, prefix=prefix, personal=text))
    note(f"{len(events)} event(s) of call {call_ref} (timeline view at {coverage.header()})")
    if coverage.behind:
        note("the timeline view is behind the log: later events may be missing")


async def call_state(
    settings: Settings, call_ref: str, at: datetime | None
) -> tuple[CallState | None, Coverage]:
    """The call's state now (the worker's view) or at ``at`` (folded), and what the view
    covered: what ``GET /v1/calls/{call_ref}[?at=]`` answers."""
    from ringlog.api.views import Views
    from ringlog.streams.head import HEAD

    views = Views.open(settings)
    try:
        if at is None:
            return await views.call(call_ref, HEAD)
        return await views.call_at(call_ref, at, HEAD)
    finally:
        await views.close()


async def call_timeline(settings: Settings, call_ref: str) -> tuple[list[Event], Coverage]:
    """The call's events in the order recorded, and what the timeline view covered."""
    from ringlog.api.views import Views
    from ringlog.streams.head import HEAD

    views = Views.open(settings)
    try:
        return await views.timeline_events(call_ref, HEAD)
    finally:
        await views.close()


def line(event: Event, *, prefix: str, personal: bool = False) -> str:
    """One line for one event of a call: ``time  topic/partition:offset  type  source
    summary`` (the summary as ``ringlog tail`` shows it: numbers masked, nothing personal
    unless ``personal``)."""
    from ringlog.cli.tail import payload_fields, stamp, summary

    envelope = event.envelope
    where = f"{event.topic.removeprefix(prefix)}/{event.partition}:{event.offset}"
    text = summary(payload_fields(envelope, personal=personal))
    kind, source = envelope.type, envelope.source
    return f"{stamp(envelope.recorded_at)}  {where:<16} {kind:<26} {source:<10} {text}".rstrip()


def write_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, phone numbers masked."""
    import orjson

    from ringlog.logs import mask_phone

    sys.stdout.write(mask_phone(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()) + "\n")


def note(message: str) -> None:
    """One line on stderr (what an answer reflects; stdout stays the answer)."""
    typer.echo(message, err=True)
