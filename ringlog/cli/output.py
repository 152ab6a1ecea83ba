"""Shared terminal output: rich tables for people, plain JSON for scripts, clean errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from ringlog.errors import RinglogError

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, unwrapped, for scripts to parse."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Render rows as a rich table with the given column headers."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


@contextmanager
def fail_cleanly() -> Iterator[None]:
    """Turn ringlog's own errors into one red line on stderr and exit code 2."""
    try:
        yield
    except RinglogError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
