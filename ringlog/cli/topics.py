"""``ringlog topics``: create, check and list the declared topics.

Topics are created by one rule, :func:`ensure_declared` (``topics ensure``, ``dev up``): with
the declared partitions and settings, before anything writes to them, so the broker's own
auto-creation never makes one of another shape first.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from ringlog.cli.output import error_line, print_json, print_table, quiet_libraries

if TYPE_CHECKING:
    from ringlog.config import Settings
    from ringlog.streams.admin import EnsureResult

app = typer.Typer(help="Create, check and list the declared topics.", no_args_is_help=True)

JsonFlag = typer.Option(False, "--json", help="Print JSON instead of a table.")


@app.command("ensure")
def ensure(as_json: bool = JsonFlag) -> None:
    """Create missing topics and check existing ones against the declaration (exit 1 on a
    mismatch)."""
    from ringlog.config import Settings

    quiet_libraries()
    ensure_declared(Settings.load(), as_json=as_json)


def ensure_declared(settings: Settings, *, as_json: bool = False) -> list[EnsureResult]:
    """Create every declared topic that is missing, print what was found, and exit 1 when an
    existing topic differs from its declaration (it is never altered)."""
    from ringlog.streams.admin import ensure_topics
    from ringlog.streams.topics import TOPICS

    results = asyncio.run(ensure_topics(settings.kafka, TOPICS))
    if as_json:
        print_json([asdict(r) for r in results])
    else:
        print_table(
            f"topics on {settings.kafka.bootstrap}",
            ["topic", "partitions (declared)", "partitions (actual)", "status"],
            [(r.physical, r.partitions_declared, r.partitions_actual, r.status) for r in results],
        )
    wrong = [r for r in results if r.status == "mismatch"]
    for r in wrong:
        error_line(
            f"{r.physical} has {r.partitions_actual} partitions, declared {r.partitions_declared}:"
            " something created it before `ringlog topics ensure` did (the broker's"
            " auto-creation?) and it is left alone, as repartitioning moves keys; delete it"
            " (its records go with it) and run `ringlog topics ensure` again, or choose another"
            " RINGLOG_KAFKA_TOPIC_PREFIX"
        )
    if wrong:
        raise typer.Exit(1)
    return results


@app.command("list")
def list_(
    as_json: bool = JsonFlag,
    prefix: str | None = typer.Option(None, help="Only topics with this prefix."),
) -> None:
    """Show existing topics with partition counts and exact record counts."""
    from ringlog.config import Settings
    from ringlog.streams.admin import list_topics

    quiet_libraries()
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
