"""Broker health (auditor_broker_connected, the readiness grace period), the consumer lag
refresh, the log filters that bound a broker outage's logs and mask secrets, and the worker's
registry (process_* metrics) -- without a broker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, generate_latest

from auditor.worker.health import BrokerHealth, RedactFilter, RepeatFilter
from auditor.worker.lag import LagMonitor, Partition, lag_of
from auditor.worker.settings import WorkerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _text(collector: Any) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


# --- broker health -------------------------------------------------------------------------------


def test_broker_health_grace_period_and_gauge(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    health = BrokerHealth(30.0, clock)
    assert health.within_grace() and "auditor_broker_connected 0.0" in _text(health)
    health.answered()
    assert health.connected and "auditor_broker_connected 1.0" in _text(health)
    clock.now += 5
    health.lost("KafkaConnectionError: refused")
    assert not health.connected and "auditor_broker_connected 0.0" in _text(health)
    clock.now += 25
    health.lost("KafkaConnectionError: refused")
    assert health.within_grace()  # 30 s since the last answer
    clock.now += 1
    assert not health.within_grace() and health.silent_seconds == 31
    health.answered()
    assert health.within_grace() and health.connected
    messages = [r.getMessage() for r in caplog.records]
    assert sum("broker not reachable" in m for m in messages) == 1  # once per outage
    assert any("broker reachable again after 26 s" in m for m in messages)


# --- consumer lag --------------------------------------------------------------------------------


def test_lag_is_end_minus_committed_or_earliest() -> None:
    assert lag_of(100, 40) == 60
    assert lag_of(100, 100) == 0
    assert lag_of(90, 100) == 0  # never negative
    assert lag_of(100, None, earliest=10) == 90  # never committed: from the earliest offset
    assert lag_of(100, -1) == 100


class FakeAdmin:
    def __init__(self, committed: dict[TopicPartition, int], error: Exception | None = None):
        self.committed, self.error = committed, error
        self.asked: list[Any] = []

    async def list_consumer_group_offsets(self, group: str, partitions: Any) -> Any:
        self.asked.append((group, sorted(partitions)))
        if self.error:
            raise self.error
        return {tp: OffsetAndMetadata(offset, "") for tp, offset in self.committed.items()
                if tp in partitions}

    async def find_coordinator(self, group: str) -> int:
        self.asked.append((group, None))
        if self.error:
            raise self.error
        return 1


class FakeConsumer:
    def __init__(self, ends: dict[TopicPartition, int], earliest: int = 0) -> None:
        self.ends, self.earliest = ends, earliest

    async def end_offsets(self, partitions: Any) -> Any:
        return {tp: self.ends[tp] for tp in partitions}

    async def beginning_offsets(self, partitions: Any) -> Any:
        return {tp: self.earliest for tp in partitions}


def _monitor(assigned: list[tuple[str, int]], admin: FakeAdmin, consumer: FakeConsumer,
             clock: Clock | None = None) -> LagMonitor:
    settings = WorkerSettings(group_id="g", broker_grace_seconds=30)
    health = BrokerHealth(30.0, clock or Clock())
    monitor = LagMonitor(settings, {"deals", "churns", "g-aggregate-facts"},
                         lambda: [TopicPartition(t, p) for t, p in assigned], health)

    async def clients() -> tuple[Any, Any]:
        return admin, consumer

    monitor._clients = clients  # type: ignore[method-assign]
    return monitor


def test_lag_refresh_reads_committed_and_end_offsets() -> None:
    d0, d1 = TopicPartition("deals", 0), TopicPartition("deals", 1)
    f0 = TopicPartition("g-aggregate-facts", 0)
    assigned = [("deals", 0), ("deals", 1), ("g-aggregate-facts", 0), ("g-accounts-changelog", 0)]
    admin = FakeAdmin({d0: 6208, f0: 10})
    monitor = _monitor(assigned, admin, FakeConsumer({d0: 6208, d1: 50, f0: 25}, earliest=5))
    asyncio.run(monitor.refresh())
    assert monitor.lag == {Partition("deals", 0): 0, Partition("deals", 1): 45,
                           Partition("g-aggregate-facts", 0): 15}
    assert admin.asked == [("g", [d0, d1, f0])]  # the changelog is not asked about
    assert monitor.health.connected
    text = _text(monitor)
    assert 'auditor_consumer_lag{partition="0",topic="deals"} 0.0' in text
    assert 'auditor_consumer_lag{partition="1",topic="deals"} 45.0' in text
    assert 'auditor_consumer_lag{partition="0",topic="g-aggregate-facts"} 15.0' in text
    assert "changelog" not in text
    # Revoked since the last refresh: no longer exported.
    assigned[:] = [("deals", 1)]
    text = _text(monitor)
    assert 'topic="deals"} 45.0' in text and 'partition="0"' not in text


def test_a_fetched_high_watermark_is_a_floor_of_the_end_offset() -> None:
    """Tansu lists the start of the last batch as the end; a fetch response knows better."""
    d0, d1 = TopicPartition("deals", 0), TopicPartition("deals", 1)
    monitor = _monitor([("deals", 0), ("deals", 1)], FakeAdmin({d0: 10, d1: 10}),
                       FakeConsumer({d0: 11, d1: 12}))
    monitor.highwater = {d0: 40, d1: None}.get
    asyncio.run(monitor.refresh())
    assert monitor.lag == {Partition("deals", 0): 30, Partition("deals", 1): 2}


def test_no_answer_marks_the_broker_lost_and_keeps_the_last_values() -> None:
    d0 = TopicPartition("deals", 0)
    admin = FakeAdmin({d0: 5})
    monitor = _monitor([("deals", 0)], admin, FakeConsumer({d0: 8}))
    asyncio.run(monitor.refresh())
    assert monitor.lag == {Partition("deals", 0): 3} and monitor.health.connected
    admin.error = KafkaConnectionError("Connection refused")
    asyncio.run(monitor.refresh())
    assert not monitor.health.connected
    assert monitor.lag == {Partition("deals", 0): 3}  # the last values stay


def test_an_error_answer_still_counts_as_contact(caplog: pytest.LogCaptureFixture) -> None:
    d0 = TopicPartition("deals", 0)
    admin = FakeAdmin({d0: 5}, error=UnknownTopicOrPartitionError("gone"))
    monitor = _monitor([("deals", 0)], admin, FakeConsumer({d0: 8}))
    asyncio.run(monitor.refresh())
    assert monitor.health.connected
    assert "consumer lag not refreshed" in caplog.text


def test_nothing_assigned_still_asks_the_broker() -> None:
    admin = FakeAdmin({})
    monitor = _monitor([], admin, FakeConsumer({}))
    asyncio.run(monitor.refresh())
    assert admin.asked == [("g", None)] and monitor.health.connected and monitor.lag == {}


def test_refresh_interval_follows_a_short_grace_period() -> None:
    health = BrokerHealth(6.0)
    short = LagMonitor(WorkerSettings(broker_grace_seconds=6), set(), lambda: [], health)
    default = LagMonitor(WorkerSettings(), set(), lambda: [], health)
    assert short.interval == 2.0 and default.interval == 5.0


def test_lag_monitor_against_no_broker_reports_lost() -> None:
    """Real clients, a port nobody listens on: the refresh fails within its timeout."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    health = BrokerHealth(6.0)
    monitor = LagMonitor(WorkerSettings(brokers=(f"127.0.0.1:{port}",), broker_grace_seconds=6),
                         {"deals"}, lambda: [], health)

    async def once() -> None:
        await monitor.refresh()
        await monitor.close()

    asyncio.run(once())
    assert not health.connected and health.lost_since is not None


