"""The worker's delivery policy and commit gate, against topics that refuse or fail like a
broker does: an output that cannot be sent never crashes a batch, and no offset becomes
committable before the batch's outputs and state are delivered."""

import asyncio
import json
from collections import defaultdict
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree
from prometheus_client import CollectorRegistry
from test_worker_pipeline import PARTITIONS
from unit_helpers import churn_dict, deal_dict, raw

from auditor.metrics.counters import RunCounters
from auditor.worker import commit_gate
from auditor.worker.batches import Batches, OutputTopics
from auditor.worker.commit_gate import CommitGate
from auditor.worker.metrics import DeliveryCollector
from auditor.worker.partitioning import expected_partition
from auditor.worker.pipeline import Pipeline, StateTables

LIMIT = 1024 * 1024  # a broker's default message.max.bytes


class FakeTopic:
    """Takes what a broker of `limit` bytes would; fails the first `outages` sends as if the
    broker were away."""

    def __init__(self, name: str, limit: int = LIMIT, outages: int = 0) -> None:
        self.name = name
        self.limit = limit
        self.outages = outages
        self.sent: list[tuple] = []

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key, value, partition=None, key_serializer=None,
                   value_serializer=None):
        size = len(value) if isinstance(value, bytes) else len(json.dumps(str(value)))
        if size > self.limit:  # refused before it leaves, as the producer does
            raise ProducerSendError("Error while sending") from MessageSizeTooLargeError()
        future = asyncio.get_running_loop().create_future()
        if self.outages:
            self.outages -= 1
            future.set_exception(KafkaConnectionError("broker away"))
        else:
            self.sent.append((key, value, partition))
            future.set_result(None)
        return future


def message(offset: int, value: bytes | None, key: bytes, topic: str = "deals.closed"):
    partition = expected_partition(key, PARTITIONS)
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key, value=value,
                           tp=TP(topic, partition))


def _batches(rules, alerts=None, deadletters=None, facts=None):
    counters = RunCounters()
    pipeline = Pipeline(rules, counters, StateTables({}, {}, {}), 30.0, PARTITIONS)
    topics = OutputTopics(alerts or FakeTopic("alerts"), deadletters or FakeTopic("dead"),
                          facts or FakeTopic("facts"),
                          {name: FakeTopic(name) for name in ("accounts", "aggregates",
                                                              "watermarks")})
    gate = CommitGate({"deals.closed", "accounts.churned"})
    batches = Batches(pipeline, topics, gate)
    batches.delivery.first_retry = 0.01
    return batches, topics, gate, counters


def _stream(key: bytes = b"acct-1"):
    """A discounted deal, poison beside it, and the churn that makes the deal fire."""
    return [
        message(0, raw(deal_dict(account_id=key.decode(), discount_pct=0.3, days=0)), key),
        message(1, b"\xff\xfe" * (450 * 1024), key),  # 900 KiB of invalid UTF-8
        message(2, b"\x00" * (200 * 1024), key),  # 200 KiB of NULs
        message(3, raw(churn_dict(account_id=key.decode(), days=30)), key,
                topic="accounts.churned"),
    ]


def test_poison_beside_valid_events_gives_bounded_dead_letters_and_every_alert(rules):
    batches, topics, gate, _ = _batches(rules)
    stream = _stream()
    asyncio.run(batches.events(stream))
    letters = [json.loads(value) for _, value, _ in topics.deadletters.sent]
    assert [d["reason"] for d in letters] == ["bad_json", "bad_json"]
    assert all(len(value) < LIMIT for _, value, _ in topics.deadletters.sent)
    assert all(d["truncated"] for d in letters)
    assert {json.loads(v)["rule"] for _, v, _ in topics.alerts.sent} >= {"discount-then-churn"}
    for m in stream:
        assert gate.limit(m.tp) == (3 if m.topic == "deals.closed" else 4)
    assert topics.tables["accounts"].sent  # the state was logged too


