"""The worker's murmur2 is the contract's partitioner: the same value as kafka-python's (the
Java client's) for keys of every length, and the partitions the Java client gives."""

import random

import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from auditor.worker.partitioning import expected_partition, murmur2


def test_the_same_hash_as_kafka_python_for_any_key():
    rnd = random.Random(7)
    keys = [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 70)))
            for _ in range(20_000)]
    keys += [b"", b"a", b"ab", b"abc", b"abcd", "acct-\u00e9\u4e2d".encode()]
    for key in keys:
        assert murmur2(key) == kafka_python_murmur2(key), key


@pytest.mark.parametrize(("key", "partitions", "partition"), [
    # Values of the Java client's Utils.murmur2 (its test vectors), as partitions.
    (b"21", 4, (-973932308 & 0x7FFFFFFF) % 4),
    (b"foobar", 7, (-790332482 & 0x7FFFFFFF) % 7),
    (b"a-little-bit-long-string", 12, (-985981536 & 0x7FFFFFFF) % 12),
    (b"a-little-bit-longer-string", 5, (-1486304829 & 0x7FFFFFFF) % 5),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 9, (-58897971 & 0x7FFFFFFF) % 9),
])
def test_the_java_clients_partitions(key, partitions, partition):
    assert expected_partition(key, partitions) == partition
