"""Several loops run as one: the first failure stops the others cleanly, then is raised."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

#: One loop: runs until the event it is given is set.
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def run_together(loops: Sequence[Loop], stop: asyncio.Event | None = None) -> None:
    """Run ``loops`` until ``stop`` is set and every loop has returned.

    When one raises, the others are asked to stop (their event is set) and awaited, then the
    first failure is raised as it was (not wrapped in a group), so a command reports it in one
    line. Cancelling this cancels them all.
    """
    if not loops:
        return
    stop = stop or asyncio.Event()
    stopping = asyncio.Event()
    relay = asyncio.create_task(_relay(stop, stopping))
    tasks = [asyncio.create_task(loop(stopping)) for loop in loops]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stopping.set()
        await asyncio.wait(tasks)
        for task in tasks:  # in the order given: the first that failed
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
    finally:
        relay.cancel()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


async def _relay(stop: asyncio.Event, stopping: asyncio.Event) -> None:
    await stop.wait()
    stopping.set()
