"""Integration fixtures: one embedded stack per test session, random names per test.

The stack is started with the same code as ``ringlog dev up`` in a temporary home and stopped
at the end of the session. To run against an external cluster instead, set the part's
environment variable (``RINGLOG_KAFKA_BOOTSTRAP``, ``RINGLOG_REDIS_URL`` …): that part is then
used as given and not started.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ringlog import devstack
from ringlog.config import HOME_ENV, Settings
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Start the embedded stack once for the session; stop exactly what was started, also
    when the run is stopped with SIGTERM (``timeout``, CI): the signal interrupts the run as
    Ctrl-C does, so this teardown runs instead of leaving the stack's processes behind."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    home = tmp_path_factory.mktemp("ringlog-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(HOME_ENV, str(home))
        devstack.up(Settings.load(), home=home)
        try:
            yield home
        finally:
            devstack.down(home=home)


@pytest.fixture
def settings(stack_home: Path, unique: str) -> Settings:
    """Settings pointing at the session's stack, with a topic prefix of this test's own."""
    base = Settings.load()
    return base.model_copy(
        update={"kafka": base.kafka.model_copy(update={"topic_prefix": f"t{unique}."})}
    )


@pytest.fixture
def group_id(unique: str) -> str:
    """A consumer group id used by this test only."""
    return f"g-{unique}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[Settings]:
    """Create every declared topic under this test's prefix; delete them afterwards."""
    await ensure_topics(settings.kafka, TOPICS)
    yield settings
    await delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS])


@pytest.fixture(name="app")
async def _app(topics: Settings) -> AsyncIterator[FastAPI]:
    """The API on this test's topics (API and Retell keys of the tests), its lifespan run."""
    from ringlog.api.app import create_app
    from tests.integration.test_api_ingest import api_settings

    app = create_app(api_settings(topics))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(name="client")
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling ``app`` in process (no socket)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ringlog") as client:
        yield client
