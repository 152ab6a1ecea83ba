"""Kafka's default key partitioning, with the key's hash remembered.

aiokafka hashes every keyed record with a pure-Python murmur2 (~3.5 µs for a call ref). The
same call ref is appended many times (a request, its dispatch, each Retell webhook), so the
hash is kept in a bounded LRU cache. The partition chosen is exactly the default
partitioner's, so records of a key land where any other Kafka client would put them.
"""

from __future__ import annotations

import random
from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65_536)
def key_hash(key: bytes) -> int:
    """The positive murmur2 hash Kafka's default partitioner uses for ``key``."""
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Pick the partition for ``key`` as Kafka's default partitioner does.

    Keyed records go to ``all_partitions[hash % count]``; keyless ones to a random available
    partition (any partition when none is available).
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[key_hash(key) % len(all_partitions)]
