"""Structured logs (structlog): one JSON object per line, phone numbers masked.

Every process calls :func:`configure` once in its composition root. Context such as the call
ref and event type is bound with ``structlog.contextvars.bind_contextvars`` and appears on every
line logged while handling that request or record.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

#: E.164 (``+14155550123``) or a formatted number with a ``+`` or a bracketed area code
#: (``+1 415-555-0123``, ``(415) 555-0123``); dates, times and offsets are left alone.
_PHONE = re.compile(r"\+\d[\d\s().-]{5,}\d|\(\d{3}\)\s?\d{3}[\s.-]?\d{4}")


def mask_phone(text: str) -> str:
    """Replace every phone-number-like run with its first two and last two digits kept."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) < 8:
            return match.group(0)
        plus = "+" if match.group(0).startswith("+") else ""
        return f"{plus}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"

    return _PHONE.sub(_mask, text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_phone(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_phone_numbers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask phone numbers in every string value of the event."""
    return {k: _mask_value(v) for k, v in event_dict.items()}


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure(*, json_output: bool = True, level: int = logging.INFO) -> None:
    """Configure structlog for this process: JSON lines on stderr, or a console renderer."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json_output
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            mask_phone_numbers,  # before the timestamp, which must never be masked
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """Return a bound structlog logger tagged with ``logger=name``."""
    return structlog.get_logger(logger=name)
