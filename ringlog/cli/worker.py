"""``ringlog worker``: the call dispatcher and lifecycle processor on the one runtime."""

from __future__ import annotations

import asyncio
import signal

from ringlog import heap, logs
from ringlog.config import Settings


def worker() -> None:
    """Dispatch call requests to Retell and turn call events into ABT events and call records,
    for the partitions of ``calls`` this process is given; stops cleanly on SIGINT/SIGTERM."""
    from ringlog.worker.app import run_worker

    settings = Settings.load()
    logs.configure()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        heap.settle()
        await run_worker(settings, stop)

    asyncio.run(main())
