"""Commands imported only when they run, so ``ringlog --help`` imports nothing heavy.

Each command module pulls in what it serves (FastAPI, aiokafka, SQLAlchemy, the Snowflake
connector…): together about two seconds of imports. The top-level group lists the commands
from a table (:class:`Lazy`: name, ``module:attribute``, one-line summary) and imports a
command's module only when that command is resolved to run (or to show its own ``--help``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer import _click as click
else:
    try:  # recent Typer releases carry their own copy of Click
        from typer import _click as click
    except ImportError:  # older ones use Click itself
        import click


@dataclass(frozen=True)
class Lazy:
    """One command of the top-level group, not imported yet."""

    name: str
    #: ``package.module:attribute``: a command function or a ``typer.Typer`` of subcommands
    target: str
    #: the one line ``ringlog --help`` shows; the command's docstring is its full help
    summary: str


class _Listed(TyperCommand):
    """Stands in for a lazy command until it is resolved: its name and summary only, which
    is all that listings, suggestions and completion of command names need."""

    def __init__(self, entry: Lazy) -> None:
        super().__init__(entry.name, help=entry.summary)
        self.entry = entry


def load(entry: Lazy) -> click.Command:
    """Import ``entry``'s module and build its click command (a group for a Typer app)."""
    module_name, attribute = entry.target.split(":")
    target: Any = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(entry.name)(target)
        command = typer.main.get_command(single)
    command.name = entry.name
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose :attr:`lazy` commands are imported when first resolved."""

    lazy: ClassVar[Sequence[Lazy]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in self.lazy:
            self.commands.setdefault(entry.name, _Listed(entry))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Resolve as Click does; a stand-in is replaced by its command, imported now."""
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Listed) and name is not None:
            command = self.commands[name] = load(command.entry)
        return name, command, rest
