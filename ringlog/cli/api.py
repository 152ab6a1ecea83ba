"""``ringlog api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import typer
import uvicorn

from ringlog import logs
from ringlog.api.app import create_app, server_options
from ringlog.config import Settings, require_phone_hash_key


def api(
    host: str | None = typer.Option(None, help="Bind address (default RINGLOG_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default RINGLOG_API_PORT)."),
) -> None:
    """Serve the ingest API; finds the embedded stack started by `ringlog dev up`."""
    settings = Settings.load()
    require_phone_hash_key(settings)
    logs.configure()
    options = server_options(settings)
    uvicorn.run(
        create_app(settings),
        **(options | {"host": host or options["host"], "port": port or options["port"]}),
    )
