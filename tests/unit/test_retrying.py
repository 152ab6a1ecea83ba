"""Which target failures the projection runner retries without end (transient) and which it
gives up on after bounded attempts (data), and the retry loop that follows that verdict."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import psycopg.errors
import pytest
import snowflake.connector.errors as snowflake
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy import exc as sa
from tenacity import RetryCallState

from ringlog.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DecodeError,
    PermanentError,
    RetryableError,
)
from ringlog.projections.base import RetryPolicy
from ringlog.projections.retrying import classify, describe, is_transient, retrying, until_open
from ringlog.projections.warehouse.store import WarehouseError

STATEMENT = "INSERT INTO crm_interactions (call_ref) VALUES (%(call_ref)s)"


def pg(sqlstate: str, message: str = "refused") -> psycopg.Error:
    """The psycopg error PostgreSQL raises for ``sqlstate``."""
    return psycopg.errors.lookup(sqlstate)(message)


def wrapped(cls: type[sa.DBAPIError], orig: BaseException) -> sa.DBAPIError:
    """``orig`` as SQLAlchemy raises it from a statement."""
    return cls(STATEMENT, {"call_ref": "secret-ref"}, orig)


TRANSIENT: list[tuple[str, BaseException]] = [
    ("retryable", RetryableError("upstream 503")),
    ("broker unavailable", BrokerUnavailable("localhost:9092", "no answer")),
    ("warehouse", WarehouseError("warehouse: OperationalError: 250001")),
    ("configuration", ConfigurationError("no such dialect")),
    ("timeout", TimeoutError()),
    ("connection refused", ConnectionRefusedError(111, "refused")),
    ("os error", OSError("network unreachable")),
    ("kafka", KafkaConnectionError("closed")),
    ("kafka timeout", KafkaTimeoutError()),
    ("not implemented", NotImplementedError("no upsert for the mysql dialect")),
    ("sa operational", wrapped(sa.OperationalError, psycopg.OperationalError("server closed"))),
    ("sa interface", wrapped(sa.InterfaceError, psycopg.InterfaceError("connection closed"))),
    ("sa disconnection", sa.DisconnectionError("gone")),
    ("sa pool timeout", sa.TimeoutError("QueuePool limit reached")),
    ("pg admin shutdown", pg("57P01")),
    ("pg query canceled", pg("57014")),
    ("pg serialization failure", pg("40001")),
    ("pg deadlock", pg("40P01")),
    ("pg lock not available", pg("55P03")),
    ("pg too many connections", pg("53300")),
    ("pg undefined table", wrapped(sa.ProgrammingError, pg("42P01"))),
    ("pg insufficient privilege", pg("42501")),
    ("sqlite locked", wrapped(sa.OperationalError, sqlite3.OperationalError("database is locked"))),
    ("snowflake operational", snowflake.OperationalError(msg="could not connect", errno=250001)),
    ("snowflake unavailable", snowflake.ServiceUnavailableError(msg="503")),
    ("snowflake conflict", snowflake.ProgrammingError(msg="deadlock", sqlstate="57014")),
    ("snowflake no table", snowflake.ProgrammingError(msg="no table", sqlstate="42S02")),
]

DATA: list[tuple[str, BaseException]] = [
    ("permanent", PermanentError("cannot help")),
    ("decode", DecodeError("not JSON", b"{")),
    ("value", ValueError("bad date")),
    ("type", TypeError("Type is not JSON serializable: Decimal")),
    ("unicode", UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")),
    ("unknown", RuntimeError("something nobody expected")),
    ("too long", wrapped(sa.DataError, pg("22001", "value too long for type varchar(128)"))),
    ("NUL via json", pg("22P05", "unsupported Unicode escape sequence")),
    (
        "NUL bound",
        wrapped(sa.DataError, psycopg.DataError("text fields cannot contain NUL (0x00) bytes")),
    ),
    ("not null", wrapped(sa.IntegrityError, pg("23502"))),
    ("unique", pg("23505")),
    ("index row too big", wrapped(sa.OperationalError, pg("54000", "index row size exceeds"))),
    ("trigger raised", wrapped(sa.InternalError, pg("P0001", "row refused by trigger"))),
    ("bind processing", sa.StatementError("bad value", STATEMENT, {}, TypeError("not a date"))),
    ("client programming", wrapped(sa.ProgrammingError, psycopg.ProgrammingError("bad param"))),
    ("sqlite constraint", wrapped(sa.IntegrityError, sqlite3.IntegrityError("NOT NULL failed"))),
    ("sqlite too big", sqlite3.DataError("string or blob too big")),
    ("snowflake data", snowflake.ProgrammingError(msg="String too long", sqlstate="22000")),
    ("snowflake integrity", snowflake.IntegrityError(msg="duplicate", sqlstate="23505")),
]


@pytest.mark.parametrize("exc", [e for _, e in TRANSIENT], ids=[i for i, _ in TRANSIENT])
def test_transient_failures_are_retried_without_end(exc: BaseException) -> None:
    assert is_transient(exc)
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", [e for _, e in DATA], ids=[i for i, _ in DATA])
def test_data_failures_are_given_up_on(exc: BaseException) -> None:
    assert not is_transient(exc)
    assert classify(exc) == "data"


def test_an_invalidated_connection_is_transient_whatever_the_driver_said() -> None:
    exc = sa.DBAPIError(STATEMENT, {}, pg("22001"), connection_invalidated=True)
    assert is_transient(exc)


def test_a_statement_error_is_described_by_the_driver_error_without_its_values() -> None:
    exc = wrapped(sa.DataError, pg("22001", "value too long for type character varying(128)"))
    text = describe(exc)
    assert text == (
        "DataError: (psycopg.errors.StringDataRightTruncation) "
        "value too long for type character varying(128)"
    )
    assert "secret-ref" not in text and "INSERT" not in text
    assert describe(ValueError("bad date")) == "ValueError: bad date"


def test_data_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="data_attempts"):
        RetryPolicy(data_attempts=0)


class Failing:
    """Raises the given errors in turn, then returns ``done``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


