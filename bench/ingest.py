"""Signed Retell webhooks at fixed concurrency: ringlog's endpoint vs a bare one, same server.

The server runs in its own process (``bench.ingest_server``); this process is the load
generator (httpx, keep-alive, C connections). Both endpoints get the same signed bodies.
Run: ``python -m bench.ingest [--requests N] [--concurrency C]``. Prints req/s, p50 and p99 for
each endpoint and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import orjson

from bench.broker import bench_settings
from ringlog.api.signature import sign
from ringlog.devstack.ports import free_port, tcp_answers, wait_until
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS

KEY = "bench-retell-key"


@dataclass
class Result:
    """Throughput and latency of one endpoint."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def bodies(n: int) -> list[tuple[bytes, str]]:
    """N distinct call_ended webhooks, signed now (valid for five minutes)."""
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        body = orjson.dumps(
            {
                "event": "call_ended",
                "call": {
                    "call_id": f"bench-{i}",
                    "agent_id": "agent",
                    "call_status": "ended",
                    "metadata": {"call_ref": f"call-{i % 500}"},
                    "from_number": "+14155559876",
                    "to_number": "+14155550123",
                    "disconnection_reason": "user_hangup",
                    "transcript": "Agent: Hello!\nUser: Hi, I'd like to book a flu shot." * 4,
                },
            }
        )
        out.append((body, sign(body, KEY, now)))
    return out


def request_bytes(path: str, body: bytes, signature: str) -> bytes:
    """One HTTP/1.1 keep-alive POST, serialised once up front."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"x-retell-signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def connection(
    port: int, queue: asyncio.Queue[bytes], latencies: list[float], statuses: list[int]
) -> None:
    """One keep-alive connection sending queued requests one after another."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not queue.empty():
            raw = queue.get_nowait()
            started = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(int(head.split(b" ", 2)[1]))
    finally:
        writer.close()


async def load(port: int, path: str, items: list[tuple[bytes, str]], concurrency: int) -> Result:
    """Send every item to ``path`` over ``concurrency`` connections; measure each request."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body, signature in items:
        queue.put_nowait(request_bytes(path, body, signature))
    latencies: list[float] = []
    statuses: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(connection(port, queue, latencies, statuses) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    errors = sum(status != 204 for status in statuses)
    return Result(path, len(items) / elapsed, cuts[49] * 1000, cuts[98] * 1000, errors)


def main(argv: list[str] | None = None) -> None:
    """Start the server, warm up, measure both endpoints, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    with bench_settings() as settings:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
        asyncio.run(ensure_topics(kafka, TOPICS))
        port = free_port()
        env = os.environ | {
            "RINGLOG_HOME": str(settings.home),
            "RINGLOG_KAFKA_TOPIC_PREFIX": prefix,
            "RINGLOG_RETELL_API_KEY": KEY,
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest_server", str(port)],
            env=env,
            stderr=subprocess.DEVNULL,  # one JSON log line per append; not part of the report
        )
        try:
            if not wait_until(lambda: tcp_answers("127.0.0.1", port), timeout_s=30):
                raise SystemExit("bench server did not start")
            asyncio.run(load(port, "/bench/bare", bodies(500), args.concurrency))  # warm-up
            asyncio.run(load(port, "/bench/raw-append", bodies(500), args.concurrency))
            asyncio.run(load(port, "/v1/webhooks/retell", bodies(500), args.concurrency))
            items = bodies(args.requests)
            bare = asyncio.run(load(port, "/bench/bare", items, args.concurrency))
            raw = asyncio.run(load(port, "/bench/raw-append", items, args.concurrency))
            ours = asyncio.run(load(port, "/v1/webhooks/retell", items, args.concurrency))
        finally:
            server.terminate()
            server.wait(timeout=10)
            asyncio.run(delete_topics(kafka, [f"{prefix}{t.name}" for t in TOPICS]))
    print(f"ingest, {args.requests} signed webhooks, {args.concurrency} connections")
    print(f"{'endpoint':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-204':>9}")
    for r in (bare, raw, ours):
        print(f"{r.name:<22}{r.rps:>10,.0f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}{r.errors:>9}")
    print(f"{'ratio ringlog/bare':<22}{ours.rps / bare.rps:>10.2f}")
    print(f"{'ratio ringlog/raw':<22}{ours.rps / raw.rps:>10.2f}")


if __name__ == "__main__":
    main()
