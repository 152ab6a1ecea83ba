"""``ringlog worker``: the call dispatcher and lifecycle processor (a faust worker)."""

from __future__ import annotations

from ringlog import logs
from ringlog.config import Settings


def worker() -> None:
    """Dispatch call requests to Retell and turn call events into ABT events and call records."""
    from ringlog.worker.app import run  # faust is heavy: import it only for this command

    settings = Settings.load()
    logs.configure()
    run(settings)
