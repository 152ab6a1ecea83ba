"""The ``ringlog`` command line: one typer app assembled from small command modules.

The modules are imported only when their command runs (:mod:`ringlog.cli.lazy`), so
``ringlog --help`` answers at once; the summaries below are what it lists.
"""

from __future__ import annotations

import typer

from ringlog.cli.lazy import Lazy, LazyGroup
from ringlog.cli.output import fail_cleanly

#: Every command, in the order ``ringlog --help`` lists them.
COMMANDS: tuple[Lazy, ...] = (
    Lazy(
        "run",
        "ringlog.cli.run:run",
        "Start the stack and the platform; serve the API until Ctrl-C.",
    ),
    Lazy(
        "demo",
        "ringlog.cli.run:demo",
        "Play the end-to-end stories; exit 0 only if every effect is seen.",
    ),
    Lazy("api", "ringlog.cli.api:api", "Serve the ingest API."),
    Lazy(
        "worker",
        "ringlog.cli.worker:worker",
        "Dispatch calls to Retell; turn call events into ABT events and call records.",
    ),
    Lazy(
        "projector",
        "ringlog.cli.projector:projector",
        "Keep the read views, the CRM and the warehouse in step with the log.",
    ),
    Lazy(
        "bridge",
        "ringlog.cli.bridge:app",
        "Bridge SQS queues in (call requests, Retell events) and out (ABT events).",
    ),
    Lazy(
        "simulator",
        "ringlog.cli.simulator:simulator",
        "Serve a local Retell that places scripted calls and posts signed webhooks.",
    ),
    Lazy(
        "tail",
        "ringlog.cli.tail:tail",
        "Follow the log, one line per event, phone numbers masked.",
    ),
    Lazy(
        "lag",
        "ringlog.cli.lag:lag",
        "Each consumer group's and projection's position against the log's end.",
    ),
    Lazy(
        "sql",
        "ringlog.cli.sql:sql",
        "Query the warehouse, or show how to connect to it.",
    ),
    Lazy("topics", "ringlog.cli.topics:app", "Create, check and list the declared topics."),
    Lazy("dev", "ringlog.cli.dev:app", "The embedded stack: broker, Redis, warehouse, SQS, CRM."),
    Lazy("schemas", "ringlog.cli.schemas:app", "JSON Schema snapshots of the event contract."),
    Lazy(
        "rebuild",
        "ringlog.cli.rebuild:rebuild",
        "Rebuild a projection from the log, blue/green; --verify diffs it against a fresh fold.",
    ),
    Lazy(
        "replay",
        "ringlog.cli.replay:replay",
        "Rewind a stopped processor to the log's start or an instant; it folds what follows again.",
    ),
    Lazy(
        "call",
        "ringlog.cli.call:app",
        "A call's state, now or at a past instant (--at), and its timeline.",
    ),
    Lazy(
        "session",
        "ringlog.cli.session:app",
        "A number's session, now or at a past instant (--at).",
    ),
    Lazy(
        "deadletter",
        "ringlog.cli.deadletter:app",
        "List the records processors parked on the dead-letter topic; re-drive them once.",
    ),
)


class _Commands(LazyGroup):
    lazy = COMMANDS


app = typer.Typer(
    name="ringlog",
    cls=_Commands,
    help="Event-sourced backbone for voice-AI phone calls.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Event-sourced backbone for voice-AI phone calls."""


def main() -> None:
    """Entry point of the ``ringlog`` script: errors ringlog expects print as one clear line."""
    with fail_cleanly():
        app()
