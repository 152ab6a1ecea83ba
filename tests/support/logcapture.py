"""Capturing the process's logs as production sets them up (``ringlog.logs.configure``)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from ringlog import logs


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """``logs.configure`` into a buffer; the process's logging put back afterwards."""
    out = io.StringIO()
    logs.configure(stream=out, cache_loggers=False)
    root = logging.getLogger()
    try:
        yield out
    finally:
        structlog.reset_defaults()
        for handler in [h for h in root.handlers if h.get_name() == "ringlog"]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
