"""Records bridged out as SQS entries, batches, and the checkpoint after a partial send."""

from __future__ import annotations

import orjson

from ringlog.bridges.entries import (
    ATTR_EVENT_ID,
    ATTR_KEY,
    ATTR_POSITION,
    ATTR_TYPE,
    ATTR_VERSION,
    OutboundEntry,
    dedup_id,
    delivered_positions,
    entries_for,
    entry_for,
    send_batches,
    sqs_token,
    still_to_send,
)
from ringlog.projections.base import Event
from ringlog.schemas import AbtEvent, Envelope, abt_id_for, decode

TOPIC = "ringlog.abt"


def event(ref: str, offset: int, partition: int = 0, **attributes: str) -> Event:
    payload = AbtEvent(
        abt_id=abt_id_for(ref, "call_started"),
        name="call_started",
        call_ref=ref,
        attributes=attributes,
    )
    envelope = Envelope.new(payload, source="test", event_id=payload.abt_id)
    return Event(TOPIC, partition, offset, envelope)


def entry(offset: int, partition: int = 0, body: str = "{}") -> OutboundEntry:
    return OutboundEntry(TOPIC, partition, offset, body, {})


def test_a_standard_entry_carries_the_envelope_and_routing_attributes() -> None:
    e = event("call_1", 17, partition=4)
    made = entry_for(e, fifo=False)
    assert decode(made.body.encode()) == e.envelope
    assert made.attributes == {
        ATTR_TYPE: "abt.event",
        ATTR_VERSION: "1",
        ATTR_EVENT_ID: str(e.envelope.event_id),
        ATTR_KEY: "call_1",
        ATTR_POSITION: f"{TOPIC}-4-17",
    }
    assert made.group_id is None and made.dedup_id is None
    request = made.request("3")
    assert request["Id"] == "3"
    assert "MessageGroupId" not in request and "MessageDeduplicationId" not in request
    assert request["MessageAttributes"][ATTR_KEY] == {"DataType": "String", "StringValue": "call_1"}


def test_a_fifo_entry_is_grouped_by_key_and_deduplicated_by_position() -> None:
    made = entry_for(event("call_1", 17, partition=4), fifo=True)
    assert made.group_id == "call_1"
    assert made.dedup_id == f"{TOPIC}-4-17" == dedup_id(TOPIC, 4, 17)
    request = made.request("0")
    assert request["MessageGroupId"] == "call_1"
    assert request["MessageDeduplicationId"] == f"{TOPIC}-4-17"


def test_ids_sqs_would_refuse_are_hashed_the_same_way_every_time() -> None:
    """Over 128 characters, or with characters outside printable ASCII: ``h-`` + SHA-256."""
    assert sqs_token("call_1") == "call_1"
    for bad in ("x" * 129, "call ref with spaces", "appel_é"):
        token = sqs_token(bad)
        assert token.startswith("h-") and len(token) == 66
        assert token == sqs_token(bad)
    assert sqs_token("a b") != sqs_token("a  b")


def test_entries_keep_log_order() -> None:
    events = [event("call_1", o) for o in range(5)]
    assert [e.offset for e in entries_for(events, fifo=True)] == [0, 1, 2, 3, 4]


def test_batches_hold_ten_entries_and_max_bytes_in_order() -> None:
    entries = [entry(o) for o in range(23)]
    sizes = [len(b) for b in send_batches(entries, max_bytes=1_000_000)]
    assert sizes == [10, 10, 3]
    body = "x" * 400
    big = [entry(o, body=body) for o in range(5)]
    assert [len(b) for b in send_batches(big, max_bytes=1_000)] == [2, 2, 1]
    alone = [entry(0), entry(1, body="y" * 5_000), entry(2)]
    assert [[e.offset for e in b] for b in send_batches(alone, max_bytes=1_000)] == [
        [0],
        [1],
        [2],
    ]
    flat = [e.offset for b in send_batches(entries, max_bytes=50) for e in b]
    assert flat == list(range(23))


def test_the_size_counts_the_body_and_the_attributes() -> None:
    made = OutboundEntry(TOPIC, 0, 0, "héllo", {"ab": "cd"})
    assert made.size == len("héllo".encode()) + len("ab") + len("String") + len("cd")


def test_the_checkpoint_never_passes_a_record_sqs_did_not_take() -> None:
    """Partition 0 stops at its first record not accepted; partition 1, fully accepted,
    moves to the batch's end; a partition without entries (records skipped) too."""
    entries = [entry(10), entry(11), entry(12), entry(5, partition=1), entry(6, partition=1)]
    positions = {(TOPIC, 0): 13, (TOPIC, 1): 7, (TOPIC, 2): 40}
    accepted = {(TOPIC, 0, 10), (TOPIC, 0, 12), (TOPIC, 1, 5), (TOPIC, 1, 6)}
    assert delivered_positions(entries, accepted, positions) == {
        (TOPIC, 0): 11,
        (TOPIC, 1): 7,
        (TOPIC, 2): 40,
    }
    everything = {e.where for e in entries}
    assert delivered_positions(entries, everything, positions) == positions
    assert delivered_positions(entries, set(), positions)[(TOPIC, 0)] == 10


def test_a_retried_batch_sends_only_what_is_still_owed() -> None:
    entries = [entry(10), entry(11), entry(12), entry(5, partition=1)]
    owed = still_to_send(entries, {(TOPIC, 0): 11}, {(TOPIC, 0, 12)})
    assert [e.where for e in owed] == [(TOPIC, 0, 11), (TOPIC, 1, 5)]
    assert still_to_send(entries, {}, set()) == entries


def test_an_entry_body_is_json_sqs_can_carry() -> None:
    """Control characters in a value are escaped by the encoder, never sent raw."""
    made = entry_for(event("call_1", 0, note="a\x00b\x1fc"), fifo=False)
    assert "\x00" not in made.body and "\x1f" not in made.body
    assert orjson.loads(made.body)["payload"]["attributes"]["note"] == "a\x00b\x1fc"
