"""``ringlog schemas``: keep the committed JSON Schemas of every event version in step."""

from __future__ import annotations

from pathlib import Path

import typer

from ringlog.cli.output import console, err_console
from ringlog.schemas import REGISTRY
from ringlog.schemas.snapshots import SNAPSHOT_DIR, check, export

app = typer.Typer(help="JSON Schema snapshots of the event contract.", no_args_is_help=True)

DirOption = typer.Option(SNAPSHOT_DIR, help="Snapshot directory.")


@app.command("export")
def export_(directory: Path = DirOption) -> None:
    """Append the current schema of every event version where it changed; never rewrite."""
    changed = export(REGISTRY, directory)
    for line in changed:
        console.print(f"updated {line}")
    if not changed:
        console.print("snapshots up to date")


@app.command("check")
def check_(directory: Path = DirOption) -> None:
    """Fail when a model changed in a way older events could not be read (BACKWARD_TRANSITIVE)."""
    problems = check(REGISTRY, directory)
    for problem in problems:
        err_console.print(f"[red]{problem}[/]")
    if problems:
        raise typer.Exit(1)
    console.print("schemas compatible with every committed version")
