"""``ringlog bridge``: SQS queues bridged into the log, and a topic bridged out to a queue.

Only typer and the kinds of queue are imported here; the bridges (boto3, aiokafka,
SQLAlchemy) are imported when a command runs, so ``ringlog bridge --help`` stays quick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from ringlog.bridges.kinds import InboundKind
from ringlog.cli.metrics import MetricsHost

if TYPE_CHECKING:
    from ringlog.bridges.service import Bridge
    from ringlog.config import Settings

app = typer.Typer(invoke_without_command=True)

METRICS_PORT_HELP = "Serve Prometheus metrics (messages bridged, lag) on this port; 0: off."


@app.callback(invoke_without_command=True)
def bridge(
    ctx: typer.Context,
    metrics_port: Annotated[int, typer.Option(help=METRICS_PORT_HELP)] = 0,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Bridge SQS queues in (call requests, Retell events) and out (ABT events).

    Without a command: run every bridge of the queues configured:
    ``RINGLOG_SQS_CALL_REQUESTS_QUEUE`` in as
    call requests, ``RINGLOG_SQS_WEBHOOK_EVENTS_QUEUE`` in as Retell events,
    ``RINGLOG_SQS_OUTBOUND_QUEUE`` out from ``abt`` (an empty setting turns its bridge off).
    Stops on SIGINT/SIGTERM; the first bridge to fail stops the others, and the command exits
    non-zero with its error."""
    if ctx.invoked_subcommand is not None:
        return
    from ringlog.bridges.service import configured_bridges

    _serve(configured_bridges, metrics_port, metrics_host)


@app.command("sqs-in", short_help="Bridge a queue of call requests or Retell events in.")
def sqs_in(
    queue: Annotated[str, typer.Option("--queue", help="The queue's URL (or its name).")],
    kind: Annotated[InboundKind, typer.Option("--as", help="What the queue's messages are.")],
    metrics_port: Annotated[int, typer.Option(help=METRICS_PORT_HELP)] = 0,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Append each message of the queue to the log as the event the API would append for
    the same body (``call-request``: ``call.requested``; ``retell-event``: the Retell call
    event), then delete it; a body that cannot be parsed is kept on ``quarantine`` and
    deleted; one larger than the API takes is left on the queue with an error. Refuses a
    queue that does not exist."""
    from ringlog.bridges.service import SqsIn

    _serve(lambda _settings: [SqsIn(queue, kind)], metrics_port, metrics_host)


@app.command("sqs-out", short_help="Bridge a topic (abt) out to a queue.")
def sqs_out(
    queue: Annotated[str, typer.Option("--queue", help="The queue's URL (or its name).")],
    topic: Annotated[str, typer.Option("--topic", help="The topic to send (logical name).")] = (
        "abt"
    ),
    metrics_port: Annotated[int, typer.Option(help=METRICS_PORT_HELP)] = 0,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Send every event of the topic to the queue, in order, from the bridge's checkpoint;
    offsets are committed only after SQS accepted each message (FIFO queues: grouped by the
    record's key, deduplicated by topic-partition-offset). A send that keeps failing stops
    the command with the record's position; it is never skipped."""
    from ringlog.bridges.service import SqsOut, logical_topic

    _serve(lambda _settings: [SqsOut(logical_topic(topic), queue)], metrics_port, metrics_host)


def _serve(
    choose: Callable[[Settings], list[Bridge]], metrics_port: int, metrics_host: str
) -> None:
    """Run the bridges ``choose`` picks from the settings until SIGINT/SIGTERM."""
    import asyncio

    import structlog
    from prometheus_client import CollectorRegistry

    from ringlog import heap, logs
    from ringlog.bridges.service import run_bridges
    from ringlog.cli.metrics import serve_metrics
    from ringlog.cli.output import console
    from ringlog.config import Settings
    from ringlog.devstack.supervise import run_until_stopped

    settings = Settings.load()
    bridges = choose(settings)
    if not bridges:
        console.print(
            "no SQS queue is configured (RINGLOG_SQS_CALL_REQUESTS_QUEUE, "
            "RINGLOG_SQS_WEBHOOK_EVENTS_QUEUE, RINGLOG_SQS_OUTBOUND_QUEUE): nothing to bridge"
        )
        return
    logs.configure()
    registry = CollectorRegistry()
    serve_metrics(registry, metrics_port, metrics_host)
    structlog.get_logger("ringlog.bridges").info(
        "bridges starting",
        bridges=[b.describe() for b in bridges],
        endpoint=settings.sqs.endpoint_url or f"SQS in {settings.sqs.region}",
    )

    async def main(stop: asyncio.Event) -> None:
        heap.settle()
        await run_bridges(settings, bridges, stop, registry=registry)

    run_until_stopped(main, name="bridge")
