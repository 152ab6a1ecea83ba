"""The worker's faust transport applies the configured fetch wait (faust fixes it at 1500 ms)."""

from __future__ import annotations

from typing import Any, cast

from ringlog.worker.transport import WorkerApp


async def test_the_worker_consumer_waits_as_long_as_configured() -> None:
    app = WorkerApp(
        "transport-test",
        broker="kafka://127.0.0.1:9",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        fetch_max_wait_ms=37,
    )
    consumer = cast(Any, app.consumer)
    thread = consumer._new_consumer_thread()
    client = thread._create_worker_consumer(app.transport)
    assert client._fetch_max_wait_ms == 37
    await client.stop()
