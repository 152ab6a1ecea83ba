"""SQS bridges against the moto server, beside raw boto3 on the same queue in the same run.

One private embedded stack (Tansu, moto; the bridge out's checkpoint in a SQLite file, as on
the embedded stack). Each round (``--rounds``, default 3; the tables show medians):

* **in** — N call requests (``--n``, default 2,000) are put on a fresh queue (not timed).
  *raw*: P threads, each ``receive_message`` (10, no wait) then ``delete_message_batch`` of
  what it got, until N are deleted: the least any consumer of the queue pays moto.
  *bridge*: :class:`~ringlog.bridges.inbound.InboundBridge` with P pollers (receive, decide,
  append acks=all, delete) until N are deleted. P = 1 and P = 4 (``--pollers``).
  The two alternate going first.
* **out** — N ABT events on ``abt`` (6 partitions). *raw*: ``send_message_batch`` of the
  same bodies and attributes, 10 a request, one request at a time. *bridge*: the runtime
  (:func:`~ringlog.bridges.outbound.outbound_runner`) in a fresh group and checkpoint, timed
  from its group join to its last checkpoint write (the join, ~1-3 s on Tansu, is shown apart).

"Where the time goes" times single calls in the raw loop: one receive and one delete of 10
on moto, against one append of 10 records (acks=all) on Tansu — the bridge in pays all three
per 10 messages, so the moto calls bound its rate.

Run: ``python -m bench.sqs [--n 2000] [--rounds 3] [--pollers 1,4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from bench.broker import bench_settings
from bench.timing import Timed
from ringlog import logs
from ringlog.bridges.checkpoints import BridgeCheckpoints
from ringlog.bridges.entries import entries_for
from ringlog.bridges.inbound import BridgeMetrics, InboundBridge
from ringlog.bridges.kinds import InboundKind
from ringlog.bridges.outbound import QueueTarget, outbound_runner
from ringlog.bridges.sqs import SqsQueue, make_client
from ringlog.config import CrmSettings, Settings
from ringlog.projections.base import Event
from ringlog.schemas import AbtEvent, Envelope, derived_event_id, encode, headers
from ringlog.streams.admin import delete_topics, ensure_topics
from ringlog.streams.producer import LogProducer
from ringlog.streams.topics import TOPICS


def request_body(i: int) -> str:
    """One upstream call request as a legacy producer queues it."""
    return orjson.dumps(
        {"to_number": f"+1415555{i % 10_000:04d}", "from_number": "+14155559876"}
    ).decode()


def fill(client: Any, url: str, n: int) -> None:
    """Put N call requests on the queue, 10 a request, 8 requests at once (not timed)."""

    def send(start: int) -> None:
        entries = [
            {"Id": str(i), "MessageBody": request_body(start + i)}
            for i in range(min(10, n - start))
        ]
        answer = client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not answer.get("Failed"), answer

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(0, n, 10)))


@dataclass
class Calls:
    """Durations (s) of single calls seen in the raw loop."""

    receive: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)


def raw_drain(client: Any, url: str, n: int, threads: int, calls: Calls) -> float:
    """Seconds for ``threads`` loops of receive (10) + delete batch to delete N messages."""
    deleted = 0
    lock = threading.Lock()

    def loop() -> None:
        nonlocal deleted
        while True:
            with lock:
                if deleted >= n:
                    return
            started = time.perf_counter()
            got = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
            ).get("Messages", [])
            received = time.perf_counter()
            if not got:
                continue
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ],
            )
            done = time.perf_counter()
            with lock:
                deleted += len(got)
                if len(got) == 10:
                    calls.receive.append(received - started)
                    calls.delete.append(done - received)

    started = time.perf_counter()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


async def bridge_drain(settings: Settings, url: str, n: int, pollers: int) -> float:
    """Seconds for the bridge in (``pollers`` pollers) to append and delete N messages."""
    sqs = settings.sqs.model_copy(update={"in_pollers": pollers, "receive_wait_s": 1})
    settings = settings.model_copy(update={"sqs": sqs})
    queue = await SqsQueue.open(settings.sqs, url)
    async with LogProducer(settings.kafka) as producer:
        metrics = BridgeMetrics()
        bridge = InboundBridge(settings, queue, InboundKind.CALL_REQUEST, producer, metrics=metrics)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(bridge.run(stop))
        while metrics.seen(queue.name, "deleted") < n:
            if task.done():
                task.result()
                raise RuntimeError("the bridge stopped")
            await asyncio.sleep(0.001)
        seconds = time.perf_counter() - started
        stop.set()
        await task
    queue.close()
    return seconds


async def append_times(settings: Settings, rounds: int = 50) -> list[float]:
    """Durations of appending 10 call requests at once (acks=all), as the bridge does."""
    from ringlog.api.ingest import call_request_event, parse_call_request

    found = []
    async with LogProducer(settings.kafka) as producer:
        for r in range(rounds):
            envelopes = []
            for i in range(10):
                request = parse_call_request(request_body(i).encode())
                envelopes.append(
                    call_request_event(
                        request,  # type: ignore[arg-type]
                        default_agent_id="bench",
                        source="bench",
                        scope="bench",
                        idempotency_key=f"{r}-{i}",
                    )
                )
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    producer.append_raw(
                        producer.topic_for(e), encode(e), key=e.key.encode(), headers=headers(e)
                    )
                    for e in envelopes
                )
            )
            found.append(time.perf_counter() - started)
    return found


def abt_events(n: int) -> list[Envelope]:
    """N ABT events over N/5 calls."""
    names = ("voice_call_initiated", "call_started", "call_completed")
    out = []
    for i in range(n):
        ref = f"call_{i // 5}"
        event = AbtEvent(
            abt_id=derived_event_id("bench", ref, str(i)),
            name=names[i % 3],  # type: ignore[arg-type]
            call_ref=ref,
        )
        out.append(Envelope.new(event, source="bench", event_id=event.abt_id))
    return out


def drained_by_bridge(settings: Settings, url: str, n: int, pollers: int) -> float:
    """:func:`bridge_drain` run to its end in a loop of its own."""
    return asyncio.run(bridge_drain(settings, url, n, pollers))


def raw_send(client: Any, url: str, events: list[Envelope]) -> float:
    """Seconds to send the events' messages (as the bridge builds them) 10 a request."""
    entries = entries_for([Event("abt", 0, i, e) for i, e in enumerate(events)], fifo=False)
    started = time.perf_counter()
    for start in range(0, len(entries), 10):
        batch = entries[start : start + 10]
        answer = client.send_message_batch(
            QueueUrl=url, Entries=[e.request(str(i)) for i, e in enumerate(batch)]
        )
        assert not answer.get("Failed"), answer
    return time.perf_counter() - started


