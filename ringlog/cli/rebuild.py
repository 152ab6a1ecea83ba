"""``ringlog rebuild``: throw a projection away and rebuild it from the log."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import typer

from ringlog.cli.output import console
from ringlog.config import Settings
from ringlog.sessions.cache import SessionCache

app = typer.Typer(help="Rebuild projections from the log.", no_args_is_help=True)


@app.command("sessions")
def sessions() -> None:
    """Rebuild the Redis session cache (open sessions by number) from the ``sessions`` topic."""
    settings = Settings.load()

    async def rebuild() -> int:
        redis = aioredis.Redis.from_url(settings.redis.url, socket_timeout=5)
        try:
            cache = SessionCache(
                redis,
                prefix=settings.redis.key_prefix,
                kafka=settings.kafka,
                topic=settings.topic("sessions"),
            )
            return await cache.rebuild()
        finally:
            await redis.aclose()

    count = asyncio.run(rebuild())
    console.print(f"session cache rebuilt: {count} open session(s)")
