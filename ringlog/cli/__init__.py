"""The ``ringlog`` command line: one typer app assembled from small command modules."""

from __future__ import annotations

import typer

from ringlog.cli import (
    api,
    dev,
    projector,
    rebuild,
    run,
    schemas,
    simulator,
    topics,
    worker,
)
from ringlog.cli.output import fail_cleanly

app = typer.Typer(
    name="ringlog",
    help="Event-sourced backbone for voice-AI phone calls.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(topics.app, name="topics")
app.add_typer(dev.app, name="dev")
app.add_typer(schemas.app, name="schemas")
app.add_typer(rebuild.app, name="rebuild")
app.command("api")(api.api)
app.command("worker")(worker.worker)
app.command("projector")(projector.projector)
app.command("simulator")(simulator.simulator)
app.command("run")(run.run)
app.command("demo")(run.demo)


def main() -> None:
    """Entry point of the ``ringlog`` script: errors ringlog expects print as one clear line."""
    with fail_cleanly():
        app()
