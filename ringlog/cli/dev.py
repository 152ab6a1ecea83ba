"""``ringlog dev``: start, inspect and stop the embedded stack."""

from __future__ import annotations

import typer

from ringlog import devstack
from ringlog.cli.output import console, print_json, print_table
from ringlog.config import Settings

app = typer.Typer(
    help="The embedded stack: broker, Redis, warehouse, SQS, CRM.", no_args_is_help=True
)


@app.command("up")
def up() -> None:
    """Start every part not given by the environment; a no-op when the stack already runs."""
    settings = Settings.load()
    devstack.up(settings, home=settings.home)
    show_status(Settings.load())


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show each part's address and whether it answers right now."""
    settings = Settings.load()
    if as_json:
        print_json(devstack.status_json(devstack.status(settings, home=settings.home)))
    else:
        show_status(settings)


@app.command("down")
def down() -> None:
    """Stop exactly the processes `dev up` started; external parts are left alone."""
    settings = Settings.load()
    stopped = devstack.down(home=settings.home)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


def show_status(settings: Settings) -> None:
    """Print the stack's parts as a table."""
    parts = devstack.status(settings, home=settings.home)
    print_table(
        f"embedded stack ({settings.home})",
        ["part", "address", "answers", "started by ringlog", "pid"],
        [
            (
                p.name,
                p.address,
                "yes" if p.answers else "NO",
                "yes" if p.managed else "no",
                p.pid or "",
            )
            for p in parts
        ],
    )
