"""ringlog's partitioner puts every key where Kafka's default partitioner would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from ringlog.streams.partitioner import key_hash, partition_for

_DEFAULT = DefaultPartitioner()


@given(key=st.binary(min_size=0, max_size=64), count=st.integers(min_value=1, max_value=64))
def test_a_keyed_record_lands_on_the_default_partitioners_choice(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions, partitions) == _DEFAULT(key, partitions, partitions)


def test_a_repeated_key_is_hashed_once() -> None:
    key = b"call_0f3c9e-repeated"
    before = key_hash.cache_info().hits
    for _ in range(3):
        partition_for(key, [0, 1, 2], [0, 1, 2])
    assert key_hash.cache_info().hits == before + 2


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    assert {partition_for(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert partition_for(None, [0, 1, 2], []) in {0, 1, 2}
