"""`ringlog --help` imports no command module: each is imported when its command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ringlog.cli import COMMANDS
from ringlog.cli.lazy import load

#: Libraries that take the time of a command, never of a help page (top-level names).
HEAVY = {
    "aiokafka",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic_settings",
    "redis",
    "snowflake",
    "duckdb",
    "structlog",
    "httpx",
    "boto3",
    "prometheus_client",
    "dateparser",
    "psycopg",
}


def imported_by(*args: str) -> set[str]:
    """The top-level names of every module ``python -m ringlog ARGS`` imports (from
    ``-X importtime``), after checking it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ringlog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage" in proc.stdout
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_top_level_help_imports_nothing_heavy() -> None:
    """No client library, not even pydantic, and no command module behind the listing."""
    modules = imported_by("--help")
    assert "typer" in modules  # the parse worked: importtime lines were read
    assert not modules & (HEAVY | {"pydantic"})


@pytest.mark.parametrize(
    "command", ["dev", "topics", "tail", "lag", "sql", "deadletter", "call", "session"]
)
def test_a_command_help_imports_no_client(command: str) -> None:
    """A command's own help imports its module, but not the clients it uses when it runs
    (Typer itself needs pydantic to read the options)."""
    assert not imported_by(command, "--help") & HEAVY


def test_every_listed_command_loads_under_its_name() -> None:
    """Each entry of the table names a real command; the listing shows them all."""
    for entry in COMMANDS:
        command = load(entry)
        assert command.name == entry.name
        assert command.help, entry.name
    assert len({e.name for e in COMMANDS}) == len(COMMANDS)
