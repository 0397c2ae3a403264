"""`auditor worker`: the faust app around the pipeline -- agents, tables, topics, web pages.

Input topics -> `audit_events` (join stage per partition) -> alerts, dead letters, and facts
re-keyed by (rule, group, quarter) through the repartition topic -> `audit_aggregates`
(aggregate stage per partition) -> alerts. Offsets are committed after the producer is flushed,
so every output of an event is written before its offset is: at-least-once, with deterministic
alert ids to recognise a redelivery.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from mode import CrashingSupervisor
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from auditor.engine.alerts import Alert
from auditor.metrics.collector import build_registry
from auditor.metrics.counters import RunCounters
from auditor.plans.metrics import PlanFindingsCollector
from auditor.rules.compiled import RulePack
from auditor.rules.reload import RuleReloader
from auditor.worker import compat
from auditor.worker.pipeline import Outputs, Pipeline, StateTables, encode_facts
from auditor.worker.settings import WorkerSettings

log = logging.getLogger("auditor.worker")
CRASH = CrashingSupervisor
BATCH_EVENTS = 1000  # events per batch, at most
BATCH_SECONDS = 0.1  # how long a batch waits to fill: the latency added when traffic is low


class ConsumerLagCollector(Collector):
    """`auditor_consumer_lag{topic, partition}`: high watermark minus committed offset of each
    assigned input and repartition partition, read when scraped."""

    def __init__(self, app: faust.App, topics: set[str]) -> None:
        self.app = app
        self.topics = topics

    def collect(self) -> Any:
        lag = GaugeMetricFamily("auditor_consumer_lag",
                                "Messages not yet committed, per assigned partition.",
                                labels=["topic", "partition"])
        consumer = self.app._consumer  # None before the worker has started
        if consumer is not None:
            committed = self.app.monitor.tp_committed_offsets
            for tp in sorted(consumer.assignment()):
                if tp.topic not in self.topics:
                    continue
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    done = committed.get(tp, 0) or 0
                    lag.add_metric([tp.topic, str(tp.partition)], max(0, highwater - done))
        yield lag


class AuditorWorker:
    """Builds the faust app for `settings` and `rules`; `app` is what faust's Worker runs."""

    def __init__(self, settings: WorkerSettings, rules: RulePack) -> None:
        self.settings = settings
        self.counters = RunCounters()
        self.counters.rules_reloaded(rules.rule_count)
        self.open_batches = 0  # batches being processed; >0 at stop means one was cut short
        self.app = self._make_app()
        compat.apply(list(settings.brokers), settings.security.aiokafka())
        self.tables = self._make_tables()
        self.pipeline = Pipeline(rules, self.counters, self.tables, settings.lateness_days)
        self.registry = self._make_registry()
        self._define_agents()
        self._define_pages()
        self._define_signals()
        if settings.rules_dir is not None and settings.reload_seconds > 0:
            self._define_reload(settings.rules_dir, settings.reload_seconds)

    def _make_app(self) -> faust.App:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        return faust.App(
            s.group_id,
            broker=s.broker_url,
            broker_credentials=s.security.faust(),
            store="memory://",
            datadir=str(s.state_dir),
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=max(1.0, s.session_timeout / 6),
            broker_rebalance_timeout=max(10.0, s.session_timeout * 2),
            broker_commit_interval=1.0,
            # Small fetches keep the two input topics interleaved in event time, so one topic
            # running ahead cannot move the watermark far past the other.
            consumer_max_fetch_size=256 * 1024,
            table_standby_replicas=0,
            producer_acks=-1,
            producer_linger=0.01,  # seconds: a few sends per event, batched, not one request each
            stream_wait_empty=False,
            web_host=s.web_host,
            web_bind=s.web_host,
            web_port=s.web_port,
            worker_redirect_stdouts=False,
        )

    def _make_tables(self) -> StateTables:
        # Values are written with faust's JSON codec (Entry.__json__) and decoded lazily.
        n = self.settings.partitions
        return StateTables(accounts=self.app.Table("accounts", partitions=n),
                           aggregates=self.app.Table("aggregates", partitions=n),
                           watermarks=self.app.Table("watermarks", partitions=n))

    def _make_registry(self) -> CollectorRegistry:
        s = self.settings
        lag = ConsumerLagCollector(self.app, {*s.topics.inputs, s.facts_topic})
        plans = PlanFindingsCollector(lambda: self.pipeline.rules.plans)
        registry = build_registry(self.counters, self.pipeline.live_values, extra=[lag, plans])
        # faust's own sensors (messages, commits, rebalances, table ops) on the same /metrics.
        setup_prometheus_sensors(self.app, pattern="/metrics", registry=registry,
                                 name_prefix="faust")
        return registry

    def _define_agents(self) -> None:
        app, s, pipeline = self.app, self.settings, self.pipeline
        inputs = app.topic(*s.topics.inputs, partitions=s.partitions)
        facts = app.topic(s.facts_topic, partitions=s.partitions)
        alerts_topic = app.topic(s.topics.alerts)
        deadletter_topic = app.topic(s.topics.deadletter)

        async def delivered(sends: list[Any]) -> None:
            for sent in sends:
                await sent  # the broker has it

        def send_alerts(alerts: list[Alert]) -> list[Any]:
            return [alerts_topic.send_soon(key=a.alert_id.encode(), value=a.to_json().encode())
                    for a in alerts]

        # Events are taken in batches. A batch's outputs (alerts, dead letters, facts sent once
        # per key) are delivered first, then the state it changed is logged once per key; faust
        # acks, and so may commit, the batch's offsets only after this body, producer flushed.
        # concurrency=1: with more, faust can commit offsets past unprocessed messages (#606).
        # A crashed agent stops the worker (CrashingSupervisor) rather than being restarted in
        # place, which could skip the messages its dead stream had fetched: a restarted worker
        # resumes from the committed offsets instead.
        @app.agent(inputs, concurrency=1, name="audit_events", supervisor_strategy=CRASH)
        async def audit_events(stream: Any) -> None:
            async for events in stream.take_events(BATCH_EVENTS, within=BATCH_SECONDS):
                self.open_batches += 1
                out = Outputs()
                for event in events:
                    m = event.message
                    one = pipeline.on_input(m.topic, m.partition, m.offset, m.key, m.value)
                    out.alerts += one.alerts
                    out.facts += one.facts
                    out.deadletters += one.deadletters
                sends = send_alerts(out.alerts)
                sends += [facts.send_soon(key=key.encode(), value=value)
                          for key, value in encode_facts(out.facts).items()]
                sends += [deadletter_topic.send_soon(key=d.source.encode(),
                                                     value=d.to_json().encode())
                          for d in out.deadletters]
                await delivered(sends)
                pipeline.flush_joins()
                self.open_batches -= 1  # not in a `finally`: an interrupted batch stays open

        @app.agent(facts, concurrency=1, name="audit_aggregates", supervisor_strategy=CRASH)
        async def audit_aggregates(stream: Any) -> None:
            async for events in stream.take_events(BATCH_EVENTS, within=BATCH_SECONDS):
                self.open_batches += 1
                alerts: list[Alert] = []
                for event in events:
                    alerts += pipeline.on_facts(event.message.partition, event.message.value)
                await delivered(send_alerts(alerts))
                pipeline.flush_aggregates()
                self.open_batches -= 1

    def _define_pages(self) -> None:
        app = self.app

        @app.page("/healthz")
        async def healthz(web: Any, request: Any) -> Any:
            return web.json({"status": "ok"})

        @app.page("/readyz")
        async def readyz(web: Any, request: Any) -> Any:
            ready = self.ready()
            return web.json({"ready": ready, "assigned": self.assigned()},
                            status=200 if ready else 503)

    def ready(self) -> bool:
        """Joined the group, tables recovered, not rebalancing."""
        if self.app._consumer is None or self.app.rebalancing:
            return False
        return bool(self.app.tables.recovery.completed.is_set())

    def assigned(self) -> list[str]:
        if self.app._consumer is None:
            return []
        return sorted(f"{tp.topic}:{tp.partition}" for tp in self.app.consumer.assignment()
                      if not tp.topic.endswith("-changelog"))

    def _define_reload(self, directory: Path, interval: float) -> None:
        """The rules directory is watched; a change is validated first and swapped in between
        two events (timers run on the agents' event loop), keeping the engine's state."""

        def loaded(pack: RulePack) -> None:
            self.pipeline.set_rules(pack)
            self.counters.rules_reloaded(pack.rule_count)

        reloader = RuleReloader(directory, loaded,
                                lambda errors: self.counters.rules_reloaded(None))

        @self.app.timer(interval)
        async def reload_rules() -> None:
            reloader.poll()

    def _define_signals(self) -> None:
        app, pipeline = self.app, self.pipeline

        @app.on_partitions_revoked.connect
        async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
            pipeline.forget()
            log.info("partitions revoked: %s",
                     ", ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)) or "none")

        @app.on_partitions_assigned.connect
        async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            pipeline.forget()
            log.info("partitions assigned: %s; recovering tables",
                     ", ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned
                                      if not tp.topic.endswith("-changelog"))) or "none")

        @app.on_before_shutdown.connect
        async def commit_on_stop(sender: Any, **kwargs: Any) -> None:
            # A clean stop commits what was processed since the last periodic commit, so a
            # restart does not redo it (the streams are paused by now). Not when a batch was
            # cut short: faust acks a batch's events when its loop is left, even by a
            # cancellation, so committing would skip the unfinished events.
            if self.open_batches:
                log.warning("stopping mid-batch: offsets not committed, the restart redoes them")
                return
            try:
                await app.consumer.commit()
                log.info("committed offsets before stopping")
            except Exception:  # a broker gone away: the restart redoes the work, no loss
                log.exception("could not commit offsets before stopping")

        @app.on_rebalance_complete.connect
        async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
            log.info("tables recovered: %d accounts, %d aggregate periods",
                     len(self.tables.accounts), len(self.tables.aggregates))

        @app.timer(60.0)
        async def report() -> None:
            counts = self.counters.events_by_outcome()
            log.info("events %s; alerts %d; watermark %s", counts,
                     sum(self.counters.alerts.values()),
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.pipeline.watermark)))