FAST = RetryPolicy(backoff_s=0.0, backoff_max_s=0.0, data_attempts=3)


def no_log(state: RetryCallState) -> None:
    """``before_sleep`` of these tests: nothing to record."""


async def test_transient_failures_are_retried_past_the_data_attempts() -> None:
    call = Failing(*[ConnectionError("down")] * 20)
    result: str = await retrying(FAST, asyncio.Event(), no_log, data_attempts=3)(call)
    assert (result, call.calls) == ("done", 21)


async def test_data_failures_give_up_after_data_attempts_counting_only_data() -> None:
    outage = [TimeoutError()] * 5
    refused = [ValueError(f"refused {n}") for n in range(5)]
    call = Failing(*outage, refused[0], TimeoutError(), *refused[1:])
    with pytest.raises(ValueError, match="refused 2"):
        await retrying(FAST, asyncio.Event(), no_log, data_attempts=3)(call)
    assert call.calls == 5 + 1 + 1 + 2  # the outage, then three data failures in all


async def test_without_data_attempts_data_failures_are_retried_too() -> None:
    call = Failing(*[ValueError("refused")] * 10)
    assert await retrying(FAST, asyncio.Event(), no_log)(call) == "done"
    assert call.calls == 11


async def test_attempts_bound_transient_failures_when_set() -> None:
    policy = RetryPolicy(attempts=4, backoff_s=0.0, backoff_max_s=0.0)
    call = Failing(*[ConnectionError("down")] * 10)
    with pytest.raises(ConnectionError):
        await retrying(policy, asyncio.Event(), no_log, data_attempts=3)(call)
    assert call.calls == 4


async def test_a_set_stop_ends_the_retries_with_the_last_error() -> None:
    stop = asyncio.Event()
    stop.set()
    call = Failing(*[ConnectionError("down")] * 10)
    with pytest.raises(ConnectionError):
        await retrying(FAST, stop, no_log)(call)
    assert call.calls == 1


FAST = RetryPolicy(backoff_s=0.001, backoff_max_s=0.001)


async def test_a_store_is_opened_once_its_database_answers() -> None:
    calls: list[int] = []

    def open_store() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.OperationalError("connection refused")
        return "store"

    opened = await until_open(open_store, what="test", stop=asyncio.Event(), policy=FAST)
    assert opened == "store" and len(calls) == 3


async def test_opening_gives_up_quietly_when_stopped_and_at_once_on_a_data_failure() -> None:
    def unreachable() -> str:
        raise psycopg.OperationalError("connection refused")

    stop = asyncio.Event()
    waiting = asyncio.create_task(
        until_open(unreachable, what="test", stop=stop, policy=RetryPolicy(backoff_s=30))
    )
    await asyncio.sleep(0.05)
    assert not waiting.done(), "an unreachable database is waited for"
    stop.set()
    assert await asyncio.wait_for(waiting, 1.0) is None, "the backoff ends when stopped"

    def refused() -> str:
        raise psycopg.errors.NotNullViolation("null value")

    with pytest.raises(psycopg.errors.NotNullViolation):
        await until_open(refused, what="test", stop=asyncio.Event(), policy=FAST)
