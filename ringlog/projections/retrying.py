"""How a projection runner retries its target, and which failures it gives up on.

Every failure is one of two kinds (:func:`classify`, the one place that decides):

* **transient** — not the records' fault: the network, the server, the deployment. Retried
  with exponential backoff until it succeeds or the runner is stopped, however long that
  takes (the lag metric keeps rising meanwhile); nothing is skipped.
* **data** — the records themselves are refused, and would be on every attempt. Retried a
  bounded number of times (:attr:`~ringlog.projections.base.RetryPolicy.data_attempts`), after
  which the runner sets the record(s) at fault aside on the dead-letter topic and moves on.

How a failure is classified, first rule that applies:

1. ringlog's own errors say it: :class:`~ringlog.errors.RetryableError` is transient (e.g. a
   broker unavailable; the warehouse store raises one for every connector error, so a
   warehouse failure is transient whatever its cause), :class:`~ringlog.errors.PermanentError`
   (e.g. a record that does not decode) is data, :class:`~ringlog.errors.ConfigurationError`
   is transient (the deployment is wrong, not the record: fixing it resumes the projection).
2. SQLAlchemy: a connection invalidated by the error, :class:`~sqlalchemy.exc.DisconnectionError`
   and a connection-pool timeout are transient; any other statement error is classified by
   the driver error it wraps (``orig``), as in 3 (or 4 when that is not a driver error).
3. Driver errors (PEP 249: psycopg, sqlite3, the Snowflake connector, raw or wrapped), by
   their SQLSTATE when they carry one: classes ``22`` data exception, ``23`` integrity
   constraint violation, ``27`` triggered data change, ``44`` check option, ``54`` program
   limit exceeded (e.g. an index row too large) and ``P0`` (a trigger raising) are data;
   ``08`` connection, ``25`` transaction state, ``40`` rollback (deadlock, serialization),
   ``42`` syntax or access rule (the schema or the grants: the same for every row), ``53``
   resources, ``55`` lock not available, ``57`` operator intervention (shutdown, cancel),
   ``58`` system, ``XX`` internal and ``HY`` are transient. Otherwise by their PEP 249 class:
   ``OperationalError``, ``InterfaceError`` and ``InternalError`` are transient; ``DataError``,
   ``IntegrityError`` and ``NotSupportedError`` are data; a ``ProgrammingError`` without a
   SQLSTATE was raised by the driver about the values bound (e.g. a NUL character in text),
   data. Other Snowflake connector errors (HTTP, authentication tokens) are transient.
4. ``TimeoutError``, ``OSError`` (``ConnectionError`` included), aiokafka's ``KafkaError`` and
   ``NotImplementedError`` (the target cannot run as deployed) are transient.
5. Anything else — ``ValueError``, ``TypeError`` and ``UnicodeError`` from a value the target
   cannot take, and any exception not listed here — is **data**: retried the bounded number
   of times, then set aside. An unknown failure that is in truth transient therefore costs
   at most the records it was raised for, each of which was retried on its own first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal, TypeVar

import structlog
from aiokafka.errors import KafkaError
from sqlalchemy import exc as sa_exc
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
)
from tenacity.stop import stop_base

from ringlog.errors import ConfigurationError, PermanentError, RetryableError
from ringlog.projections.base import RetryPolicy

__all__ = [
    "Failure",
    "classify",
    "describe",
    "failure_type",
    "is_transient",
    "retrying",
    "until_open",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: What a failure says about retrying: ``transient`` (retry without end) or ``data``.
Failure = Literal["transient", "data"]

#: SQLSTATE classes (first two characters) that mean the values written were refused.
_DATA_SQLSTATES = frozenset({"22", "23", "27", "44", "54", "P0"})
#: SQLSTATE classes that mean the connection, the server or the deployment failed.
_TRANSIENT_SQLSTATES = frozenset({"08", "25", "40", "42", "53", "55", "57", "58", "XX", "HY"})
#: PEP 249 exception classes, by name (every driver defines its own).
_TRANSIENT_DBAPI = frozenset({"OperationalError", "InterfaceError", "InternalError"})
_DATA_DBAPI = frozenset({"DataError", "IntegrityError", "NotSupportedError"})


def classify(exc: BaseException) -> Failure:
    """Whether ``exc`` is ``transient`` or a ``data`` failure (see the module doc)."""
    return "transient" if is_transient(exc) else "data"


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` later may succeed without the records changing; False for
    a deterministic data failure, and for any exception this module does not know."""
    if isinstance(exc, RetryableError | ConfigurationError):
        return True
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        return is_transient(exc.orig)
    driver = _driver_verdict(exc)
    if driver is not None:
        return driver
    return isinstance(exc, TimeoutError | OSError | KafkaError | NotImplementedError)


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE a driver error carries (psycopg 3 and Snowflake: ``sqlstate``; psycopg 2:
    ``pgcode``), if any."""
    for attribute in ("sqlstate", "pgcode"):
        state = getattr(exc, attribute, None)
        if isinstance(state, str) and len(state) == 5:
            return state.upper()
    return None


def _driver_verdict(exc: BaseException) -> bool | None:
    """Rule 3 of the module doc: True or False for a driver error, None for anything else."""
    state = _sqlstate(exc)
    if state is not None:
        if state[:2] in _DATA_SQLSTATES:
            return False
        if state[:2] in _TRANSIENT_SQLSTATES:
            return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _TRANSIENT_DBAPI:
        return True
    if names & _DATA_DBAPI:
        return False
    if "ProgrammingError" in names:
        # refused by the server: the statement or the schema; by the driver: the values bound
        return state is not None
    if type(exc).__module__.startswith("snowflake.connector"):
        return True  # HTTP failures, expired tokens, unreachable endpoints
    return None


def failure_type(exc: BaseException) -> str:
    """The name of the driver error behind ``exc`` (a SQLAlchemy error's ``orig``), for answers
    and logs that must not repeat the driver's message (it may name the server or values)."""
    return type(getattr(exc, "orig", None) or exc).__name__


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` for logs and dead-letter headers. A SQLAlchemy statement
    error is described by the driver error it wraps, without the statement and its bound
    values (which may be long, and hold personal data)."""
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        orig = exc.orig
        return f"{type(exc).__name__}: ({type(orig).__module__}.{type(orig).__name__}) {orig}"
    return f"{type(exc).__name__}: {exc}"


class _GiveUp(stop_base):
    """Stop retrying once ``stop`` is set, after ``attempts`` attempts in all (when set), or
    after ``data_attempts`` data failures (when set; counted over one call, so one instance
    serves one :class:`AsyncRetrying`, as :func:`retrying` builds them)."""

    def __init__(
        self, stop: asyncio.Event, attempts: int | None, data_attempts: int | None
    ) -> None:
        self._stop = stop
        self._attempts = attempts
        self._data_attempts = data_attempts
        self._data_failures = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._stop.is_set():
            return True
        if self._attempts and retry_state.attempt_number >= self._attempts:
            return True
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if self._data_attempts is None or error is None or is_transient(error):
            return False
        self._data_failures += 1
        return self._data_failures >= self._data_attempts


def retrying(
    policy: RetryPolicy,
    stop: asyncio.Event,
    before_sleep: Callable[[RetryCallState], None],
    *,
    data_attempts: int | None = None,
) -> AsyncRetrying:
    """One call's retries, with exponential backoff: transient failures until success,
    ``policy.attempts`` attempts in all (never when unset) or ``stop``; data failures at most
    ``data_attempts`` times (when ``None``, like transient ones). Giving up re-raises the
    last error, so the caller can :func:`classify` it."""

    async def pause(seconds: float) -> None:
        """The backoff, ended at once by ``stop``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    return AsyncRetrying(
        stop=_GiveUp(stop, policy.attempts, data_attempts),
        wait=wait_exponential(multiplier=policy.backoff_s, max=policy.backoff_max_s),
        retry=retry_if_exception_type(Exception),
        before_sleep=before_sleep,
        sleep=pause,
        reraise=True,
    )


async def until_open(
    open_: Callable[[], T],
    *,
    what: str,
    stop: asyncio.Event,
    policy: RetryPolicy | None = None,
) -> T | None:
    """``open_()`` — a store's constructor, which connects and creates its tables — run in a
    thread and tried again with backoff while it fails transiently (the database not up yet),
    each failure logged; ``None`` when ``stop`` is set first (the backoff ends at once). A
    failure that is not transient raises."""

    def logged(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        log.warning(
            "store unavailable at start; retrying",
            store=what,
            attempt=state.attempt_number,
            error=None if error is None else describe(error),
        )

    # a data failure gives up at once (data_attempts=1): only transient ones are retried
    tries = retrying(policy or RetryPolicy(backoff_s=0.5), stop, logged, data_attempts=1)
    try:
        async for attempt in tries:
            with attempt:
                return await asyncio.to_thread(open_)
    except Exception:
        if stop.is_set():
            return None
        raise
    return None  # not reached: the retries end by returning or raising
