"""``ringlog worker``: the call dispatcher and lifecycle processor on the one runtime."""

from __future__ import annotations

import asyncio

from ringlog import heap, logs
from ringlog.config import Settings


def worker() -> None:
    """Dispatch call requests to Retell and turn call events into ABT events and call records,
    for the partitions of ``calls`` this process is given; stops on SIGINT/SIGTERM, within
    a few seconds even when the broker or a store is gone."""
    from ringlog.devstack.supervise import run_until_stopped
    from ringlog.worker.app import run_worker

    settings = Settings.load()
    logs.configure()

    async def main(stop: asyncio.Event) -> None:
        heap.settle(folds=True)
        await run_worker(settings, stop)

    run_until_stopped(main, name="worker")
