"""The worker refuses input topics whose partition count is not the configured one: its join
and its wrong_partition check both rest on it."""

import pytest

from auditor.worker.settings import from_environment
from auditor.worker.topics import PartitionCountError, _check_partitions


class FakeAdmin:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def describe_topics(self, names):
        return [{"topic": n, "partitions": [{}] * self.counts[n]} for n in names]


def test_an_input_topic_with_another_partition_count_is_refused():
    settings = from_environment({"partitions": 4}, env={})
    counts = {"deals.closed": 4, "accounts.churned": 6, settings.facts_topic: 4,
              "audit.alerts": 1}
    with pytest.raises(PartitionCountError, match=r"accounts\.churned has 6.*--partitions"):
        _check_partitions(FakeAdmin(counts), settings, list(counts))


def test_outputs_may_have_any_count():
    settings = from_environment({"partitions": 4}, env={})
    counts = {"deals.closed": 4, "accounts.churned": 4, "audit.alerts": 1,
              "audit.deadletter": 12}
    _check_partitions(FakeAdmin(counts), settings, list(counts))
