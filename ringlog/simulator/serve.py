"""Serve the local Retell with uvicorn (wired to ``ringlog simulator`` by the CLI)."""

from __future__ import annotations

import uvicorn

from ringlog import logs
from ringlog.config import Settings
from ringlog.simulator.app import create_simulator


def serve(settings: Settings) -> None:
    """Run the simulator on ``settings.simulator.host:port`` until interrupted.

    uvicorn installs no logging of its own: its lines (error tracebacks included) go through
    the set-up of :func:`ringlog.logs.configure` (called by ``ringlog simulator`` first), so
    phone numbers are masked like in every other line.
    """
    uvicorn.run(
        create_simulator(settings),
        host=settings.simulator.host,
        port=settings.simulator.port,
        **logs.uvicorn_options(),
    )
