"""`auditor sink postgres` between a real broker and a real PostgreSQL: killed mid-stream and
restarted, fed re-delivered alerts and poison records, it ends with exactly one row per alert_id
of the replay, equal to the alert field by field, and never commits an offset before its row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka_helpers import (
    AUDITOR,
    SESSION_TIMEOUT,
    Stack,
    committed_offsets,
    end_offsets_read,
    read_records,
    replay_alerts,
    simulate,
    wait_until,
)

from tests.support import postgres

pytestmark = pytest.mark.skipif(
    postgres.available() is not None and not os.environ.get("CI"),
    reason=f"{postgres.available()}; `make test` installs it")

PARTITIONS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres.cluster() as dsn:
        yield dsn


@pytest.fixture
def db(server: str) -> Iterator[str]:
    with postgres.database(server) as dsn:
        yield dsn


class SinkProcess:
    def __init__(self, stack: Stack, dsn: str, name: str, *args: str) -> None:
        self.log = stack.tmp / f"sink-{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [AUDITOR, "sink", "postgres", "--dsn", dsn, "--group-id", stack.group,
                 "--session-timeout", SESSION_TIMEOUT, *args],
                env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def create_topic(stack: Stack, topic: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()


def produce(stack: Stack, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Keyed as the worker keys alerts (by alert_id, murmur2), values sent as given."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(60)
    finally:
        producer.close()


def durable_before_committed(stack: Stack, topic: str, dsn: str) -> list[str]:
    """Records below the group's committed offsets that are in neither table: must be none."""
    committed = committed_offsets(stack, topic)
    rows = postgres.findings(dsn)
    with psycopg.connect(dsn) as conn:
        rejected = {s for (s,) in conn.execute("SELECT source FROM findings_rejected")}
    lost = []
    for record in read_records(stack, topic, idle_ms=2000):
        if record.offset >= committed.get(record.partition, 0):
            continue
        source = f"{record.topic}/{record.partition}/{record.offset}"
        try:
            alert_id = json.loads(record.value)["alert_id"]
        except (TypeError, ValueError, KeyError):
            alert_id = None
        if alert_id not in rows and source not in rejected:
            lost.append(source)
    return lost


def test_killed_mid_stream_and_restarted_it_holds_each_alert_once(
        stack: Stack, db: str, tmp_path: Path) -> None:
    events = simulate(tmp_path / "events.jsonl", accounts=700, months=15, seed=23)
    lines = (tmp_path / "alerts.jsonl")
    alerts = replay_alerts(events, lines)
    expected = {a["alert_id"]: a for a in alerts}
    assert len(expected) == len(alerts) > 200
    raw = lines.read_bytes().splitlines()
    messages: list[tuple[bytes | None, bytes | None]] = [
        (json.loads(line)["alert_id"].encode(), line) for line in raw]
    topic = stack.topics["audit.alerts"]
    create_topic(stack, topic)

    # Part of the stream, read in small batches; killed once some rows are in.
    first = len(messages) * 2 // 3
    produce(stack, topic, messages[:first])
    sink = SinkProcess(stack, db, "1", "--batch-size", "7")
    try:
        wait_until(lambda: sink.proc.poll() is not None or _count(db) >= 20, timeout=120,
                   what="the first rows")
        assert sink.proc.poll() is None, sink.text()
        sink.kill()
    finally:
        sink.kill()
    stored = _count(db)
    assert 0 < stored < len(expected)
    assert durable_before_committed(stack, topic, db) == []

    # The rest, some alerts again (re-delivery, same key and bytes), and poison records.
    again = messages[:25]
    poison: list[tuple[bytes | None, bytes | None]] = [
        (b"junk", b"this is not json"),
        (b"not-an-alert", b'{"event_type": "deal_closed", "deal_id": "d1"}'),
        (b"tombstone", None),
    ]
    produce(stack, topic, messages[first:] + again + poison)
    total = len(messages) + len(again) + len(poison)

    sink = SinkProcess(stack, db, "2", "--batch-size", "50")
    try:
        def caught_up() -> bool:
            assert sink.proc.poll() is None, sink.text()
            committed = committed_offsets(stack, topic)
            ends = end_offsets_read(stack, topic)
            return sum(ends.values()) == total and all(
                committed.get(p, 0) >= end for p, end in ends.items())

        wait_until(caught_up, timeout=180, what=f"the sink to commit all {total} records")
        # A graceful stop: SIGTERM finishes the batch, commits and exits 0.
        sink.signal(signal.SIGTERM)
        assert sink.proc.wait(30) == 0, sink.text()
    finally:
        sink.kill()
    log = sink.text()
    assert "findings schema up to date" in log
    assert "SIGTERM" in log and "stopped:" in log

    postgres.assert_findings_are(db, expected)
    with psycopg.connect(db) as conn:
        rejected: list[tuple[Any, ...]] = conn.execute(
            "SELECT source, reason, raw_text, record_key FROM findings_rejected ORDER BY reason"
        ).fetchall()
    assert [(r[1], r[2], bytes(r[3])) for r in rejected] == [
        ("empty", "", b"tombstone"),
        ("not_alert", '{"event_type": "deal_closed", "deal_id": "d1"}', b"not-an-alert"),
        ("not_json", "this is not json", b"junk"),
    ]
    assert all(r[0].startswith(f"{topic}/") for r in rejected)


def test_it_waits_for_a_database_that_comes_late(stack: Stack, server: str,
                                                 tmp_path: Path) -> None:
    """Started before its database exists, it waits, then loads; the database wins no
    shortcuts: the same checks as above, on a handful of alerts."""
    topic = stack.topics["audit.alerts"]
    create_topic(stack, topic)
    alert = {"alert_id": "a1", "rule": "r", "kind": "deal", "severity": "warning",
             "event_time": "2026-01-05T00:00:00Z", "summary": "s", "at_risk": 1.5,
             "money_class": "exposure", "currency": "USD", "evidence": {"money": {"exposure": 1.5}}}
    produce(stack, topic, [(b"a1", json.dumps(alert).encode())])
    name = "auditor_late_" + os.urandom(4).hex()
    dsn = postgres.with_database(server, name)
    sink = SinkProcess(stack, dsn, "late")
    try:
        wait_until(lambda: "waiting for PostgreSQL" in sink.text(), timeout=60,
                   what="the sink to wait for its database")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[call-overload]
        wait_until(lambda: sink.proc.poll() is None and _count(dsn) == 1, timeout=90,
                   what="the row")
        postgres.assert_findings_are(dsn, {"a1": alert})
    finally:
        sink.kill()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[call-overload]


def _count(dsn: str) -> int:
    try:
        return postgres.count(dsn)
    except psycopg.Error:  # no table yet
        return 0
