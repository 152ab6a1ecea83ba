"""The worker's runtime in the test's own process: it folds ``calls``, ``abt`` and ``tasks``
into the worker's store (the views the API reads), without placing calls or settling effects."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from ringlog.config import Settings
from ringlog.streams.producer import LogProducer
from ringlog.worker.app import WorkerRuntime, worker_store


@contextlib.asynccontextmanager
async def folding_worker(settings: Settings) -> AsyncIterator[WorkerRuntime]:
    """Run a worker runtime (a group of its own) until the block ends."""
    settings = settings.model_copy(
        update={
            "worker": settings.worker.model_copy(
                update={"app_id": f"test-worker-{uuid.uuid4().hex[:8]}"}
            )
        }
    )
    store = worker_store(settings)
    stop = asyncio.Event()
    async with LogProducer(settings.kafka) as producer:
        runtime = WorkerRuntime(settings, store, producer)
        task = asyncio.create_task(runtime.run(stop))
        try:
            yield runtime
        finally:
            stop.set()
            await task
            store.close()


__all__ = ["folding_worker"]
