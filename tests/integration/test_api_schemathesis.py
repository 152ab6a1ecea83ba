"""Property-based run over the API's OpenAPI spec (schemathesis): no input gives a 5xx.

The app runs in uvicorn on a real port against the session's broker and Redis; schemathesis
generates requests from /openapi.json, with a valid API key so the call endpoint's validation
and append paths are reached, not only the 401.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error

from ringlog.api.app import create_app
from ringlog.config import Settings
from ringlog.devstack.ports import free_port, tcp_answers, wait_until
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS
from tests.integration.test_api_ingest import AUTH, api_settings
from tests.support.worker_runtime import folding_worker_thread

pytestmark = pytest.mark.integration


@pytest.fixture(name="api_url", scope="module")
def _api_url(stack_home: object) -> Iterator[str]:
    """uvicorn serving ringlog in a thread, with its own topics and a worker runtime folding them
    into the views; stopped after the module."""
    settings = Settings.load()
    kafka = settings.kafka.model_copy(update={"topic_prefix": "schemathesis."})
    settings = api_settings(settings.model_copy(update={"kafka": kafka}))
    asyncio.run(ensure_topics(kafka, TOPICS))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    with folding_worker_thread(settings):  # keeps the views the reads come from
        thread.start()
        assert wait_until(lambda: tcp_answers("127.0.0.1", port), timeout_s=20)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(timeout=10)
    asyncio.run(delete_topics(kafka, [f"schemathesis.{t.name}" for t in TOPICS]))


def test_no_input_causes_a_server_error(api_url: str) -> None:
    """Whatever schemathesis sends (with a valid key), no operation answers 5xx."""
    # schemathesis' own pytest plugin does not support pytest 9; use its strategies directly
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    schema.config.base_url = api_url
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/calls", "/v1/webhooks/retell"}
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **AUTH}
            case.call_and_validate(checks=[not_a_server_error])

        exercise()

    metrics = httpx.get(f"{api_url}/metrics", timeout=5).text
    assert 'route="/v1/calls",status="202"' in metrics, "no generated call request was accepted"
    assert not re.search(r'status="5\d\d"', metrics), metrics
