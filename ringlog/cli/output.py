"""Shared terminal output: rich tables for people, plain JSON for scripts, clean errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ringlog.errors import BrokerUnavailable, RinglogError

console = Console()
#: Errors are single lines: never wrapped at the terminal's width.
err_console = Console(stderr=True, soft_wrap=True)

#: What to run next when a part of the stack (the broker, the warehouse) does not answer.
STACK_HINT = "`ringlog dev status` shows what answers; `ringlog dev up` starts the embedded stack"


def quiet_libraries() -> None:
    """Keep the clients' own log lines (aiokafka's connection warnings) off a command's
    output; what fails reaches the command as an error, said once."""
    for name in ("aiokafka", "kafka", "snowflake.connector"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


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


def error_line(message: str) -> None:
    """Print ``message`` as one red ``error:`` line on stderr (rich markup in it is shown as
    written, not interpreted)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one error line and exit with ``code``."""
    error_line(message)
    raise SystemExit(code)


@contextmanager
def fail_cleanly() -> Iterator[None]:
    """Turn ringlog's own errors into one red line on stderr and exit code 2; an unreachable
    broker's line says what to run next. Ctrl-C ends a command with 130, without a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokerUnavailable as exc:
        fail(f"{exc} ({STACK_HINT})", 2)
    except RinglogError as exc:
        fail(str(exc), 2)
