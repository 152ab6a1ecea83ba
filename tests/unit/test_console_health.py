"""The health page's pure parts: lag rows, parked records shown, addresses without secrets."""

from __future__ import annotations

import datetime as dt

from ringlog.cli.lag import PartitionLag, Reader
from ringlog.console.health import lag_rows, parked_letters, quarantined_inputs, shown_address
from ringlog.streams.consumer import LogRecord
from ringlog.streams.quarantine import quarantine_headers
from ringlog.streams.redrive import DeadLetter, Where

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def test_lag_is_one_row_per_reader_and_topic_partitions_in_order() -> None:
    reader = Reader("timeline", "checkpoint", "crm db")
    lags = [
        PartitionLag("t.calls", 1, 5, 9),
        PartitionLag("t.calls", 0, 3, 3),
        PartitionLag("t.abt", 0, 0, 2),
    ]
    rows = lag_rows([(reader, lags)], "t.")
    assert [(r.reader, r.store, r.topic, r.lag) for r in rows] == [
        ("timeline", "crm db", "abt", 2),
        ("timeline", "crm db", "calls", 4),
    ]
    assert rows[1].partitions == ((0, 3, 3, 0), (1, 5, 9, 4))


def letter(offset: int, key: bytes, error: str) -> DeadLetter:
    return DeadLetter(
        at=Where("t.deadletter", 0, offset),
        key=key,
        value=b"{}",
        headers=(),
        processor="projection:crm",
        error=error,
        origin=Where("t.sessions", 3, 40 + offset),
        failed_at=T0 + dt.timedelta(minutes=offset),
        event_type="session.completed",
    )


def test_dead_letters_are_shown_newest_first_keys_masked_reasons_scrubbed() -> None:
    letters = [
        letter(0, b"+14155550123", "IntegrityError DETAIL: Failing row contains (Jane, 1980)"),
        letter(1, b"call_1", "boom"),
    ]
    shown = parked_letters(letters, "t.", limit=5)
    assert [p.position for p in shown] == ["#1", "#0"]
    assert shown[1].key == "+14*******23" and "Jane" not in shown[1].reason
    assert shown[1].who == "crm" and shown[1].state == "parked (from sessions/3:40)"


def test_quarantined_inputs_show_why_and_how_big_never_the_bytes() -> None:
    headers = tuple(quarantine_headers("retell-webhook", "not JSON from +14155550123", T0))
    record = LogRecord(
        "t.quarantine", 0, 4, 0, b"retell-webhook", b"secret body", headers, None, None
    )
    (shown,) = quarantined_inputs([record], "t.")
    assert (shown.position, shown.who, shown.kind, shown.at) == (
        "quarantine/0:4",
        "retell-webhook",
        "11 bytes",
        T0,
    )
    assert "+14155550123" not in shown.reason and "secret" not in repr(shown)


def test_addresses_are_shown_without_credentials() -> None:
    assert shown_address("postgresql+psycopg://u:pw@db.internal:5432/crm") == (
        "postgresql+psycopg://db.internal:5432"
    )
    assert shown_address("redis://:hunter2@cache:6379/0") == "redis://cache:6379"
    assert shown_address("sqlite:////var/lib/ringlog/crm.db") == "sqlite:///crm.db"
    assert shown_address("127.0.0.1:9092") == "127.0.0.1:9092"
