"""Outbound pipeline: request → ABT ``voice_call_initiated`` latency, and dispatcher throughput.

One run, one embedded stack, the local Retell (simulator) and a ``ringlog worker`` process:

* **latency** — ``POST /v1/calls`` one at a time; the time until the call's ABT
  ``voice_call_initiated`` is read back from the ``abt`` topic (p50/p99). The raw baseline is
  one create-phone-call POST straight to the simulator: the least any dispatcher must pay.
* **throughput** — N ``call.requested`` events appended at once; the rate at which the worker
  turns them into ``call.dispatched``. The raw baseline is N create-phone-call POSTs sent to the
  simulator by an async client with the same concurrency as Retell's default cap.

Calls ring for minutes in the simulator (no webhooks during the run), so only dispatch is timed.
Usage: ``python -m bench.outbound [latency_requests] [throughput_requests]``.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from bench.broker import bench_settings
from ringlog import logs
from ringlog.api.app import create_app
from ringlog.config import ApiSettings, RetellSettings, Settings, SimulatorSettings
from ringlog.schemas import CallRequested, Envelope, decode
from ringlog.simulator import create_simulator
from ringlog.streams.admin import ensure_topics
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import TOPICS
from tests.support.servers import WorkerProcess, serving

RETELL_KEY = "bench-retell-key"
API_KEY = "bench-api-key"
CONCURRENCY = 100
BODY = {"to_number": "+14155550123", "from_number": "+14155559876"}


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def tail(settings: Settings, topic: str, wanted: str, seen: dict[str, float]) -> None:
    """Record, per call ref, when an event of type ``wanted`` was read from ``topic``."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=None,
        fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        await consumer.seek_to_end()
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for messages in batches.values():
                for message in messages:
                    envelope = decode(message.value or b"")
                    if envelope.type == wanted or getattr(envelope.payload, "name", "") == wanted:
                        seen.setdefault(envelope.key, now)
    finally:
        await consumer.stop()


async def wait_for(condition: object, timeout_s: float = 120.0) -> None:
    """Poll ``condition()`` every millisecond until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met")
        await asyncio.sleep(0.001)


async def latency(settings: Settings, api_url: str, sim_url: str, n: int) -> None:
    """Print p50/p99 of request → voice_call_initiated, and of a raw create-call."""
    seen: dict[str, float] = {}
    tailer = asyncio.create_task(tail(settings, "abt", "voice_call_initiated", seen))
    await asyncio.sleep(1.0)  # the tail's seek_to_end must happen before the first request
    ringlog_ms: list[float] = []
    raw_ms: list[float] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    retell_headers = {"Authorization": f"Bearer {RETELL_KEY}"}
    async with httpx.AsyncClient() as client:
        for _ in range(n):
            started = time.perf_counter()
            answer = await client.post(f"{api_url}/v1/calls", json=BODY, headers=headers)
            ref = answer.json()["call_ref"]
            await wait_for(lambda ref=ref: ref in seen)
            ringlog_ms.append((seen[ref] - started) * 1000)
        for _ in range(n):
            started = time.perf_counter()
            body = BODY | {"idempotency_key": uuid.uuid4().hex}
            answer = await client.post(
                f"{sim_url}/v2/create-phone-call", json=body, headers=retell_headers
            )
            assert answer.status_code == 201, answer.text
            raw_ms.append((time.perf_counter() - started) * 1000)
    tailer.cancel()
    print(f"\nrequest → ABT voice_call_initiated, {n} sequential requests")
    print(f"{'path':<34}{'p50 ms':>10}{'p99 ms':>10}")
    for name, values in (
        ("raw create-call (simulator)", raw_ms),
        ("ringlog end to end", ringlog_ms),
    ):
        print(f"{name:<34}{statistics.median(values):>10.1f}{percentile(values, 0.99):>10.1f}")


async def throughput(settings: Settings, sim_url: str, n: int) -> None:
    """Print dispatches/s of the worker and of a raw async client against the simulator."""
    seen: dict[str, float] = {}
    tailer = asyncio.create_task(tail(settings, "calls", "call.dispatched", seen))
    await asyncio.sleep(1.0)
    refs = [f"bench-{uuid.uuid4().hex}" for _ in range(n)]
    envelopes = [
        Envelope.new(
            CallRequested(
                call_ref=ref,
                agent_id="bench",
                to_number=BODY["to_number"],
                from_number=BODY["from_number"],
            ),
            source="bench",
            correlation_id=ref,
        )
        for ref in refs
    ]
    async with LogProducer(settings.kafka) as log:
        started = time.perf_counter()
        await log.append_many(envelopes)
        await wait_for(lambda: all(ref in seen for ref in refs))
        ringlog_s = time.perf_counter() - started
    tailer.cancel()

    retell_headers = {"Authorization": f"Bearer {RETELL_KEY}"}
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

        async def create() -> None:
            async with gate:
                body = BODY | {"idempotency_key": uuid.uuid4().hex}
                answer = await client.post(
                    f"{sim_url}/v2/create-phone-call", json=body, headers=retell_headers
                )
                assert answer.status_code == 201

        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(n)))
        raw_s = time.perf_counter() - started
    print(f"\ndispatch throughput, {n} requests at once")
    print(f"{'path':<34}{'calls/s':>10}")
    print(f"{'raw create-call, 100 concurrent':<34}{n / raw_s:>10.0f}")
    print(f"{'ringlog worker':<34}{n / ringlog_s:>10.0f}")
    print(f"ratio ringlog/raw: {(n / ringlog_s) / (n / raw_s):.2f}")


async def run(settings: Settings, latency_n: int, throughput_n: int) -> None:
    """Serve the API and the simulator, start a worker, run both measurements."""
    await ensure_topics(settings.kafka, TOPICS)
    settings = settings.model_copy(
        update={
            "retell": RetellSettings(api_key=RETELL_KEY, max_concurrent_calls=1_000_000),
            "api": ApiSettings(keys=(API_KEY,)),
        }
    )
    with serving(create_app(settings)) as api_url:
        sim = SimulatorSettings(webhook_url=f"{api_url}/v1/webhooks/retell", ring_s=3600)
        simulator = create_simulator(settings.model_copy(update={"simulator": sim}))
        with serving(simulator) as sim_url, tempfile.TemporaryDirectory() as tmp:
            worker = WorkerProcess(
                {
                    "RINGLOG_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
                    "RINGLOG_WORKER_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
                    "RINGLOG_RETELL_API_KEY": RETELL_KEY,
                    "RINGLOG_RETELL_BASE_URL": sim_url,
                    "RINGLOG_RETELL_MAX_CONCURRENT_CALLS": "1000000",
                    "RINGLOG_CRM_URL": f"sqlite:///{tmp}/crm.db",
                },
                Path(tmp) / "worker.log",
            )
            worker.start()
            try:
                await latency(settings, api_url, sim_url, latency_n)
                await throughput(settings, sim_url, throughput_n)
            finally:
                worker.stop()


def main(argv: list[str]) -> None:
    """Run the outbound benchmark on a private embedded stack (or the configured broker)."""
    latency_n = int(argv[0]) if argv else 200
    throughput_n = int(argv[1]) if len(argv) > 1 else 1000
    logs.configure(level=logging.WARNING)
    with bench_settings() as settings:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
        asyncio.run(run(settings.model_copy(update={"kafka": kafka}), latency_n, throughput_n))


if __name__ == "__main__":
    main(sys.argv[1:])
