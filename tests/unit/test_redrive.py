"""Dead letters on paper: the ledger their markers make, the copy's headers, who applies a
copy, and the lines ``ringlog deadletter`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from ringlog.cli.deadletter import line, outcome_line
from ringlog.schemas import SessionStarted, encode, headers
from ringlog.streams.consumer import LogRecord
from ringlog.streams.deadletter import (
    HEADER_REDRIVE_FOR,
    HEADER_REDRIVE_OF,
    deadletter_headers,
    meant_for,
    processor_of,
)
from ringlog.streams.redrive import Outcome, Where, chosen, copies_of, ledger, marker
from tests.support.crm import env
from tests.support.logread import consumed_record

DL = "p.deadletter"
PHONE = "+14155550123"


def redriven_for(record_headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The processor a record with these headers is re-driven for, as the consumer reads it."""
    return consumed_record(
        topic=DL, partition=0, offset=0, timestamp_ms=0, key=None, value=b"{}",
        headers=tuple(record_headers),
    ).redriven_for  # fmt: skip


def parked(offset: int, phone: str = PHONE, projection: str = "crm") -> LogRecord:
    """A dead letter at ``offset`` on the dead-letter topic, as the runtime parks one."""
    envelope = env(SessionStarted(session_id="s", phone=phone, call_ref="c", stage="x"))
    value = encode(envelope)
    dead = deadletter_headers(
        processor=processor_of(projection),
        error=f"DataError: value too long\nfor {phone}",
        topic="p.sessions",
        partition=3,
        offset=40 + offset,
    )
    return LogRecord(
        DL, 0, offset, 0, phone.encode(), value, (*headers(envelope), *dead), envelope, None
    )


def marked(offset: int, of: LogRecord, state: str, where: Where) -> LogRecord:
    (letter,) = [e for e in ledger([of]) if e.at.offset == of.offset]
    value, marks = marker(letter, state, where)  # type: ignore[arg-type]
    return LogRecord(DL, 0, offset, 0, of.key, value, tuple(marks), None, None)


def test_markers_move_a_dead_letter_from_parked_to_redriven() -> None:
    a, b, c = parked(0), parked(1, "+14155550100"), parked(2, projection="warehouse")
    since, copy = Where("p.sessions", 3, 50), Where("p.sessions", 3, 52)
    records = [a, b, c, marked(3, a, "redriving", since), marked(4, b, "redriving", since)]
    records.append(marked(5, a, "redriven", copy))
    letters = ledger(records)
    assert [(e.at.offset, e.state) for e in letters] == [
        (0, "redriven"),
        (1, "redriving"),
        (2, "parked"),
    ]
    first, second, _ = letters
    assert first.copy == copy and second.since == since
    assert first.origin == Where("p.sessions", 3, 40) and first.processor == "projection:crm"
    assert first.event_type == "session.started" and first.key_text == PHONE
    assert [e.at.offset for e in chosen(letters, redriven=False)] == [1, 2]
    assert [e.at.offset for e in chosen(letters, key=PHONE)] == [0, 2]
    assert [e.at.offset for e in chosen(letters, projection="warehouse")] == [2]
    assert [e.at.offset for e in chosen(letters, projection="projection:crm")] == [0, 1]


def test_a_copy_carries_the_original_headers_and_names_its_processor() -> None:
    (letter,) = ledger([parked(7)])
    names = [name for name, _ in letter.copy_headers()]
    assert names == [
        "ringlog-type",
        "ringlog-version",
        "ringlog-event-id",
        HEADER_REDRIVE_FOR,
        HEADER_REDRIVE_OF,
    ]
    copy = dict(letter.copy_headers())
    assert copy[HEADER_REDRIVE_FOR] == b"projection:crm"
    assert copy[HEADER_REDRIVE_OF] == f"{DL}/0/7".encode()
    assert meant_for(redriven_for(letter.copy_headers()), "crm")
    assert not meant_for(redriven_for(letter.copy_headers()), "sessions")
    assert meant_for(redriven_for(letter.headers), "sessions")  # not a copy: everyone's
    # a copy parked again and re-driven again names the new dead letter only
    again = LogRecord(
        DL, 0, 9, 0, letter.key, letter.value, tuple(letter.copy_headers()), None, None
    )
    records = [
        msgspec.structs.replace(
            again,
            headers=(
                *again.headers,
                *deadletter_headers(
                    processor="projection:crm",
                    error="x",
                    topic="p.sessions",
                    partition=3,
                    offset=60,
                ),
            ),
        )
    ]
    (twice,) = ledger(records)
    assert dict(twice.copy_headers())[HEADER_REDRIVE_OF] == f"{DL}/0/9".encode()
    assert len(twice.copy_headers()) == len(letter.copy_headers())


