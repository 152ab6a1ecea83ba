"""``ringlog deadletter``: what processors parked on the dead-letter topic, and re-driving it.

``list`` prints one line per dead letter: when it failed, its place on ``deadletter``
(``#offset``), the projection that gave up, the record's source position, its event type, its
key and the reason — phone numbers masked as ``ringlog tail`` masks them
(:func:`ringlog.logs.mask_phone`), database row values left out (:func:`ringlog.logs.scrub`).

``replay`` re-drives parked records after a fix: each goes back to its source partition as a
copy that only the projection which parked it applies, once, however often ``replay`` runs
or wherever a run stopped (:mod:`ringlog.streams.redrive` says how).

Both read the whole ``deadletter`` topic, from its start to its end: a small topic (records
that failed, and replay markers). ``replay`` also reads, for a record a stopped run left
half-done, its source partition from the offset that run marked.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ringlog.streams.redrive import DeadLetter, Outcome

app = typer.Typer(
    help="List the records processors parked on the dead-letter topic; re-drive them.",
    no_args_is_help=True,
)

#: The longest reason shown (longer ones are cut, after masking).
REASON_CHARS = 160

KeyOption = typer.Option(None, "--key", help="Only the records of this key (a call ref, a number).")
ProjectionOption = typer.Option(
    None, "--projection", "-p", help="Only the records this projection parked (crm, sessions…)."
)


@app.command("list")
def list_(
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many (the newest)."),
    key: str | None = KeyOption,
    projection: str | None = ProjectionOption,
    every: bool = typer.Option(
        False, "--all", help="Also the records already re-driven, with where their copy went."
    ),
) -> None:
    """Print the parked records, newest last: when, where parked, projection, source
    position, event type, key (numbers masked), reason. Reads the whole dead-letter topic."""
    from ringlog.cli.output import quiet_libraries
    from ringlog.config import Settings
    from ringlog.streams.redrive import chosen, read_ledger

    quiet_libraries()
    settings = Settings.load()
    topic = settings.topic("deadletter")
    letters = asyncio.run(read_ledger(settings.kafka, topic))
    shown = chosen(letters, key=key, projection=projection, redriven=every)
    prefix = settings.kafka.topic_prefix
    for letter in shown[-limit:]:
        typer.echo(line(letter, prefix=prefix, state=every))
    parked = sum(1 for e in letters if e.state != "redriven")
    cut = f", the newest {limit} shown" if len(shown) > limit else ""
    typer.echo(
        f"{len(shown)} record(s) listed{cut}; {parked} of {len(letters)} on "
        f"{topic.removeprefix(prefix)} still parked",
        err=True,
    )


@app.command("replay")
def replay(
    key: str | None = KeyOption,
    projection: str | None = ProjectionOption,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would be re-driven; append nothing."
    ),
) -> None:
    """Re-drive parked records after a fix: each goes back to its source partition for the
    projection that parked it (only that one applies it), once however often this runs.
    Reads the whole dead-letter topic."""
    from ringlog.cli.output import quiet_libraries
    from ringlog.config import Settings
    from ringlog.streams.redrive import chosen, read_ledger, redrive

    quiet_libraries()
    settings = Settings.load()
    topic = settings.topic("deadletter")
    prefix = settings.kafka.topic_prefix
    letters = asyncio.run(read_ledger(settings.kafka, topic))
    todo = chosen(letters, key=key, projection=projection, redriven=False)

    def said(outcome: Outcome) -> None:
        typer.echo(outcome_line(outcome, prefix=prefix))

    outcomes = asyncio.run(redrive(settings.kafka, topic, todo, dry_run=dry_run, said=said))
    if not outcomes:
        typer.echo("nothing to re-drive", err=True)
    elif dry_run:
        typer.echo(f"{len(outcomes)} record(s) would be re-driven (dry run)", err=True)
    else:
        typer.echo(f"{len(outcomes)} record(s) re-driven", err=True)


def line(letter: DeadLetter, *, prefix: str, state: bool = False) -> str:
    """One line for ``letter``: ``time  #offset  projection  source  type  key  reason``
    (with ``state``, what became of it before the reason)."""
    from ringlog.cli.tail import stamp
    from ringlog.logs import mask_phone, scrub

    source = letter.origin.shown(prefix) if letter.origin else "?"
    kind = letter.event_type or "(not an event)"
    reason = " ".join(scrub(letter.error).split())
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    fields = [
        stamp(letter.failed_at),
        f"#{letter.at.offset}",
        letter.projection,
        source,
        kind,
        mask_phone(letter.key_text) or "-",
    ]
    if state:
        fields.append(_state(letter, prefix))
    return "  ".join([*fields, reason])


def _state(letter: DeadLetter, prefix: str) -> str:
    if letter.state == "redriven" and letter.copy is not None:
        return f"redriven→{letter.copy.shown(prefix)}"
    return letter.state


def outcome_line(outcome: Outcome, *, prefix: str) -> str:
    """One line saying what a replay did with one record (its key masked)."""
    from ringlog.logs import mask_phone

    letter = outcome.letter
    what = f"#{letter.at.offset} {letter.event_type or '(not an event)'}"
    who = f"key {mask_phone(letter.key_text) or '-'}, for {letter.projection}"
    if outcome.done == "planned":
        origin = letter.origin.shown(prefix) if letter.origin else "?"
        again = " (a copy from a stopped run is looked for first)" * (letter.state == "redriving")
        return f"would re-drive {what} ({who}) to the partition of {origin}{again}"
    copy = outcome.copy.shown(prefix) if outcome.copy else "?"
    if outcome.done == "found":
        return f"already re-driven {what} ({who}) by a stopped run: the copy is at {copy}"
    return f"re-drove {what} ({who}) as {copy}"
