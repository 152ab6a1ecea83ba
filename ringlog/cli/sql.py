"""``ringlog sql``: an analyst's way into the warehouse (the fakesnow server on the embedded
stack, Snowflake elsewhere), with the connection the settings give the projector.

``ringlog sql "SELECT …"`` runs one statement and prints its rows as a table (``--json`` for
scripts); ``ringlog sql`` alone prints how to connect another client.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ringlog.config import Settings

#: Seconds to wait for the warehouse to accept a connection.
LOGIN_TIMEOUT_S = 10.0


def sql(
    query: str | None = typer.Argument(
        None,
        help="One SQL statement, e.g. 'SELECT * FROM CALLS LIMIT 5'. Without it, the "
        "connection details are printed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON objects."),
    max_rows: int = typer.Option(1000, "--max-rows", min=1, help="Show at most this many rows."),
) -> None:
    """Run one statement against the warehouse and print its rows, or, without a statement,
    how to connect to the warehouse with another client."""
    from ringlog.cli.output import console, print_json, print_table, quiet_libraries
    from ringlog.config import Settings

    quiet_libraries()
    settings = Settings.load()
    if query is None:
        for line in connection_details(settings):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    columns, rows, more = run_query(settings, query, max_rows)
    if as_json:
        print_json([dict(zip(columns, map(_plain, row), strict=True)) for row in rows])
    else:
        print_table(
            "", columns, [["NULL" if v is None else _plain(v) for v in row] for row in rows]
        )
        rest = " shown; there are more (raise --max-rows)" if more else ""
        console.print(f"{len(rows)} row(s){rest}")


def connect(settings: Settings) -> Any:
    """A connection to the warehouse (autocommit); one clear line and exit 2 when it does not
    answer."""
    import snowflake.connector

    from ringlog.cli.output import STACK_HINT, fail
    from ringlog.projections.retrying import describe
    from ringlog.projections.warehouse import connect_kwargs

    try:
        return snowflake.connector.connect(
            **connect_kwargs(settings.warehouse, login_timeout=LOGIN_TIMEOUT_S)
        )
    except Exception as exc:  # noqa: BLE001 - any connector failure is reported as one line
        fail(
            f"warehouse at {address(settings)} does not answer: {describe(exc)} ({STACK_HINT},"
            " or set RINGLOG_SNOWFLAKE_HOST and _PORT to another)",
            2,
        )


def run_query(
    settings: Settings, query: str, max_rows: int
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Run ``query``; return its column names, up to ``max_rows`` rows, and whether there
    were more. A refused statement is one line and exit 1."""
    from snowflake.connector.errors import Error

    from ringlog.cli.output import fail
    from ringlog.projections.retrying import describe

    connection = connect(settings)
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(query)
        except Error as exc:
            fail(f"the warehouse refused the statement: {describe(exc)}")
        columns = [str(d[0]) for d in cursor.description or ()]
        rows = [tuple(row) for row in cursor.fetchmany(max_rows + 1)] if columns else []
    finally:
        connection.close()
    return columns, rows[:max_rows], len(rows) > max_rows


def address(settings: Settings) -> str:
    """Where the warehouse is: ``protocol://host:port``, or the account's Snowflake host."""
    w = settings.warehouse
    if w.host is None:
        return f"https://{w.account}.snowflakecomputing.com"
    return f"{w.protocol}://{w.host}" + (f":{w.port}" if w.port else "")


def connection_details(settings: Settings) -> list[str]:
    """How to reach the warehouse from another client (the password only for the embedded
    stack's, whose credentials are fixed and public)."""
    from ringlog.config import on_embedded_stack

    w = settings.warehouse
    embedded = on_embedded_stack(settings)
    password = w.password.get_secret_value() if embedded else "<RINGLOG_SNOWFLAKE_PASSWORD>"
    kwargs = {"account": w.account, "user": w.user, "password": password}
    if w.host is not None:
        kwargs |= {"host": w.host, "protocol": w.protocol}
    if w.port is not None:
        kwargs["port"] = str(w.port)
    kwargs |= {"database": w.database, "schema": w.schema_name}
    where = "the embedded stack's fakesnow server" if embedded else "Snowflake"
    arguments = ", ".join(
        f"{name}={value}" if name == "port" else f"{name}={value!r}"
        for name, value in kwargs.items()
    )
    return [
        f"warehouse: {where} at {address(settings)}",
        *(f"  {name}: {value}" for name, value in kwargs.items()),
        'query it: ringlog sql "SELECT * FROM CALLS LIMIT 5"',
        f"from Python: snowflake.connector.connect({arguments})",
    ]


def _plain(value: Any) -> Any:
    """A cell as JSON and a table can show it."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value
