"""``ringlog simulator``: the local Retell (create-call, get-call, signed webhooks, faults)."""

from __future__ import annotations

import typer

from ringlog import logs
from ringlog.config import Settings, SimulatorSettings


def simulator(
    port: int | None = typer.Option(None, help="Port (default RINGLOG_SIMULATOR_PORT)."),
    webhook_url: str | None = typer.Option(
        None, help="Where to post call events (default RINGLOG_SIMULATOR_WEBHOOK_URL)."
    ),
) -> None:
    """Serve a local Retell that places scripted calls and posts signed webhooks to ringlog."""
    from ringlog.simulator import serve

    settings = Settings.load()
    changes: dict[str, object] = {}
    if port is not None:
        changes["port"] = port
    if webhook_url is not None:
        changes["webhook_url"] = webhook_url
    if changes:
        section = SimulatorSettings.model_validate(settings.simulator.model_dump() | changes)
        settings = settings.model_copy(update={"simulator": section})
    logs.configure()
    serve.serve(settings)