# --- logs ----------------------------------------------------------------------------------------


def _record(name: str, msg: str, *args: Any, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def test_repeat_filter_lets_one_line_per_logger_and_kind_through_per_interval() -> None:
    clock = Clock()
    flt = RepeatFilter(interval=10.0, clock=clock)
    first, second = ListHandler(), ListHandler()
    flt.install([first, second])
    flt.install([first])  # installing twice adds it once
    loggers = [logging.Logger("aiokafka"), logging.Logger("aiokafka.consumer.fetcher")]
    for logger in loggers:
        logger.addHandler(first)
        logger.addHandler(second)
    for i in range(200):  # 20 s of a broker outage, 10 attempts a second
        loggers[0].error("Unable connect to node with id %s: %s", 111, f"refused {i}")
        loggers[0].error("Unable to update metadata from [%s]", 111)
        loggers[1].error("Failed fetch messages from %s: %s", 111, "NodeNotReadyError")
        loggers[0].info("Attempting bootstrap %s", i)  # below WARNING: never held back
        clock.now += 0.1
    assert first.lines == second.lines  # the same decision for every handler
    held = [line for line in first.lines if "Attempting" not in line]
    assert len(held) == 6, held  # 3 kinds x 2 intervals
    assert held[0] == "aiokafka: Unable connect to node with id 111: refused 0"
    assert held[3].startswith("aiokafka: Unable connect to node with id 111: refused 100 "
                              "[99 more like this in the last 10 s not logged]")
    assert sum("Attempting" in line for line in first.lines) == 200


def test_repeat_filter_keeps_different_messages() -> None:
    flt = RepeatFilter(clock=Clock())
    assert flt.filter(_record("a", "commit failed"))
    assert flt.filter(_record("a", "rules reload failed"))
    assert flt.filter(_record("b", "commit failed"))
    assert flt.filter(_record("a", "commit failed", level=logging.WARNING))
    assert not flt.filter(_record("a", "commit failed"))
    assert flt.filter(_record("a", "node 7 gone"))
    assert not flt.filter(_record("a", "node 8 gone"))  # numbers aside, the same kind
    assert flt.filter(_record("a", "node gone"))


def test_repeat_filter_bounds_its_memory() -> None:
    flt = RepeatFilter(clock=Clock(), max_kinds=10)
    for i in range(100):
        flt.filter(_record(f"logger-{i}", "x"))
    assert len(flt._windows) <= 10


def test_redact_filter_masks_secrets_in_any_message() -> None:
    flt = RedactFilter(["s3cret-pw", None, ""])
    handler = ListHandler()
    flt.install([handler])
    logger = logging.Logger("kafka.admin.client", logging.DEBUG)
    logger.addHandler(handler)
    logger.debug("Starting KafkaAdminClient with configuration: %s",
                 {"sasl_plain_password": "s3cret-pw", "sasl_plain_username": "u"})
    logger.info("plain %d", 5)
    assert handler.lines == [
        "kafka.admin.client: Starting KafkaAdminClient with configuration: "
        "{'sasl_plain_password': '**********', 'sasl_plain_username': 'u'}",
        "kafka.admin.client: plain 5"]
    assert RedactFilter([]).filter(_record("x", "%s", "anything"))


# --- the worker's registry ----------------------------------------------------------------------


def test_worker_registry_has_process_broker_and_lag_metrics(tmp_path: Any, rules: Any) -> None:
    from auditor.worker.app import AuditorWorker

    settings = WorkerSettings(data_dir=tmp_path, rules_dir=None, web_port=16066)
    worker = AuditorWorker(settings, rules)
    text = generate_latest(worker.registry).decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "python_info", "auditor_broker_connected 0.0",
                 "# TYPE auditor_consumer_lag gauge"):
        assert name in text
    assert not worker.ready()  # not started
