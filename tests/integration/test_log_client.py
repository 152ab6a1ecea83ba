"""The log client against the real embedded broker: append, read back, commit, decode."""

from __future__ import annotations

from collections import defaultdict

import pytest
from aiokafka import TopicPartition

from ringlog.config import KafkaSettings, Settings
from ringlog.errors import BrokerUnavailable
from ringlog.schemas import REGISTRY, Envelope
from ringlog.schemas.calls import CallRequested
from ringlog.streams.consumer import Batch, LogConsumer, LogRecord
from ringlog.streams.producer import LogProducer
from tests.support.examples import example_events

pytestmark = pytest.mark.integration


async def read_until(consumer: LogConsumer, count: int, *, rounds: int = 60) -> Batch:
    """Collect batches until ``count`` records arrived (bounded by ``rounds`` polls), as one
    batch (each partition's records in offset order)."""
    parts: dict[tuple[str, int], list[LogRecord]] = {}
    for _ in range(rounds):
        batch = await consumer.getmany(timeout_ms=500)
        for position, records in batch.parts.items():
            parts.setdefault(position, []).extend(records)
        if sum(map(len, parts.values())) >= count:
            break
    return Batch(parts)


async def test_every_registered_event_round_trips_through_the_broker(
    topics: Settings, group_id: str
) -> None:
    """Each registered event type, appended and consumed, decodes to an equal envelope."""
    envelopes = [Envelope.new(e, source="test") for e in example_events()]
    assert {(e.type, e.schema_version) for e in envelopes} >= {
        (m.event_type, m.schema_version) for m in REGISTRY.models()
    }
    async with LogProducer(topics.kafka) as log:
        positions = await log.append_many(envelopes)
    assert len(positions) == len(envelopes)

    physical = sorted({p.topic for p in positions})
    async with LogConsumer(topics.kafka, physical, group_id=group_id) as consumer:
        batch = await read_until(consumer, len(envelopes))
    assert not [r for r in batch.records if r.error]
    read_back = {r.envelope.event_id: r.envelope for r in batch.records if r.envelope}
    assert read_back == {e.event_id: e for e in envelopes}
    for record in batch.records:
        header = dict(record.headers)
        assert record.envelope is not None
        assert header["ringlog-type"].decode() == record.envelope.type
        assert int(header["ringlog-version"]) == record.envelope.schema_version


async def test_producer_returns_offsets_and_consumer_reads_in_key_order(
    topics: Settings, group_id: str
) -> None:
    """Offsets returned by appends are the ones read back, and each key's events stay in order."""
    keys = [f"call-{i}" for i in range(7)]
    envelopes = [
        Envelope.new(
            CallRequested(
                call_ref=keys[n % len(keys)],
                to_number="+15550000000",
                from_number="+15551111111",
                agent_id="agent",
                metadata={"n": str(n)},
            ),
            source="test",
        )
        for n in range(70)
    ]
    async with LogProducer(topics.kafka) as log:
        first = await log.append(envelopes[0])
        rest = await log.append_many(envelopes[1:])
    written = [first, *rest]
    assert len({(p.partition, p.offset) for p in written}) == len(envelopes)

    topic = topics.topic("calls")
    async with LogConsumer(topics.kafka, [topic], group_id=group_id) as consumer:
        batch = await read_until(consumer, len(envelopes))
        await consumer.commit(batch.next_offsets())
        committed = {tp: await consumer.committed(tp) for tp in batch.next_offsets()}

    assert len(batch.records) == len(envelopes)
    by_position = {(r.partition, r.offset): r.envelope for r in batch.records}
    for position, envelope in zip(written, envelopes, strict=True):
        assert by_position[(position.partition, position.offset)] == envelope

    sequence_per_key: dict[str, list[int]] = defaultdict(list)
    for record in sorted(batch.records, key=lambda r: (r.partition, r.offset)):
        assert record.envelope is not None
        payload = record.envelope.payload
        assert isinstance(payload, CallRequested)
        sequence_per_key[payload.call_ref].append(int(payload.metadata["n"]))
    for key, sequence in sequence_per_key.items():
        assert sequence == sorted(sequence), f"{key} read out of order: {sequence}"

    for tp, offset in committed.items():
        assert offset == max(r.offset for r in batch.records if r.partition == tp.partition) + 1


async def test_undecodable_record_is_returned_with_its_bytes_not_raised(
    topics: Settings, group_id: str
) -> None:
    """A garbage record comes back as a DecodeError with its bytes; the next one decodes."""
    topic = topics.topic("calls")
    good = Envelope.new(
        CallRequested(
            call_ref="c1", to_number="+15550000000", from_number="+15551111111", agent_id="a"
        ),
        source="test",
    )
    async with LogProducer(topics.kafka) as log:
        await log.append_raw(topic, b"{not json", key=b"c1")
        await log.append(good, topic=topic)
    async with LogConsumer(topics.kafka, [topic], group_id=group_id) as consumer:
        batch = await read_until(consumer, 2)
    ordered = sorted(batch.records, key=lambda r: r.offset)
    assert ordered[0].error is not None and ordered[0].error.raw == b"{not json"
    assert ordered[0].envelope is None
    assert ordered[1].envelope == good


async def test_unreachable_broker_error_names_the_address(settings: Settings) -> None:
    """Starting a producer against a closed port raises BrokerUnavailable naming the address."""
    dead = KafkaSettings(bootstrap="127.0.0.1:1", request_timeout_ms=1000)
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1"):
        await LogProducer(dead).start()


async def test_commit_resumes_a_new_member_after_the_committed_offset(
    topics: Settings, group_id: str
) -> None:
    """A second member of the group starts where the first committed, not from the beginning."""
    topic = topics.topic("tasks")
    envelopes = [Envelope.new(e, source="test") for e in example_events() if e.topic == "tasks"]
    async with LogProducer(topics.kafka) as log:
        await log.append_many(envelopes, topic=topic)
        async with LogConsumer(topics.kafka, [topic], group_id=group_id) as consumer:
            first = await read_until(consumer, len(envelopes))
            await consumer.commit(first.next_offsets())
        extra = await log.append(envelopes[0], topic=topic)
    async with LogConsumer(topics.kafka, [topic], group_id=group_id) as consumer:
        second = await read_until(consumer, 1)
    assert [(r.partition, r.offset) for r in second.records] == [(extra.partition, extra.offset)]
    assert first.next_offsets()[TopicPartition(topic, extra.partition)] == extra.offset
