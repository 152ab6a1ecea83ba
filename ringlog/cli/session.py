"""``ringlog session show PHONE [--at DATETIME]``: a number's session, now or at an instant.

Now, the session comes from the sessions view (what ``GET /v1/sessions/{phone}`` answers),
after waiting at most 2 s for the view to reach the log's end on the number's partition.
With ``--at``, it is the sessions view's fold (:func:`ringlog.sessions.state.apply`) over the
number's events on ``sessions`` up to that instant. The view keeps only the current state, so
those are read from the log: the number's partition of ``sessions`` (one of six), from its
first record to the last one stamped at or before the instant — other numbers' records on it
are read and skipped, nothing later and no other partition is read
(:mod:`ringlog.views.history`); the first record of each ``sessions`` partition is read too,
to know where the log starts.

The session is printed as JSON, phone numbers masked (:func:`ringlog.logs.mask_phone`, as
``ringlog tail`` masks them). Exit codes: 2 for a number that is not E.164 or an instant that
is not a datetime, is before the log's start or is in the future; 1 when the number has no
session (at that instant).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from ringlog.cli.call import AtOption, note, write_json

if TYPE_CHECKING:
    from ringlog.config import Settings
    from ringlog.sessions.state import SessionState

app = typer.Typer(help="A number's session, now or at a past instant.", no_args_is_help=True)

#: What the read API takes as a number (E.164).
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@app.command("show")
def show(
    phone: str = typer.Argument(..., help="The number, E.164 (+14155550123)."),
    at: str | None = AtOption,
) -> None:
    """Print the number's session as JSON (numbers masked): now, from the sessions view; with
    --at, folded from its events on the log up to then (reads its partition of `sessions` up
    to the instant). Exit 2 for a refused number or instant, 1 when it has no session."""
    from ringlog.cli.output import fail, quiet_libraries
    from ringlog.config import Settings
    from ringlog.logs import mask_phone
    from ringlog.views.history import InstantRefused, parse_instant, shown

    if not E164.match(phone):
        fail(f"{mask_phone(phone)!r} is not an E.164 number (+14155550123)", 2)
    quiet_libraries()
    settings = Settings.load()
    try:
        instant = None if at is None else parse_instant(at)
        state, said = asyncio.run(session_state(settings, phone, instant))
    except InstantRefused as exc:
        fail(str(exc), 2)
    if state is None:
        if instant is None:
            fail(f"no session for {mask_phone(phone)} on the log ({said})")
        fail(f"no session for {mask_phone(phone)} at {shown(instant)} ({said})")
    write_json(state.to_json())
    when = "now" if instant is None else f"at {shown(instant)}"
    note(f"session of {mask_phone(phone)} {when}: {said}")


async def session_state(
    settings: Settings, phone: str, at: datetime | None
) -> tuple[SessionState | None, str]:
    """The number's session now (the sessions view) or at ``at`` (folded from the log), and
    a few words on where it comes from."""
    from ringlog.views.history import session_at

    topic = settings.topic("sessions")
    if at is not None:
        state, folded = await session_at(settings.kafka, topic, phone, at)
        return state, f"{folded} of its event(s) on {topic} up to then folded"
    from ringlog.api.views import Views
    from ringlog.streams.head import HEAD

    views = Views.open(settings)
    try:
        state, coverage = await views.session(phone, HEAD)
    finally:
        await views.close()
    said = f"sessions view at {coverage.header()}"
    if coverage.behind:
        said += "; the view is behind the log: is `ringlog projector` running?"
    return state, said