async def bridge_send(settings: Settings, url: str, tmp: str) -> tuple[float, float]:
    """(group join s, join → last checkpoint s) of the bridge out over the whole ``abt``."""
    crm = CrmSettings(url=f"sqlite:///{tmp}/bridge-{uuid.uuid4().hex[:6]}.db")
    settings = settings.model_copy(update={"crm": crm})
    queue = await SqsQueue.open(settings.sqs, url)
    checkpoints = BridgeCheckpoints.open(settings.crm.url)
    try:
        timed = Timed(QueueTarget(queue, checkpoints, max_batch_bytes=settings.sqs.max_batch_bytes))
        runner = outbound_runner(
            settings,
            queue,
            checkpoints,
            topics=[settings.topic("abt")],
            group_id=f"bench-out-{uuid.uuid4().hex[:6]}",
            target=timed,
        )
        return await timed.run(runner, settings.kafka)
    finally:
        checkpoints.close()
        queue.close()


def alternate(
    first: Callable[[], float], second: Callable[[], float], r: int
) -> tuple[float, float]:
    """Run both, the first going first in even rounds; return (first, second)."""
    if r % 2 == 0:
        a = first()
        return a, second()
    b = second()
    return first(), b


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f}"


def main(argv: list[str] | None = None) -> None:
    """Run both measurements on a private stack and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pollers", default="1,4")
    args = parser.parse_args(argv)
    pollers = [int(p) for p in args.pollers.split(",")]
    logs.configure(level=logging.WARNING)
    n = args.n
    with bench_settings() as base, tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})}
        )
        asyncio.run(ensure_topics(settings.kafka, TOPICS))
        client = make_client(settings.sqs)
        started = time.perf_counter()
        try:
            calls = Calls()
            rates: dict[int, list[tuple[float, float]]] = {p: [] for p in pollers}
            for r in range(args.rounds):
                for p in pollers:
                    url_raw = client.create_queue(QueueName=f"bench-raw-{uuid.uuid4().hex[:8]}")[
                        "QueueUrl"
                    ]
                    url_bridge = client.create_queue(QueueName=f"bench-in-{uuid.uuid4().hex[:8]}")[
                        "QueueUrl"
                    ]
                    fill(client, url_raw, n)
                    fill(client, url_bridge, n)
                    raw_s, bridge_s = alternate(
                        partial(raw_drain, client, url_raw, n, p, calls),
                        partial(drained_by_bridge, settings, url_bridge, n, p),
                        r,
                    )
                    rates[p].append((n / raw_s, n / bridge_s))
                    client.delete_queue(QueueUrl=url_raw)
                    client.delete_queue(QueueUrl=url_bridge)
            appends = asyncio.run(append_times(settings))

            events = abt_events(n)

            async def put() -> None:
                async with LogProducer(settings.kafka) as producer:
                    await producer.append_many(events)

            asyncio.run(put())
            out: list[tuple[float, float, float]] = []
            for r in range(args.rounds):
                url_raw = client.create_queue(QueueName=f"bench-rawout-{uuid.uuid4().hex[:8]}")[
                    "QueueUrl"
                ]
                url_bridge = client.create_queue(QueueName=f"bench-out-{uuid.uuid4().hex[:8]}")[
                    "QueueUrl"
                ]
                spans: list[tuple[float, float]] = []

                def bridged(u: str = url_bridge, spans: list[tuple[float, float]] = spans) -> float:
                    spans.append(asyncio.run(bridge_send(settings, u, tmp)))
                    return spans[-1][1]

                raw_s, bridge_s = alternate(partial(raw_send, client, url_raw, events), bridged, r)
                out.append((n / raw_s, n / bridge_s, spans[-1][0]))
                client.delete_queue(QueueUrl=url_raw)
                client.delete_queue(QueueUrl=url_bridge)
        finally:
            client.close()
            asyncio.run(delete_topics(settings.kafka, [settings.topic(t.name) for t in TOPICS]))
        wall = time.perf_counter() - started

    print(
        f"\nSQS bridges against moto, N={n} messages, {args.rounds} rounds (medians); {wall:.0f} s"
    )
    print("\nbridge in (receive → append acks=all → delete), msg/s")
    print(f"{'pollers':<10}{'raw boto3':>12}{'bridge':>12}{'ratio':>8}   ratios per round")
    for p in pollers:
        raw = statistics.median(a for a, _ in rates[p])
        ours = statistics.median(b for _, b in rates[p])
        each = " ".join(f"{b / a:.2f}" for a, b in rates[p])
        print(f"{p:<10}{raw:>12,.0f}{ours:>12,.0f}{ours / raw:>8.2f}   {each}")
    print("\nwhere the time goes, per 10 messages (median of single calls)")
    print(f"  moto receive_message (10)        {ms(calls.receive):>8} ms")
    print(f"  moto delete_message_batch (10)   {ms(calls.delete):>8} ms")
    print(f"  Tansu append of 10 (acks=all)    {ms(appends):>8} ms")
    print("\nbridge out (runtime → send_message_batch → checkpoint), msg/s")
    print(f"{'':<10}{'raw boto3':>12}{'bridge':>12}{'ratio':>8}   group join s")
    raw = statistics.median(a for a, _, _ in out)
    ours = statistics.median(b for _, b, _ in out)
    join = statistics.median(j for _, _, j in out)
    print(f"{'1 sender':<10}{raw:>12,.0f}{ours:>12,.0f}{ours / raw:>8.2f}   {join:.2f}")
    print("ratios per round: " + " ".join(f"{b / a:.2f}" for a, b, _ in out))


if __name__ == "__main__":
    main()
