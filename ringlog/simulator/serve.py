"""Serve the local Retell with uvicorn (wired to ``ringlog simulator`` by the CLI)."""

from __future__ import annotations

import uvicorn

from ringlog.config import Settings
from ringlog.simulator.app import create_simulator


def serve(settings: Settings) -> None:
    """Run the simulator on ``settings.simulator.host:port`` until interrupted."""
    uvicorn.run(
        create_simulator(settings),
        host=settings.simulator.host,
        port=settings.simulator.port,
        log_level="warning",
        access_log=False,
    )
