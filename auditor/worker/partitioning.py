"""Where a key belongs: the contract's partitioner, murmur2 as the Java client and kafka-python
compute it. A deal and a churn of one account meet only if both landed on the partition their
key maps to; a producer with another partitioner (librdkafka's default, crc32) breaks the join
silently, so the worker checks every event."""

from __future__ import annotations

from struct import unpack_from

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as the Java client's Utils.murmur2 (seed 0x9747b28c), the same value as
    kafka-python's `kafka.partitioner.default.murmur2`, computed with fewer steps: the worker
    hashes every event's key, and kafka-python's loop was a tenth of an event's work."""
    length = len(data)
    h = 0x9747B28C ^ length
    blocks = length >> 2
    for k in unpack_from(f"<{blocks}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra:
        tail = blocks << 2
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def expected_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
