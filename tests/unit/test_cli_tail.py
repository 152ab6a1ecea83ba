"""`ringlog tail`'s lines: readable, numbers masked, nothing personal unless asked."""

from __future__ import annotations

import pytest

from ringlog.cli.tail import SUMMARY_CHARS, line, physical_topics
from ringlog.config import Settings
from ringlog.schemas import DialogTurn, Envelope, SessionProgressed, encode, headers
from ringlog.streams.consumer import LogRecord
from tests.support.examples import PHONE, REF, example_events
from tests.support.logread import consumed_record

PREFIX = "ringlog."


def record(envelope: Envelope, topic: str = "calls", offset: int = 7) -> LogRecord:
    """``envelope`` as the consumer hands it over."""
    return consumed_record(
        topic=f"{PREFIX}{topic}",
        partition=2,
        offset=offset,
        timestamp_ms=0,
        key=envelope.key.encode(),
        value=encode(envelope),
        headers=tuple(headers(envelope)),
    )


def test_one_line_per_event_with_time_position_type_key_and_summary() -> None:
    (requested,) = [e for e in example_events() if type(e).__name__ == "CallRequested"]
    envelope = Envelope.new(requested, source="test")
    text = line(record(envelope), prefix=PREFIX)
    assert "\n" not in text
    stamp, where, kind, key, *summary = text.split()
    assert stamp.startswith(envelope.recorded_at.strftime("%Y-%m-%dT%H:%M:%S")) and stamp[-1] == "Z"
    assert (where, kind, key) == ("calls/2:7", "call.requested", REF)
    assert "agent_id=agent_flu" in summary


def test_every_phone_number_is_masked_the_key_included() -> None:
    """No example event, in either mode, shows a whole phone number anywhere on its line."""
    for event in example_events():
        envelope = Envelope.new(event, source="test")
        for personal in (False, True):
            text = line(record(envelope, event.topic), prefix=PREFIX, personal=personal)
            assert PHONE not in text and PHONE[1:] not in text, text
    session = Envelope.new(
        SessionProgressed(session_id="s", phone=PHONE, call_ref=REF, stage="date"), source="t"
    )
    assert "+14*******23" in line(record(session, "sessions"), prefix=PREFIX)


def test_what_was_said_and_names_only_with_text() -> None:
    turn = Envelope.new(
        DialogTurn(call_ref=REF, call_id="c", turn_index=1, role="user", text="I'm Ada Lovelace"),
        source="test",
    )
    assert "Lovelace" not in line(record(turn, "dialog"), prefix=PREFIX)
    assert "Lovelace" in line(record(turn, "dialog"), prefix=PREFIX, personal=True)
    (progressed,) = [e for e in example_events() if isinstance(e, SessionProgressed)]
    shown = line(record(Envelope.new(progressed, source="t"), "sessions"), prefix=PREFIX)
    assert "Lovelace" not in shown and "1985" not in shown


def test_a_number_at_the_cut_is_masked_before_the_line_is_cut() -> None:
    """A long summary is cut after masking, so a number cut in half is never shown."""
    before = 'call_id= turn_index=1 role=user text="call '
    filler = "x" * (SUMMARY_CHARS - 1 - len(before) - 6)  # the cut falls 6 chars into it
    turn = Envelope.new(
        DialogTurn(
            call_ref=REF, call_id=filler, turn_index=1, role="user", text=f"call {PHONE} now"
        ),
        source="test",
    )
    text = line(record(turn, "dialog"), prefix=PREFIX, personal=True)
    assert text.endswith("+14***…")
    assert "415555" not in text


def test_a_record_that_is_not_an_event_is_shown_by_its_headers() -> None:
    raw = consumed_record(
        topic=f"{PREFIX}quarantine",
        partition=0,
        offset=3,
        timestamp_ms=1_700_000_000_000,
        key=b"retell-webhook",
        value=b'{"to": "+14155550123"',
        headers=(("ringlog-quarantine-reason", b"not JSON"), ("ringlog-source", b"retell")),
    )
    text = line(raw, prefix=PREFIX)
    assert "quarantine/0:3" in text and "(not an event)" in text
    assert 'quarantine-reason="not JSON"' in text and "source=retell" in text
    assert PHONE not in text


def test_topics_are_named_as_declared() -> None:
    settings = Settings.load()
    assert physical_topics(settings, ["calls", f"{settings.kafka.topic_prefix}abt"]) == [
        settings.topic("calls"),
        settings.topic("abt"),
    ]
    assert len(physical_topics(settings, [])) == 7
    with pytest.raises(ValueError, match="choose from calls"):
        physical_topics(settings, ["call"])
