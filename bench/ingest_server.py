"""The server side of ``bench.ingest``: ringlog's app plus a bare endpoint, one process.

``/bench/bare`` only reads the body and answers 204, so the ratio to
``/v1/webhooks/retell`` is what signature checking, parsing and the acks=all append cost.
``/bench/raw-append`` reads the body and appends it with a bare aiokafka producer (acks=all),
separating the Kafka client's own cost from ringlog's.

FastAPI tries routes in order and walking past a route costs time, so the two bench endpoints
are moved to the front of the app's routes: they never pay for walking ringlog's routes,
while ringlog's webhook route (its app's first router) walks past these two.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Request, Response

from ringlog import logs
from ringlog.api.app import create_app
from ringlog.config import Settings


def main() -> None:
    """Serve on the port given as the first argument."""
    logs.configure()  # as `ringlog api` does: JSON lines on stderr
    settings = Settings.load()
    app = create_app(settings)
    raw_topic = settings.topic("calls")
    raw: list[AIOKafkaProducer] = []  # created on first use: aiokafka needs the running loop
    bench = APIRouter(prefix="/bench")

    @bench.post("/bare", status_code=204)
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    starting = asyncio.Lock()

    @bench.post("/raw-append", status_code=204)
    async def raw_append(request: Request) -> Response:
        if not raw:
            async with starting:
                if not raw:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=settings.kafka.bootstrap, acks="all"
                    )
                    await producer.start()
                    raw.append(producer)
        await raw[0].send_and_wait(raw_topic, await request.body(), key=b"bench")
        return Response(status_code=204)

    app.include_router(bench)
    app.router.routes.insert(0, app.router.routes.pop())  # before the first request is routed
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
