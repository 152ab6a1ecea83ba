"""The test PostgreSQL (``RINGLOG_TEST_POSTGRES_URL``) and schemas of a test's own in it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

POSTGRES_URL = os.environ.get(
    "RINGLOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def scoped_url(schema: str) -> str:
    """The test PostgreSQL's URL with ``schema`` as its search path."""
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schemas(*schemas: str) -> Iterator[list[str]]:
    """Create ``schemas``; yield a URL scoped to each (:func:`scoped_url`); drop them after."""
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield [scoped_url(schema) for schema in schemas]
    finally:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def fresh_database(kind: str, tmp_path: Path, prefix: str) -> Iterator[str]:
    """A fresh database URL of ``kind``: ``postgresql``, a schema of its own named
    ``<prefix>_<random>`` (dropped after); ``sqlite``, a file under ``tmp_path``."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    with fresh_schemas(f"{prefix}_{uuid.uuid4().hex[:8]}") as (url,):
        yield url


@contextmanager
def fresh_engine(prefix: str) -> Iterator[Engine]:
    """An engine on a fresh schema named ``<prefix>_<random>``; disposed and dropped after."""
    with fresh_schemas(f"{prefix}_{uuid.uuid4().hex[:8]}") as (url,):
        engine = create_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
