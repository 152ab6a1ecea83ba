"""Logs: one JSON object per line, personal data kept out, for every logger in the process.

Every process calls :func:`configure` once in its composition root. It sets up structlog (what
ringlog logs) and the standard library's root handler (what uvicorn, aiokafka, websockets and
every other library log, tracebacks included) with the same processors, so both kinds of line
are rendered alike and pass through :func:`scrub_event`: phone numbers are masked, and the input
values pydantic prints in validation errors and the row values PostgreSQL quotes in its errors
are removed. uvicorn must be started with
:func:`uvicorn_options`, so it installs no handler of its own.

Names and dates of birth cannot be recognised in free text: ringlog never logs them, and the
places a library prints what was sent or stored — a validation error's input values, a database
error's row — are removed here. Context such as the call ref and event type is bound with
``structlog.contextvars.bind_contextvars`` and appears on every line logged while handling that
request or record.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from pydantic import ValidationError

#: E.164 (``+14155550123``) or a formatted number with a ``+`` or a bracketed area code
#: (``+1 415-555-0123``, ``(415) 555-0123``); dates, times and offsets are left alone.
_PHONE = re.compile(r"\+\d[\d\s().-]{5,}\d|\(\d{3}\)\s?\d{3}[\s.-]?\d{4}")
#: How pydantic prints an invalid value in a validation error (``… [type=…, input_value='…',
#: input_type=str]``), up to the end of that line.
_INPUT_VALUE = re.compile(r"input_value=[^\n]*")
_INPUT_HIDDEN = "input_value=<hidden>]"
#: The values PostgreSQL quotes in an error's DETAIL (``Failing row contains (…)``,
#: ``Key (name)=(…) already exists``): a row the CRM refused is a patient's row.
_ROW_VALUES = re.compile(r"(Failing row contains |Key \([^)\n]*\)=)\([^\n]*\)")
#: The name of the root handler :func:`configure` installs (a second call replaces it).
_HANDLER = "ringlog"


def mask_phone(text: str) -> str:
    """Replace every phone-number-like run with its first two and last two digits kept."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) < 8:
            return match.group(0)
        plus = "+" if match.group(0).startswith("+") else ""
        return f"{plus}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"

    return _PHONE.sub(_mask, text)


def scrub(text: str) -> str:
    """``text`` fit for a log line: the input values of validation errors and the row values
    of database errors removed, phone numbers masked."""
    if "input_value=" in text:
        text = _INPUT_VALUE.sub(_INPUT_HIDDEN, text)
    if "DETAIL" in text:
        text = _ROW_VALUES.sub(r"\1(<hidden>)", text)
    return mask_phone(text)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_input=False, include_url=False)
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors)
        return f"{type(exc).__name__}: {where}"
    return f"{type(exc).__name__}: {exc}"


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        # a validation error as a dict (``loc``, ``msg``, ``type``, ``input``): no input
        error = "loc" in value and "msg" in value
        return {k: _scrub_value(v) for k, v in value.items() if not (error and k == "input")}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if isinstance(value, BaseException):
        return scrub(_describe(value))
    return value


def scrub_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: :func:`scrub` every string of the event, nested ones included;
    validation errors given as dicts lose their ``input`` and exceptions are described without
    input values."""
    return {k: _scrub_value(v) for k, v in event_dict.items()}


#: The name this processor had when it masked phone numbers only.
mask_phone_numbers = scrub_event


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure(
    *,
    json_output: bool = True,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """Configure this process's logs: structlog, and the standard library's root handler.

    Lines go to ``stream`` (default ``sys.stderr``) as JSON, or through a console renderer.
    ringlog's own loggers log from ``level`` up; other libraries from ``WARNING`` up (or
    ``level`` if higher), except where they set their own level (uvicorn does, from
    ``log_level``). Calling it again replaces the previous set-up, except for structlog loggers
    already used when ``cache_loggers`` was on (the default, for speed; tests turn it off).
    """
    out = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json_output
        else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,  # tracebacks become text, then are scrubbed
        scrub_event,  # before the timestamp, which must never be masked
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=cache_loggers,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER)
    handler.setLevel(level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    # a logging config uvicorn applied earlier in this process gives its loggers handlers of
    # their own that do not propagate: take them back, so their lines are scrubbed too
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True


def uvicorn_options(level: str = "warning") -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that leave logging to
    :func:`configure`: no logging config of uvicorn's own (its loggers propagate to the root
    handler, so error tracebacks are scrubbed like every line), its loggers at ``level``, and
    no access log."""
    return {"log_config": None, "log_level": level, "access_log": False}


def get_logger(name: str) -> Any:
    """Return a bound structlog logger tagged with ``logger=name``."""
    return structlog.get_logger(logger=name)
