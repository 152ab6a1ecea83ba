"""The runtimes that keep the API's views, in the test's own process: the worker's (it folds
``calls``, ``abt`` and ``tasks`` into the worker's store, without placing calls or settling
effects) and the read views' (timeline and sessions).

Each is the only member of a group of its own, so it reads *alone* (every partition, no
join: ~1.5 s saved per runtime on the embedded broker); group membership is tested by the
worker-group tests, which run ``ringlog worker`` processes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ringlog.config import Settings
from ringlog.projections.runner import ProjectionRunner
from ringlog.streams.head import LogHead
from ringlog.streams.offsets import Position
from ringlog.streams.producer import LogProducer
from ringlog.views import ViewStore, view_runners
from ringlog.worker.app import WorkerRuntime, worker_store
from tests.support.logread import eventually


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
        runtime.alone = True
        task = asyncio.create_task(runtime.run(stop))
        try:
            yield runtime
        finally:
            stop.set()
            await task
            store.close()


@contextlib.asynccontextmanager
async def keeping_views(settings: Settings) -> AsyncIterator[ViewStore]:
    """Keep the timeline and sessions views (groups of their own) until the block ends."""
    store = ViewStore.open(settings.crm.url)
    stop = asyncio.Event()
    suffix = f"-test-{uuid.uuid4().hex[:8]}"
    runners = view_runners(settings, store, group_suffix=suffix)
    for runner in runners:
        runner.alone = True
    tasks = [asyncio.create_task(runner.run(stop)) for runner in runners]
    head = LogHead(settings.kafka)
    try:
        for runner in runners:  # every partition assigned and positioned: reads are answered
            wanted = {(t, p) for t in runner.projection.topics for p in await head.partitions(t)}

            async def owned(runner: ProjectionRunner[Any] = runner) -> frozenset[Position]:
                return runner.owned

            await eventually(owned, lambda found, wanted=wanted: wanted <= found, timeout_s=60)
        await head.stop()
        yield store
    finally:
        await head.stop()
        stop.set()
        await asyncio.gather(*tasks)
        store.close()


@contextlib.contextmanager
def folding_worker_thread(settings: Settings) -> Iterator[None]:
    """:func:`folding_worker` and :func:`keeping_views` on a thread of their own (for a test
    whose server runs in a thread); the block starts once both run, and the thread is joined
    when it ends."""
    started, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        async with folding_worker(settings), keeping_views(settings):
            started.set()
            await asyncio.to_thread(done.wait)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as error:  # surfaced to the test below
            failure.append(error)
            started.set()

    thread = threading.Thread(target=run, name="folding-worker", daemon=True)
    thread.start()
    started.wait(timeout=60)
    try:
        if failure:
            raise failure[0]
        yield
    finally:
        done.set()
        thread.join(timeout=30)
    if failure:
        raise failure[0]


__all__ = ["folding_worker", "folding_worker_thread", "keeping_views"]
