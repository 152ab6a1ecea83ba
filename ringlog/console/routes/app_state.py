"""What the console keeps per app (:class:`Console`), made on first use (:func:`console_of`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ringlog.api.deps import services_of
from ringlog.api.views import views_of
from ringlog.config import Settings
from ringlog.console.health import Health, HealthCache, gather
from ringlog.console.queries.reader import ConsoleReader
from ringlog.console.queries.topics import ConsoleTopics


@dataclass(frozen=True)
class Console:
    """What the console keeps per app: settings, its reader of the views, the health cache."""

    settings: Settings
    reader: ConsoleReader
    health: HealthCache


def console_of(request: Request) -> Console:
    """The app's console, made on first use from what the app opened at start-up (the
    views' database engine and the settings); it holds nothing that needs closing."""
    found: Console | None = getattr(request.app.state, "console", None)
    if found is None:
        settings = services_of(request).settings
        reader = ConsoleReader(views_of(request).store.engine, ConsoleTopics.of(settings))

        async def measure() -> Health:
            return await gather(settings, reader)

        found = Console(settings, reader, HealthCache(measure))
        request.app.state.console = found
    return found


__all__ = ["Console", "console_of"]
