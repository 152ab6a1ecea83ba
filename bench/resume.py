"""Resume latency: a callback's socket open → the first chunk of the welcome-back message.

One run, one private embedded stack, the API served in this process. N numbers each book up
to the date and hang up; then each calls back and the time from opening the socket to the
first chunk of "Welcome back!…" is taken:

* **warm** — the session is in the Redis cache (written when the drop was appended);
* **flushed** — Redis is emptied before each callback, so the callback reads the sessions
  view (kept by the runtime in this process, as ``ringlog projector`` keeps it) and refills
  the cache;
* **bare** — the baseline: a WebSocket endpoint on the same server that sends ``config``,
  waits for ``call_details`` and answers one fixed chunk (the protocol's own cost).

Usage: ``python -m bench.resume [sessions] [flushed_sessions]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid

import orjson
import redis.asyncio as aioredis
from fastapi import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from bench.broker import bench_settings
from bench.outbound import percentile
from ringlog import logs
from ringlog.api.app import create_app
from ringlog.config import ApiSettings, RedisSettings, RetellSettings, Settings
from ringlog.streams.admin import ensure_topics
from ringlog.streams.topics import TOPICS
from ringlog.views import run_views
from tests.support.llm_caller import Caller
from tests.support.servers import serving

#: the Redis database the benchmark owns and flushes
BENCH_DB = 8


async def bare_first_chunk(url: str) -> float:
    """Socket open → first chunk on the bare endpoint."""
    started = time.perf_counter()
    async with connect(url.replace("http://", "ws://") + "/bench/bare-llm/c") as socket:
        await socket.recv()
        await socket.send(orjson.dumps({"interaction_type": "call_details", "call": {}}).decode())
        await socket.recv()
        return time.perf_counter() - started


async def drop_at_the_date(url: str, phone: str) -> None:
    caller = Caller(url, phone)
    await caller.open()
    await caller.say("My name is Jane Doe")
    await caller.say("March 3rd, 1980")
    await caller.hang_up()


async def callback(url: str, phone: str) -> float:
    caller = Caller(url, phone)
    words = await caller.open()
    assert words.startswith("Welcome back"), words
    await caller.hang_up()
    return caller.first_chunk_s


def row(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{name:<42}{percentile(ms, 0.5):>10.1f}{percentile(ms, 0.99):>10.1f}{len(ms):>8}"


async def run(settings: Settings, n: int, n_flushed: int) -> None:
    await ensure_topics(settings.kafka, TOPICS)
    app = create_app(settings)

    @app.websocket("/bench/bare-llm/{call_id}")
    async def bare(websocket: WebSocket, call_id: str) -> None:
        await websocket.accept()
        await websocket.send_text('{"response_type":"config","config":{"call_details":true}}')
        await websocket.receive_text()
        await websocket.send_text(
            '{"response_type":"response","response_id":0,"content":"Hello.","content_complete":true}'
        )
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()  # until the client closes

    redis = aioredis.Redis.from_url(settings.redis.url)
    phones = [f"+1415{7_000_000 + i:07d}" for i in range(n)]
    stop = asyncio.Event()
    views = asyncio.create_task(run_views(settings, stop, views=["sessions"]))
    with serving(app) as url:
        for phone in phones:
            await drop_at_the_date(url, phone)
        bare_s = [await bare_first_chunk(url) for _ in range(n)]
        warm_s = [await callback(url, phone) for phone in phones]  # each callback drops again
        flushed_s = []
        for phone in phones[:n_flushed]:
            await redis.flushdb()
            flushed_s.append(await callback(url, phone))
    stop.set()
    await views
    await redis.aclose()
    print(f"\ncallback socket open → first chunk of the begin message ({n} sessions)")
    print(f"{'path':<42}{'p50 ms':>10}{'p99 ms':>10}{'n':>8}")
    print(row("bare endpoint (config, details, 1 chunk)", bare_s))
    print(row("ringlog resume, Redis warm", warm_s))
    print(row("ringlog resume, Redis flushed", flushed_s))
    ratio = percentile(bare_s, 0.5) / percentile(warm_s, 0.5)
    print(f"ratio bare/ringlog p50 (warm): {ratio:.2f}")


def main(argv: list[str]) -> None:
    """Run the resume benchmark on a private embedded stack (or the configured broker)."""
    n = int(argv[0]) if argv else 200
    n_flushed = int(argv[1]) if len(argv) > 1 else 50
    logs.configure(level=logging.WARNING)
    with bench_settings() as settings:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        redis_url = settings.redis.url.rsplit("/", 1)[0] + f"/{BENCH_DB}"
        settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(update={"topic_prefix": prefix}),
                "redis": RedisSettings(url=redis_url),
                "retell": RetellSettings(api_key="bench-retell-key"),
                "api": ApiSettings(keys=("bench-api-key",)),
            }
        )
        asyncio.run(run(settings, n, n_flushed))


if __name__ == "__main__":
    main(sys.argv[1:])
