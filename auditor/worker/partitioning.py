"""Where a key belongs: the contract's partitioner, murmur2 as the Java client and kafka-python
compute it. A deal and a churn of one account meet only if both landed on the partition their
key maps to; a producer with another partitioner (librdkafka's default, crc32) breaks the join
silently, so the worker checks every event."""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def expected_partition(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