def test_an_alert_too_large_for_the_broker_becomes_a_dead_letter(rules):
    batches, topics, gate, counters = _batches(rules, alerts=FakeTopic("alerts", limit=100))
    stream = _stream()
    asyncio.run(batches.events(stream))
    assert topics.alerts.sent == []
    diverted = [json.loads(v) for _, v, _ in topics.deadletters.sent]
    assert "undeliverable_output" in {d["reason"] for d in diverted}
    assert counters.deadletters["undeliverable_output"] >= 1
    assert batches.delivery.failures["alerts", "diverted"] >= 1
    assert gate.limit(stream[0].tp) == 3  # done all the same: nothing is left undelivered


def test_a_broker_away_holds_the_offsets_until_it_is_back(rules):
    batches, topics, gate, _ = _batches(rules, alerts=FakeTopic("alerts", outages=3))
    stream = _stream()

    async def scenario():
        task = asyncio.create_task(batches.events(stream))
        await asyncio.sleep(0.02)
        held = gate.limit(stream[0].tp)  # while the alerts are being retried
        await task
        return held

    held = asyncio.run(scenario())
    assert held == -1
    assert gate.limit(stream[0].tp) == 3
    assert topics.alerts.sent
    assert batches.delivery.failures["alerts", "retried"] == 3


def test_a_batch_cut_short_leaves_its_offsets_uncommitted(rules):
    batches, topics, gate, _ = _batches(rules, alerts=FakeTopic("alerts", outages=10**6))
    stream = _stream()

    async def scenario():
        task = asyncio.create_task(batches.events(stream))
        await asyncio.sleep(0.05)
        task.cancel()  # the worker stops mid-batch
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert gate.limit(stream[0].tp) == -1
    assert topics.tables["accounts"].sent == []  # no state logged ahead of its outputs


def _consumer(app, acked):
    return SimpleNamespace(app=app, _acked=defaultdict(list, acked),
                           _acked_index=defaultdict(set), _gap=defaultdict(IntervalTree),
                           _committed_offset=defaultdict(lambda: None))


def test_faust_commits_only_up_to_the_gate():
    gate = CommitGate({"deals.closed"})
    app = SimpleNamespace()
    commit_gate.install(app, gate)
    tp, other = TP("deals.closed", 0), TP("other", 0)
    consumer = _consumer(app, {tp: [0, 1, 2, 3, 4, 5], other: [0, 1]})
    assert Consumer._new_offset(consumer, tp) is None  # acked, none done
    gate.done(tp, 2)
    assert Consumer._new_offset(consumer, tp) == 3
    assert consumer._acked[tp] == [3, 4, 5]  # kept for later
    gate.done(tp, 5)
    assert Consumer._new_offset(consumer, tp) == 6
    assert Consumer._new_offset(consumer, other) == 2  # not gated: faust's own rule


def test_delivery_failures_are_exported_from_the_start(rules):
    batches, _, _, _ = _batches(rules, alerts=FakeTopic("alerts", limit=100))
    registry = CollectorRegistry()
    registry.register(DeliveryCollector(batches.delivery.failures,
                                        lambda: batches.pipeline.unreadable))

    def sample(output, outcome):
        return registry.get_sample_value("auditor_output_failures_total",
                                         {"output": output, "outcome": outcome})

    assert sample("alerts", "diverted") == 0
    assert registry.get_sample_value("auditor_unreadable_records_total") == 0
    asyncio.run(batches.events(_stream()))
    assert sample("alerts", "diverted") >= 1
    assert sample("state", "dropped") == 0


class SilentOnceTopic(FakeTopic):
    """A broker that never acknowledges the first send (its future never resolves)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.silent = 1

    async def send(self, key, value, partition=None, key_serializer=None,
                   value_serializer=None):
        if self.silent:
            self.silent -= 1
            return asyncio.get_running_loop().create_future()  # no answer, ever
        return await super().send(key, value, partition, key_serializer, value_serializer)


def test_a_send_never_acknowledged_is_sent_again_not_waited_for_for_ever(rules):
    batches, topics, gate, _ = _batches(rules, alerts=SilentOnceTopic("alerts"))
    batches.delivery.ack_timeout = 0.2
    stream = _stream()
    asyncio.run(asyncio.wait_for(batches.events(stream), 10))
    assert topics.alerts.sent
    assert batches.delivery.failures["alerts", "retried"] >= 1
    assert gate.limit(stream[0].tp) == 3
