"""Signed Retell webhooks at fixed concurrency: ringlog's endpoint vs a bare one, same server.

The server runs in its own process (``bench.ingest_server``); this process is the load
generator (asyncio, keep-alive, C connections). Every endpoint gets the same signed bodies.
Run: ``python -m bench.ingest [--requests N] [--concurrency C] [--rounds R]``.

Each round sends N requests to each endpoint, in an order that rotates from round to round
(throughput here drifts by ±25% within minutes, so endpoints are compared inside a round).
The table shows medians over rounds: req/s, p50 and p99, and the CPU each request cost the
server and the broker (from the processes' CPU times), then the ratios, per round too.
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
from dataclasses import dataclass, replace

import orjson
import psutil

from bench.broker import bench_settings
from bench.timing import medians
from ringlog import devstack
from ringlog.api.signature import sign
from ringlog.config import Settings
from ringlog.devstack.ports import free_port, tcp_answers, wait_until
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.topics import TOPICS

KEY = "bench-retell-key"
ENDPOINTS = ("/bench/bare", "/bench/raw-append", "/v1/webhooks/retell")


@dataclass
class Result:
    """Throughput, latency and CPU cost of one endpoint in one round."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_us: float = 0.0
    broker_us: float = 0.0


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


class CpuMeter:
    """CPU seconds (user + system) used by a process and its children, read before and after."""

    def __init__(self, pid: int | None) -> None:
        self.process = psutil.Process(pid) if pid else None

    def seconds(self) -> float:
        if self.process is None:
            return 0.0
        total = 0.0
        for proc in (self.process, *self.process.children(recursive=True)):
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total


def broker_pid(settings: Settings) -> int | None:
    """The embedded broker's pid, when the bench started it (else its CPU is not reported)."""
    parts = devstack.status(settings, home=settings.home)
    return next((p.pid for p in parts if p.name == "kafka" and p.managed), None)


def measured(
    port: int,
    path: str,
    items: list[tuple[bytes, str]],
    concurrency: int,
    server: CpuMeter,
    broker: CpuMeter,
) -> Result:
    """One endpoint's run, with the CPU it cost the server and the broker per request."""
    before = server.seconds(), broker.seconds()
    result = asyncio.run(load(port, path, items, concurrency))
    result.server_us = (server.seconds() - before[0]) / len(items) * 1e6
    result.broker_us = (broker.seconds() - before[1]) / len(items) * 1e6
    return result


def print_report(rounds: dict[str, list[Result]], requests: int, concurrency: int) -> None:
    """The medians table, then each ratio as a median with every round's value."""
    print(
        f"ingest, {requests} signed webhooks x {len(rounds[ENDPOINTS[0]])} rounds, "
        f"{concurrency} connections (medians)"
    )
    print(
        f"{'endpoint':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server µs/req':>15}{'broker µs/req':>15}{'non-204':>9}"
    )
    for path in ENDPOINTS:
        r = replace(medians(rounds[path]), errors=sum(x.errors for x in rounds[path]))
        print(
            f"{path:<22}{r.rps:>9,.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
            f"{r.server_us:>15.0f}{r.broker_us:>15.0f}{r.errors:>9}"
        )
    bare, raw, ours = (rounds[p] for p in ENDPOINTS)
    for name, top, bottom in (
        ("ringlog/bare", ours, bare),
        ("raw-append/bare", raw, bare),
        ("ringlog/raw", ours, raw),
    ):
        ratios = [t.rps / b.rps for t, b in zip(top, bottom, strict=True)]
        each = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"{'ratio ' + name:<22}{statistics.median(ratios):>9.2f}   rounds: {each}")


def main(argv: list[str] | None = None) -> None:
    """Start the server, warm up, measure every endpoint each round, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds: dict[str, list[Result]] = {path: [] for path in ENDPOINTS}
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
            for path in ENDPOINTS:  # warm-up: connections, the raw producer, code paths
                asyncio.run(load(port, path, bodies(500), args.concurrency))
            meters = CpuMeter(server.pid), CpuMeter(broker_pid(settings))
            for index in range(args.rounds):
                items = bodies(args.requests)  # signed now: each round inside the window
                shift = index % len(ENDPOINTS)
                for path in ENDPOINTS[shift:] + ENDPOINTS[:shift]:
                    rounds[path].append(measured(port, path, items, args.concurrency, *meters))
        finally:
            server.terminate()
            server.wait(timeout=10)
            asyncio.run(delete_topics(kafka, [f"{prefix}{t.name}" for t in TOPICS]))
    print_report(rounds, args.requests, args.concurrency)


if __name__ == "__main__":
    main()
