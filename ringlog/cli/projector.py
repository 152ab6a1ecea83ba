"""``ringlog projector``: keep the projections (today: the CRM) in step with the log."""

from __future__ import annotations

import asyncio
import signal

from ringlog import logs
from ringlog.config import Settings


def projector() -> None:
    """Project sessions and dialog turns into the CRM until SIGINT/SIGTERM."""
    from ringlog.projections.crm import run_crm_projector

    settings = Settings.load()
    logs.configure()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_crm_projector(settings, stop)

    asyncio.run(main())
