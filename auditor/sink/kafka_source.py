"""`auditor sink postgres`: the alerts topic into the findings table, at least once in and
exactly one row per alert_id out.

The loop, one batch at a time:

1. poll up to `batch_size` records (kafka-python, `enable_auto_commit=False`);
2. turn each into a row, or into a rejected record (not JSON, not an alert: logged, counted,
   kept in `findings_rejected` with its raw bytes);
3. upsert the rows and keep the rejected records in ONE PostgreSQL transaction, and commit it;
4. only then commit the batch's offsets to Kafka.

A crash between 3 and 4 re-delivers the batch after the restart, and the upsert by alert_id
makes that a no-op. A database that is away is waited for (capped backoff) with the batch held
and its offsets uncommitted; a commit to Kafka that fails (the group moved on) is logged, the
records come again and change nothing. SIGTERM (or SIGINT) ends the loop after the batch in
hand is written and committed, then the consumer leaves the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from auditor.sink import schema, store
from auditor.sink.rows import Refused, Rejected, Row, parse
from auditor.sink.store import Conn, Written
from auditor.worker.settings import Security

log = logging.getLogger("auditor.sink")

DEFAULT_GROUP = "comp-auditor-findings-sink"
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0


@dataclass(frozen=True)
class SinkConfig:
    brokers: tuple[str, ...]
    dsn: str
    topic: str = "audit.alerts"
    group_id: str = DEFAULT_GROUP
    security: Security = field(default_factory=Security)
    batch_size: int = 1000
    session_timeout: float = 10.0  # seconds: how fast a dead sink's partitions move
    poll_seconds: float = 1.0
    start_timeout: float = 60.0  # how long to wait for the database and broker at start
    progress_seconds: float = 10.0


@dataclass
class SinkStats:
    written: Written = field(default_factory=Written)
    batches: int = 0
    commits_failed: int = 0


class StartError(Exception):
    """The sink cannot start: no database, no broker, a schema it cannot use."""


def connect(dsn: str, stop: threading.Event, timeout: float | None) -> Conn:
    """A connection (autocommit; transactions are explicit), waiting for the database with
    capped backoff; None timeout: as long as it takes (or until `stop`)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = BACKOFF_MIN
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                                   application_name="comp-auditor-sink")
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            if (deadline is not None and time.monotonic() > deadline) or stop.is_set():
                raise StartError(f"cannot connect to PostgreSQL: {reason}") from None
            log.warning("waiting for PostgreSQL (%s); retrying in %.1f s", reason, delay)
            stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX)


def open_database(dsn: str, stop: threading.Event, timeout: float | None) -> Conn:
    """Connects, migrates the schema and prepares the staging table."""
    conn = connect(dsn, stop, timeout)
    try:
        applied = schema.migrate(conn)
        store.prepare(conn)
    except BaseException:
        conn.close()
        raise
    if applied:
        log.info("findings schema migrated to version %d (applied %s)", schema.LATEST,
                 ", ".join(map(str, applied)))
    else:
        log.info("findings schema up to date (version %d)", schema.LATEST)
    return conn


def make_consumer(config: SinkConfig, stop: threading.Event) -> Any:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    deadline = time.monotonic() + config.start_timeout
    delay = BACKOFF_MIN
    while True:
        try:
            return KafkaConsumer(
                config.topic, bootstrap_servers=list(config.brokers), group_id=config.group_id,
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_poll_records=config.batch_size, client_id="comp-auditor-sink",
                session_timeout_ms=int(config.session_timeout * 1000),
                heartbeat_interval_ms=max(100, int(config.session_timeout * 1000 / 3)),
                **config.security.kafka_python())
        except KafkaError as exc:
            if time.monotonic() > deadline or stop.is_set():
                raise StartError(f"cannot reach the Kafka brokers "
                                 f"{','.join(config.brokers)}: {exc}") from None
            log.warning("waiting for Kafka (%s); retrying in %.1f s", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX)


def to_batch(records: list[Any]) -> tuple[list[Row], list[Rejected], dict[tuple[str, int], int]]:
    """Rows, rejected records and the next offset of each (topic, partition) of `records`."""
    rows: list[Row] = []
    rejected: list[Rejected] = []
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        source = f"{record.topic}/{record.partition}/{record.offset}"
        try:
            rows.append(parse(record.value, source))
        except Refused as exc:
            rejected.append(Rejected(source, exc.reason, exc.detail, record.value or b"",
                                     record.key))
            log.warning("rejected %s: %s: %s", source, exc.reason, exc.detail)
        tp = (record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return rows, rejected, offsets


class Sink:
    def __init__(self, config: SinkConfig, stop: threading.Event | None = None,
                 on_batch: Callable[[Written], None] | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.stats = SinkStats()
        self.on_batch = on_batch
        self.conn: Conn | None = None

    def run(self) -> SinkStats:
        """Until `stop` is set; StartError when it cannot start."""
        self.conn = open_database(self.config.dsn, self.stop, self.config.start_timeout)
        consumer = make_consumer(self.config, self.stop)
        log.info("consuming %s as group %s from %s into PostgreSQL (%s)", self.config.topic,
                 self.config.group_id, ",".join(self.config.brokers), _where(self.conn))
        last_report, reported = time.monotonic(), Written()
        try:
            while not self.stop.is_set():
                polled = consumer.poll(timeout_ms=int(self.config.poll_seconds * 1000),
                                       max_records=self.config.batch_size)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self._handle(consumer, records)
                if time.monotonic() - last_report >= self.config.progress_seconds:
                    last_report = time.monotonic()
                    if self.stats.written.upserted + self.stats.written.rejected != (
                            reported.upserted + reported.rejected):
                        log.info("so far: %s", self.stats.written)
                        reported = Written(**vars(self.stats.written))
        finally:
            consumer.close(autocommit=False)
            if self.conn is not None:
                self.conn.close()
        log.info("stopped: %s in %d batches", self.stats.written, self.stats.batches)
        return self.stats

    def _handle(self, consumer: Any, records: list[Any]) -> None:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        rows, rejected, offsets = to_batch(records)
        written = self._write(rows, rejected)
        if written is None:  # stopped while the database was away: nothing committed
            return
        self.stats.written.add(written)
        self.stats.batches += 1
        if self.on_batch is not None:
            self.on_batch(written)
        commit = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                  for (t, p), o in offsets.items()}
        try:
            consumer.commit(commit)
        except KafkaError as exc:
            # Rows are durable; the records will come again and change nothing.
            self.stats.commits_failed += 1
            log.warning("offset commit failed (%s); the batch will be re-delivered", exc)

    def _write(self, rows: list[Row], rejected: list[Rejected]) -> Written | None:
        """Writes a batch in one transaction, reconnecting for as long as the database is
        away; None if stopped meanwhile."""
        delay = BACKOFF_MIN
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = open_database(self.config.dsn, self.stop, None)
                with self.conn.transaction():
                    return store.write(self.conn, rows, rejected)
            except (psycopg.OperationalError, psycopg.InterfaceError, StartError) as exc:
                if self.conn is not None and not self.conn.closed:
                    self.conn.close()
                self.conn = None
                if self.stop.is_set():
                    log.warning("stopping with a batch of %d records unwritten and "
                                "uncommitted (PostgreSQL: %s)", len(rows) + len(rejected), exc)
                    return None
                log.warning("PostgreSQL failed (%s); retrying the batch in %.1f s", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)


def _where(conn: Conn) -> str:
    info = conn.info
    return f"{info.user}@{info.host}:{info.port}/{info.dbname}"