def test_copies_are_found_by_the_dead_letter_they_name() -> None:
    (letter,) = ledger([parked(7)])
    source = LogRecord(
        "p.sessions", 3, 61, 0, letter.key, letter.value, tuple(letter.copy_headers()), None, None
    )
    other = msgspec.structs.replace(source, offset=62, headers=source.headers[:3])
    assert copies_of([other, source], [letter.at]) == {letter.at: Where("p.sessions", 3, 61)}
    assert copies_of([other], [letter.at]) == {}


def test_where_reads_back_what_it_writes() -> None:
    where = Where("ringlog.v2/calls", 4, 1234)
    assert Where.parse(str(where)) == where
    assert where.shown("ringlog.v2/") == "calls/4:1234"
    assert Where.parse("calls/x/1") is None and Where.parse("1/2") is None


def test_lines_are_one_each_with_numbers_masked() -> None:
    (letter,) = ledger([parked(7)])
    shown = line(letter, prefix="p.")
    assert shown.startswith(letter.failed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    assert "  #7  crm  sessions/3:47  session.started  +14*******23  DataError: value " in shown
    assert "\n" not in shown and PHONE not in shown and shown.endswith("for +14*******23")
    later = outcome_line(Outcome(letter, "redriven", Where("p.sessions", 3, 99)), prefix="p.")
    assert later == "re-drove #7 session.started (key +14*******23, for crm) as sessions/3:99"
    planned = outcome_line(Outcome(letter, "planned"), prefix="p.")
    assert planned == (
        "would re-drive #7 session.started (key +14*******23, for crm) to the partition of "
        "sessions/3:47"
    )
    assert isinstance(letter.failed_at, datetime)


# -- who applies a copy ---------------------------------------------------------------------


def projected(records: list[LogRecord], projection: str, *, redriven: bool = True) -> list[int]:
    """The offsets of ``records`` that ``projection``'s runtime applies."""
    from types import SimpleNamespace

    from ringlog.config import KafkaSettings
    from ringlog.projections.base import Event, Projection
    from ringlog.projections.isolation import Isolation

    def offsets(events: object) -> list[int]:
        return [e.offset for e in events]  # type: ignore[attr-defined]

    runner = SimpleNamespace(projection=Projection(projection, ("p.sessions",), offsets))
    isolation: Isolation[Event] = Isolation(
        runner,  # type: ignore[arg-type]
        KafkaSettings(),
        deadletter_topic=DL,
        producer=None,
        data_attempts=1,
        retrying=None,  # type: ignore[arg-type]
        applied=None,  # type: ignore[arg-type]
        redriven=redriven,
    )
    operations, poison = isolation.project(records)
    assert poison == []
    return operations  # type: ignore[return-value]


def test_a_copy_is_applied_by_its_projection_alone_and_skipped_by_rebuilds() -> None:
    (letter,) = ledger([parked(7)])
    original = msgspec.structs.replace(
        parked(0), topic="p.sessions", partition=3, offset=40, headers=letter.headers[:3]
    )
    copied = tuple(letter.copy_headers())
    copy = msgspec.structs.replace(
        original, offset=41, headers=copied, redriven_for=redriven_for(copied)
    )
    assert projected([original, copy], "crm") == [40, 41]
    assert projected([original, copy], "sessions") == [40]
    assert projected([original, copy], "crm", redriven=False) == [40]
