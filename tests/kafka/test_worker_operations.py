"""Operating the worker against a real broker: consumer lag from the broker's committed and end
offsets (also right after a clean restart on idle topics), the standard process metrics, and a
lost broker made visible -- /readyz fails after the grace period, auditor_broker_connected
drops to 0 -- while the log stays readable, and both recover when the broker is back."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from kafka_helpers import (
    Stack,
    Worker,
    caught_up,
    claims_topic,
    dump_task_stacks,
    facts_topic,
    simulate,
    wait_until,
)

from auditor.worker.health import BrokerHealth
from auditor.worker.lag import LagMonitor, Partition
from auditor.worker.settings import WorkerSettings
from tests.support import tansu

GRACE = 5.0  # seconds: AUDITOR_BROKER_GRACE_SECONDS of the broker-loss test


def _lag(worker: Worker) -> dict[tuple[str, str], float]:
    return {(dict(labels)["topic"], dict(labels)["partition"]): value
            for (name, labels), value in worker.metrics().items()
            if name == "auditor_consumer_lag"}


def _connected(worker: Worker) -> float | None:
    return worker.metrics().get(("auditor_broker_connected", ()))


def test_lag_monitor_reads_committed_and_end_offsets_from_the_broker(stack: Stack) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.structs import OffsetAndMetadata

    topic = f"lag-probe.{stack.group}"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
    try:
        for partition, count in ((0, 5), (1, 3)):
            for n in range(count):  # one at a time: one record per batch
                producer.send(topic, value=b"x%d" % n, partition=partition).get(30)
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=stack.group,
                             enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
    finally:
        consumer.close()

    settings = WorkerSettings(brokers=(stack.bootstrap,), group_id=stack.group)
    health = BrokerHealth(settings.broker_grace_seconds)
    assigned = [TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition("other", 0)]
    monitor = LagMonitor(settings, {topic}, lambda: assigned, health)

    async def refresh() -> None:
        try:
            await monitor.refresh()
        finally:
            await monitor.close()

    asyncio.run(refresh())
    assert health.connected
    # 5 messages, committed at 2; 3 messages, never committed.
    assert monitor.lag == {Partition(topic, 0): 3, Partition(topic, 1): 3}


def test_lag_is_zero_after_a_clean_restart_on_idle_topics(stack: Stack, tmp_path: Path) -> None:
    events = simulate(tmp_path / "events.jsonl", accounts=150, months=12)
    worker = stack.worker("w1").start()
    worker.wait_ready()
    sent = stack.produce(events)
    wait_until(lambda: worker.events_total() >= sent, what="every event processed")
    topics = [stack.topics["deals.closed"], stack.topics["accounts.churned"], facts_topic(stack),
              claims_topic(stack)]
    wait_until(lambda: caught_up(stack, topics), what="every record committed, facts too")
    partitions = 4 * 4  # deals, churns, the repartition and claims topics, 4 partitions each
    wait_until(lambda: len(_lag(worker)) == partitions and not any(_lag(worker).values()),
               timeout=60, what=f"no lag once caught up: {_lag(worker)}")
    assert worker.stop() == 0

    again = stack.worker("w1").start()  # same table state, group and topics
    again.wait_ready()
    wait_until(lambda: len(_lag(again)) == partitions, timeout=60,
               what=f"the lag of every partition: {_lag(again)}")
    assert {topic for topic, _ in _lag(again)} == set(topics)
    for _ in range(3):  # over more than one refresh
        assert not any(_lag(again).values()), _lag(again)
        time.sleep(2.5)
    assert again.events_total() == 0  # nothing was redone

    metrics = {name for name, _ in again.metrics()}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes",
            "process_open_fds", "python_info"} <= metrics
    assert _connected(again) == 1.0


def test_sigusr1_logs_what_every_task_waits_on(stack: Stack) -> None:
    worker = stack.worker("w1").start()
    worker.wait_ready()
    dump_task_stacks([worker])
    log = worker.log.read_text(errors="replace")
    assert "task stacks on signal SIGUSR1" in log, worker.tail()
    dump = log[log.index("task stacks on signal SIGUSR1"):]
    # Each task's chain goes through the agent's own function into faust's stream.
    assert "in audit_events: async for events in stream.take_events" in dump, dump
    assert "in take_events:" in dump, dump
    # And what faust's consumer fetches, where each partition is read, what the batches do.
    assert "fetching: " in dump and "stream buffer of " in dump, dump
    assert "partition: read from/committed" in dump, dump
    assert "batches running 0, held for a rebalance False" in dump, dump
    assert worker.ready(), worker.tail()  # it only told: still running, still ready


def test_a_lost_broker_fails_readiness_and_the_logs_stay_bounded(tmp_path: Path) -> None:
    if os.environ.get(tansu.EXTERNAL_ENV):
        pytest.skip("kills its broker: needs a Tansu of its own")
    port = tansu.free_port()
    broker = tansu.start_tansu(port, tmp_path / "tansu.log")
    stack = Stack(f"127.0.0.1:{port}", tmp_path)
    try:
        tansu.wait_ready(stack.bootstrap)
        worker = stack.worker("w1", AUDITOR_BROKER_GRACE_SECONDS=str(GRACE)).start()
        worker.wait_ready()
        wait_until(lambda: _connected(worker) == 1.0, timeout=30, what="broker connected")

        tansu.stop(broker)
        killed = time.monotonic()
        lines_at_kill = len(worker.log.read_bytes().splitlines())
        wait_until(lambda: worker.get("/readyz")[0] == 503, timeout=GRACE + 10,
                   what="/readyz failing without a broker")
        assert time.monotonic() - killed >= GRACE - 2.5  # not before the grace period
        assert worker.get("/healthz")[0] == 200  # alive: a restart would not help
        assert _connected(worker) == 0.0
        status, body = worker.get("/readyz")
        assert status == 503 and '"broker_connected":false' in body.replace(" ", "")

        # The log, from 5 s to 25 s after the loss (unbounded, some 60 lines a second).
        time.sleep(max(0.0, killed + 5 - time.monotonic()))
        start = len(worker.log.read_bytes().splitlines())
        time.sleep(20)
        lines = worker.log.read_text(errors="replace").splitlines()
        per_second = (len(lines) - start) / 20
        assert per_second <= 2.0, "\n".join(lines[start:][-60:])
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        outage = "\n".join(lines[lines_at_kill:])
        assert "broker not reachable" in outage
        assert "more like this in the last" in outage  # what was held back is counted

        # A broker on the same address again (an empty one: Tansu keeps its data in memory).
        broker = tansu.start_tansu(port, tmp_path / "tansu.log")
        tansu.wait_ready(stack.bootstrap)
        wait_until(lambda: _connected(worker) == 1.0, timeout=30, what="broker connected again")
        wait_until(lambda: worker.get("/readyz")[0] == 200, timeout=30, what="ready again")
        assert "broker reachable again" in worker.log.read_text(errors="replace")
    finally:
        for w in stack.workers:
            w.kill()
        tansu.stop(broker)
