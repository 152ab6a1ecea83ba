"""Rendering the console: Jinja2 templates and the two static assets, from the package.

Templates live in ``templates/`` beside this module and are autoescaped (HTML special
characters in any value shown are escaped); fragments the live streams send (a call's row, a
feed item, a timeline event, a call's header) are the same macros the pages use
(``templates/_parts.html``), so a row looks the same drawn by the page or by an update.
Times are shown in UTC. Assets are read once and linked with a hash of their content, so a
browser caches them and never keeps a stale one.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ringlog.console.models.board import CallRow
from ringlog.console.models.events import EventRow

#: How many of each partition's newest rows seed the feed of a freshly drawn live list.
FEED_SEED = 20
#: How many events the feed shows.
FEED_SIZE = 20
#: The assets served under ``/console/static/``: name → media type.
ASSETS = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


def _utc(value: datetime) -> datetime:
    """``value`` in UTC (a naive time, as SQLite returns them, is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def clock(value: datetime | None) -> str:
    """``HH:MM:SS`` in UTC; ``-`` for ``None``."""
    return "-" if value is None else _utc(value).strftime("%H:%M:%S")


def when(value: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC; ``-`` for ``None``."""
    return "-" if value is None else _utc(value).strftime("%Y-%m-%d %H:%M:%S")


def stamp(value: datetime | None) -> str:
    """``HH:MM:SS.mmm`` in UTC (a timeline's precision); ``-`` for ``None``."""
    return "-" if value is None else _utc(value).strftime("%H:%M:%S.%f")[:-3]


def iso(value: datetime | None) -> str:
    """ISO 8601 in UTC, for ``<time datetime>``; empty for ``None``."""
    return "" if value is None else _utc(value).isoformat()


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("ringlog.console").joinpath("static", name).read_bytes()


def asset(name: str) -> tuple[bytes, str] | None:
    """An asset's bytes and media type; ``None`` for a name not in :data:`ASSETS`."""
    media_type = ASSETS.get(name)
    return None if media_type is None else (_asset(name), media_type)


def static_url(name: str) -> str:
    """The URL of an asset, with a hash of its content (a new version is a new URL)."""
    digest = hashlib.sha256(_asset(name)).hexdigest()[:12]
    return f"/console/static/{name}?v={digest}"


@functools.cache
def environment() -> Environment:
    """The templates' environment (autoescaped, strict about undefined names)."""
    env = Environment(
        loader=PackageLoader("ringlog.console", "templates"),
        autoescape=select_autoescape(("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(clock=clock, when=when, stamp=stamp, iso=iso)
    env.globals.update(static=static_url)
    return env


def render(name: str, **context: Any) -> str:
    """The page ``name`` rendered with ``context`` (``page`` names the menu entry shown as
    current; a page outside the menu, such as the sign-in form, has none)."""
    context.setdefault("page", "")
    return environment().get_template(name).render(**context)


def _part(macro: str, *args: Any) -> str:
    module = environment().get_template("_parts.html").module
    return str(getattr(module, macro)(*args))


def call_row(row: CallRow) -> str:
    """A call's row of the live list (HTML)."""
    return _part("call_row", row)


def call_header(row: CallRow) -> str:
    """A call's header on its timeline (HTML)."""
    return _part("call_header", row)


def feed_item(event: EventRow) -> str:
    """An event of the live list's feed (HTML)."""
    return _part("feed_item", event)


def event_item(event: EventRow) -> str:
    """An event of a call's timeline (HTML)."""
    return _part("event_item", event)


__all__ = [
    "ASSETS",
    "FEED_SEED",
    "FEED_SIZE",
    "asset",
    "call_header",
    "call_row",
    "environment",
    "event_item",
    "feed_item",
    "render",
    "static_url",
]
