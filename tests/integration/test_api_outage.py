"""Broker outage: the API answers 503 (never 2xx) and a retry after recovery lands once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ringlog.api.app import create_app
from ringlog.config import KafkaSettings, Settings
from ringlog.devstack import processes
from ringlog.devstack.parts import tansu_command
from ringlog.devstack.ports import free_port, tcp_answers
from ringlog.devstack.processes import ProcessRecord
from ringlog.streams.admin import ensure_topics
from ringlog.streams.consumer import LogConsumer
from ringlog.streams.topics import TOPICS
from tests.integration.test_api_ingest import api_settings, signed, webhook

pytestmark = pytest.mark.integration


class Broker:
    """A private Tansu broker on a fixed port that a test can stop and start again."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.record: ProcessRecord | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        command = tansu_command(self.home, self.port, {})
        self.record = processes.spawn(command, self.home / "tansu.log")
        for _ in range(200):
            if tcp_answers("127.0.0.1", self.port):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(processes.log_tail(str(self.home / "tansu.log")))

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record)
            self.record = None


@pytest.fixture(name="broker")
def _broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture(name="outage_settings")
async def _outage_settings(settings: Settings, broker: Broker) -> AsyncIterator[Settings]:
    await broker.start()
    kafka = settings.kafka.model_copy(
        update={"bootstrap": broker.address, "append_timeout_s": 1.0, "request_timeout_ms": 2000}
    )
    await ensure_topics(kafka, TOPICS)
    yield api_settings(settings.model_copy(update={"kafka": kafka}))


async def read_payloads(kafka: KafkaSettings, topic: str) -> list[object]:
    """Every payload on ``topic`` (read to the end), parsed."""
    payloads: list[object] = []
    async with LogConsumer(kafka, [topic], group_id=None) as consumer:
        empty = 0
        while empty < 3:
            batch = await consumer.getmany(timeout_ms=300)
            empty = 0 if batch.records else empty + 1
            payloads += [orjson.loads(r.value)["payload"] for r in batch.records]
    return payloads


async def test_outage_is_503_and_the_retry_lands_once(
    outage_settings: Settings, broker: Broker
) -> None:
    """Broker down: 503 + Retry-After within the bound; back up: the retry is one record."""
    app = create_app(outage_settings)
    body = webhook("call_analyzed")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            broker.stop()
            started = time.monotonic()
            down = await client.post("/v1/webhooks/retell", content=body, headers=signed(body))
            elapsed = time.monotonic() - started
            assert down.status_code == 503, down.text
            assert int(down.headers["Retry-After"]) >= 1
            assert elapsed < 5, f"503 took {elapsed:.1f}s; Retell gives up after 10 s"

            await broker.start()  # memory storage: a fresh, empty broker on the same port
            await ensure_topics(outage_settings.kafka, TOPICS)
            retried = None
            for _ in range(20):  # Retell retries; so does this client, until the log is back
                retried = await client.post(
                    "/v1/webhooks/retell", content=body, headers=signed(body)
                )
                if retried.status_code != 503:
                    break
                await asyncio.sleep(0.5)
            assert retried is not None and retried.status_code == 204, retried
    stored = await read_payloads(outage_settings.kafka, outage_settings.topic("calls"))
    assert stored == [orjson.loads(body)]
