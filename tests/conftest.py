"""Fixtures shared by every test layer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def unique() -> str:
    """A short random token for names that must not collide between tests."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(autouse=True)
def logger_levels_restored() -> Iterator[None]:
    """Commands run in-process (typer's CliRunner) quiet library loggers for the life of
    their process; a test's process is shared, so each test gets the levels back."""
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
