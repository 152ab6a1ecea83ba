"""``ringlog topics``: create, check and list the declared topics."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import typer

from ringlog.cli.output import print_json, print_table
from ringlog.config import Settings
from ringlog.streams.admin import ensure_topics, list_topics
from ringlog.streams.topics import TOPICS

app = typer.Typer(help="Create, check and list the declared topics.", no_args_is_help=True)

JsonFlag = typer.Option(False, "--json", help="Print JSON instead of a table.")


@app.command("ensure")
def ensure(as_json: bool = JsonFlag) -> None:
    """Create missing topics and check existing ones against the declaration."""
    settings = Settings.load()
    results = asyncio.run(ensure_topics(settings.kafka, TOPICS))
    if as_json:
        print_json([asdict(r) for r in results])
    else:
        print_table(
            f"topics on {settings.kafka.bootstrap}",
            ["topic", "partitions (declared)", "partitions (actual)", "status"],
            [(r.physical, r.partitions_declared, r.partitions_actual, r.status) for r in results],
        )
    if any(r.status == "mismatch" for r in results):
        raise typer.Exit(1)


@app.command("list")
def list_(
    as_json: bool = JsonFlag,
    prefix: str | None = typer.Option(None, help="Only topics with this prefix."),
) -> None:
    """Show existing topics with partition counts and record counts (end minus start)."""
    settings = Settings.load()
    infos = asyncio.run(list_topics(settings.kafka, prefix))
    if as_json:
        print_json(
            [{"name": i.name, "partitions": i.partitions, "records": i.records} for i in infos]
        )
    else:
        print_table(
            f"topics on {settings.kafka.bootstrap}",
            ["topic", "partitions", "records"],
            [(i.name, i.partitions, i.records) for i in infos],
        )
