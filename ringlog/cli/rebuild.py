"""``ringlog rebuild``: throw a projection away and rebuild it from the log."""

from __future__ import annotations

import asyncio
import secrets

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


@app.command("crm")
def crm(
    timeout_s: float = typer.Option(600.0, help="Give up if the log is not applied by then."),
) -> None:
    """Drop the CRM tables and project the whole log into them again (sessions, dialog, tasks).

    A running ``ringlog projector`` may stay up: rows carry their Kafka offset as version, so
    its writes and the rebuild's agree.
    """
    from ringlog.projections.crm import crm_runner, default_group_id
    from ringlog.projections.crm.store import CrmStore

    settings = Settings.load()
    store = CrmStore(settings.crm.url)
    try:
        store.reset()
        group = f"{default_group_id(settings)}-rebuild-{secrets.token_hex(4)}"
        asyncio.run(crm_runner(settings, store, group_id=group).run_until_caught_up(timeout_s))
        counts = {table: len(rows) for table, rows in store.snapshot().items()}
    finally:
        store.close()
    console.print("CRM rebuilt from the log: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
