"""Bulk folds of several topics release each partition's records by stream time
(:class:`ringlog.projections.aligned.Alignment`): what is ahead of another topic's partition
of the same number waits, nothing is lost or released twice, order within a partition holds,
and nothing waits once the other topics have nothing more to come."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ringlog.projections.aligned import Alignment
from ringlog.streams.consumer import LogRecord
from ringlog.streams.offsets import Position

TOPICS = ("calls", "abt")


def _records(topic: str, partition: int, stamps: Sequence[int], first: int = 0) -> list[LogRecord]:
    return [
        LogRecord(topic, partition, first + i, ts, None, b"", (), None, None)
        for i, ts in enumerate(stamps)
    ]


def _never(_position: Position) -> bool:
    return False


def _offsets(parts: dict[Position, list[LogRecord]]) -> dict[Position, list[int]]:
    return {p: [r.offset for r in rs] for p, rs in parts.items()}


def test_records_ahead_of_the_other_topic_wait_for_it() -> None:
    """ABT records of calls whose events are not fetched yet wait; they go with them."""
    aligned = Alignment()
    first = aligned.release(
        {
            ("calls", 0): _records("calls", 0, [1, 2, 3]),
            ("abt", 0): _records("abt", 0, range(1, 9)),
        },
        TOPICS,
        _never,
    )
    assert _offsets(first) == {("calls", 0): [0, 1, 2], ("abt", 0): [0, 1, 2]}
    assert [r.timestamp_ms for r in aligned.waiting[("abt", 0)]] == [4, 5, 6, 7, 8]
    second = aligned.release(
        {("calls", 0): _records("calls", 0, [4, 5, 6], first=3)}, TOPICS, _never
    )
    assert _offsets(second) == {("calls", 0): [3, 4, 5], ("abt", 0): [3, 4, 5]}


def test_a_partition_never_fetched_holds_its_number_back_until_it_is_seen_or_done() -> None:
    aligned = Alignment()
    assert aligned.release({("calls", 0): _records("calls", 0, [1, 2])}, TOPICS, _never) == {}
    done = aligned.release({}, TOPICS, lambda p: p == ("abt", 0))
    assert _offsets(done) == {("calls", 0): [0, 1]}
    assert aligned.waiting == {}


def test_other_partition_numbers_do_not_hold_each_other_back() -> None:
    aligned = Alignment()
    released = aligned.release(
        {("calls", 1): _records("calls", 1, [5]), ("abt", 1): _records("abt", 1, [9])},
        TOPICS,
        lambda p: p[1] == 0,
    )
    assert _offsets(released) == {("calls", 1): [0]}
    assert list(aligned.waiting) == [("abt", 1)]


def test_order_within_a_partition_is_kept_behind_a_record_from_the_future() -> None:
    aligned = Alignment()
    released = aligned.release(
        {("calls", 0): _records("calls", 0, [1, 99, 2]), ("abt", 0): _records("abt", 0, [3])},
        TOPICS,
        _never,
    )
    assert _offsets(released) == {("calls", 0): [0], ("abt", 0): [0]}
    assert [r.offset for r in aligned.waiting[("calls", 0)]] == [1, 2]


_stamps = st.lists(st.integers(min_value=0, max_value=50), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(TOPICS), st.integers(0, 1), _stamps), max_size=12),
)
def test_every_record_is_released_once_in_order_and_none_waits_at_the_end(
    fetches: list[tuple[str, int, list[int]]],
) -> None:
    """Whatever the fetches, no record is released before one of its own partition, none
    twice, each with a timestamp at most what every other live partition of its number
    reached; once every partition is done, a release per partition leaves nothing
    waiting."""
    aligned = Alignment()
    next_offset: dict[Position, int] = {}
    sent: dict[Position, list[int]] = {}
    got: dict[Position, list[int]] = {}
    for topic, number, stamps in fetches:
        position = (topic, number)
        records = _records(topic, number, stamps, first=next_offset.get(position, 0))
        next_offset[position] = next_offset.get(position, 0) + len(records)
        sent.setdefault(position, []).extend(r.offset for r in records)
        before = dict(aligned.stream_time)
        released = aligned.release({position: records} if records else {}, TOPICS, _never)
        for p, rs in released.items():
            got.setdefault(p, []).extend(r.offset for r in rs)
            for other in TOPICS:
                reached = aligned.stream_time.get((other, p[1]), before.get((other, p[1])))
                assert reached is not None and all(r.timestamp_ms <= reached for r in rs)
    for _ in range(2 * len(TOPICS)):  # the least stream time releases all its records each time
        for p, rs in aligned.release({}, TOPICS, lambda _p: True).items():
            got.setdefault(p, []).extend(r.offset for r in rs)
    assert aligned.waiting == {}
    assert got == {p: offsets for p, offsets in sent.items() if offsets}
