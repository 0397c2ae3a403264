"""`auditor worker`: the faust app around the pipeline -- agents, tables, topics, web pages.

Input topics -> `audit_events` (join stage per partition) -> alerts, dead letters, and facts
re-keyed by (rule, group, quarter) through the repartition topic -> `audit_aggregates`
(aggregate stage per partition) -> alerts, and their money per deal through the claims topic,
keyed by account, back to `audit_events` (the deals' ledgers). Offsets are committed only past
batches whose outputs and state the broker has acknowledged (batches.py, commit_gate.py):
at-least-once, with deterministic alert ids to recognise a redelivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.tables.manager import TableManager
from mode import CrashingSupervisor
from mode.types.signals import BaseSignalT
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from auditor.metrics.collector import build_registry
from auditor.metrics.counters import RunCounters
from auditor.metrics.retention import RetentionCollector
from auditor.plans.metrics import PlanFindingsCollector
from auditor.rules.pack import RulePack
from auditor.rules.reload import RuleReloader
from auditor.worker import commit_gate, compat, stacks
from auditor.worker.batches import Batches, OutputTopics
from auditor.worker.commit_gate import CommitGate
from auditor.worker.health import BrokerHealth
from auditor.worker.lag import LagMonitor
from auditor.worker.metrics import DeliveryCollector
from auditor.worker.pipeline import Pipeline, StateTables
from auditor.worker.settings import WorkerSettings

log = logging.getLogger("auditor.worker")
CRASH = CrashingSupervisor
# Events per batch, at most: each batch writes a few records per partition (state, facts,
# heartbeats), so larger batches send fewer messages per event; a batch takes ~1 s at most.
BATCH_EVENTS = 4000
STOP_GRACE_SECONDS = 10.0  # how long a clean stop waits for the batch in hand
BATCH_SECONDS = 0.1  # how long a batch waits to fill: the latency added when traffic is low

# faust types `app.timer`'s and `app.task`'s decorators as bare `Callable`s (or not at all) and
# mode types a signal's receivers narrower than faust sends to them; the helpers below give the
# app's background jobs and receivers their real types, and register them as the decorators do.
Job = Callable[[], Awaitable[None]]  # a timer's or a task's: an async def taking no argument
# A signal's receiver: called with the sender, the signal's values (the partitions of a
# rebalance, or none) and `signal=` as a keyword.
Receiver = Callable[..., Awaitable[None]]


def _timer(app: faust.App, interval: float) -> Callable[[Job], Job]:
    """`@app.timer(interval)`, typed: `fun` run every `interval` seconds."""
    # faust.App.timer returns a bare `Callable`; it is this decorator (faust/app/base.py).
    return cast(Callable[[Job], Job], app.timer(interval))


def _task(app: faust.App) -> Callable[[Job], Job]:
    """`@app.task`, typed: `fun` started with the app."""

    def register(fun: Job) -> Job:
        task: Job = app.task(fun)  # faust.App.task is @no_type_check: its result is untyped
        return task

    return register


def _receiver(signal: BaseSignalT[Any]) -> Callable[[Receiver], Receiver]:
    """`@signal.connect`, typed: `fun` receives the signal (a strong reference, as there)."""

    def connect(fun: Receiver) -> Receiver:
        signal.connect(fun)
        return fun

    return connect


class AuditorWorker:
    """Builds the faust app for `settings` and `rules`; `app` is what faust's Worker runs."""

    def __init__(self, settings: WorkerSettings, rules: RulePack) -> None:
        self.settings = settings
        self.counters = RunCounters()
        self.counters.rules_reloaded(rules)
        self.app = self._make_app()
        compat.apply(list(settings.brokers), settings.security.aiokafka())
        self.tables = self._make_tables()
        self.pipeline = Pipeline(rules, self.counters, self.tables, settings.lateness_days,
                                 settings.partitions, settings.snapshot_min_bytes)
        self.gate = CommitGate({*settings.topics.inputs, settings.facts_topic,
                                settings.claims_topic})
        commit_gate.install(self.app, self.gate)
        self.batches = self._make_batches()
        self.registry = self._make_registry()
        self._define_agents()
        self._define_pages()
        self._define_signals()
        self._define_stack_dump()
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
        # Consumer lag and broker contact, refreshed from the broker in the background.
        self.broker_health = BrokerHealth(s.broker_grace_seconds)
        self.lag = LagMonitor(s, {*s.topics.inputs, s.facts_topic, s.claims_topic},
                              self._assigned_partitions,
                              self.broker_health, self._fetched_highwater)
        self._define_broker_watch()
        plans = PlanFindingsCollector(lambda: self.pipeline.rules.plans)
        delivery = DeliveryCollector(self.batches.delivery.failures,
                                     lambda: self.pipeline.unreadable)
        retention = RetentionCollector(self.counters, self.pipeline.retention_values)
        registry = build_registry(self.counters, self.pipeline.live_values,
                                  extra=[self.lag, self.broker_health, plans, delivery,
                                         retention])
        # process_* (CPU, memory, open files) and python_info, as every service exports.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        # faust's own sensors (messages, commits, rebalances, table ops) on the same /metrics.
        setup_prometheus_sensors(self.app, pattern="/metrics", registry=registry,
                                 name_prefix="faust")
        return registry

    def _make_batches(self) -> Batches:
        app, s, tables = self.app, self.settings, self.tables
        return Batches(self.pipeline, OutputTopics(
            alerts=app.topic(s.topics.alerts), deadletters=app.topic(s.topics.deadletter),
            facts=app.topic(s.facts_topic, partitions=s.partitions),
            tables={"accounts": tables.accounts, "aggregates": tables.aggregates},
            claims=app.topic(s.claims_topic, partitions=s.partitions),
        ), self.gate)

    def _define_agents(self) -> None:
        app, s, batches = self.app, self.settings, self.batches
        # The claims topic is read with the inputs: its claims change the accounts' state, so
        # they are applied, logged and committed in the same batches, by the same agent.
        inputs = app.topic(*s.topics.inputs, s.claims_topic, partitions=s.partitions)
        facts = app.topic(s.facts_topic, partitions=s.partitions)

        # Events are taken in batches; auditor/worker/batches.py gives the steps of one, and
        # why its offsets are committed only once its work is delivered. concurrency=1: with
        # more, faust can commit offsets past unprocessed messages (#606). An agent that fails
        # all the same stops the worker (CrashingSupervisor) rather than being restarted in
        # place; the restarted worker resumes from the committed offsets.
        @app.agent(inputs, concurrency=1, name="audit_events", supervisor_strategy=CRASH)
        async def audit_events(stream: Any) -> None:
            async for events in stream.take_events(BATCH_EVENTS, within=BATCH_SECONDS):
                await batches.events(event.message for event in events)

        @app.agent(facts, concurrency=1, name="audit_aggregates", supervisor_strategy=CRASH)
        async def audit_aggregates(stream: Any) -> None:
            async for events in stream.take_events(BATCH_EVENTS, within=BATCH_SECONDS):
                await batches.facts(event.message for event in events)

    def _define_pages(self) -> None:
        app = self.app

        @app.page("/healthz")
        async def healthz(web: Any, request: Any) -> Any:
            return web.json({"status": "ok"})

        # Liveness stays 200 while the broker is away: a restart would not bring it back.
        @app.page("/readyz")
        async def readyz(web: Any, request: Any) -> Any:
            ready = self.ready()
            health = self.broker_health
            return web.json({"ready": ready, "assigned": self.assigned(),
                             "broker_connected": health.connected,
                             "broker_silent_seconds": round(health.silent_seconds, 1)},
                            status=200 if ready else 503)

    def ready(self) -> bool:
        """Joined the group, tables recovered, not rebalancing, and the broker answered
        within the grace period."""
        if self.app._consumer is None or self.app.rebalancing:
            return False
        if not self.broker_health.within_grace():
            return False
        # AppT types `tables` as the abstract TableManagerT, which has no `recovery`; faust.App's
        # is a TableManager.
        return bool(cast(TableManager, self.app.tables).recovery.completed.is_set())

    def assigned(self) -> list[str]:
        """Assigned partitions of the input and repartition topics (no changelogs, no faust
        leader topic)."""
        return sorted(f"{tp.topic}:{tp.partition}" for tp in self._assigned_partitions()
                      if not tp.topic.endswith("-changelog")
                      and not tp.topic.endswith("-__assignor-__leader"))

    def _define_reload(self, directory: Path, interval: float) -> None:
        """The rules directory is watched; a change is validated first and swapped in between
        two events (timers run on the agents' event loop), keeping the engine's state."""

        def loaded(pack: RulePack) -> None:
            self.pipeline.set_rules(pack)
            self.counters.rules_reloaded(pack)

        reloader = RuleReloader(directory, loaded,
                                lambda errors: self.counters.rules_reloaded(None))

        @_timer(self.app, interval)
        async def reload_rules() -> None:
            reloader.poll()

    def _define_signals(self) -> None:
        app = self.app

        @_receiver(app.on_partitions_revoked)
        async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
            self.batches.hold()
            self.batches.rebalance()
            log.info("partitions revoked: %s",
                     ", ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)) or "none")
            # The batch in hand logs its state before the tables are recovered (which would
            # otherwise put older values back over its changes; Batches.hold), and before the
            # partitions' next owner reads their changelogs. Bounded: the group waits for a
            # rejoin no longer than its rebalance timeout, at least the session timeout.
            grace = self.settings.session_timeout
            try:
                await asyncio.wait_for(self.batches.idle.wait(), grace)
            except TimeoutError:
                log.warning("a batch is still delivering after %.0f s of a rebalance: the "
                            "state it has yet to log may be missing from the recovered tables",
                            grace)

        @_receiver(app.on_partitions_assigned)
        async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            self.batches.rebalance()
            log.info("partitions assigned: %s; recovering tables",
                     ", ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned
                                      if not tp.topic.endswith("-changelog"))) or "none")

        @_receiver(app.on_before_shutdown)
        async def commit_on_stop(sender: Any, **kwargs: Any) -> None:
            # A clean stop lets the batch in hand finish (faust pauses the partitions and
            # stops the fetcher first, and stops the agents only after this), then commits
            # what was done since the last periodic commit, so a restart does not redo it. A
            # batch still unfinished after the grace stays uncommitted (the commit gate).
            try:
                await asyncio.wait_for(self.batches.idle.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning("a batch is still delivering after %.0f s: its offsets stay "
                            "uncommitted, the restart redoes it", STOP_GRACE_SECONDS)
            try:
                await app.consumer.commit()
                log.info("committed offsets before stopping")
            except Exception:  # a broker gone away: the restart redoes the work, no loss
                log.exception("could not commit offsets before stopping")

        @_receiver(app.on_rebalance_complete)
        async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
            self.batches.release()
            log.info("tables recovered: %d accounts records, %d aggregates records",
                     len(self.tables.accounts), len(self.tables.aggregates))

        @_timer(app, 60.0)
        async def report() -> None:
            counts = self.counters.events_by_outcome()
            log.info("events %s; alerts %d; watermark %s", counts,
                     sum(self.counters.alerts.values()),
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.pipeline.watermark)))

    def _assigned_partitions(self) -> set[Any]:
        """This worker's assigned topic partitions; empty before the consumer has started."""
        if self.app._consumer is None:
            return set()
        try:
            return set(self.app.consumer.assignment())
        except Exception:  # the consumer thread is starting or being replaced
            return set()

    def _fetched_highwater(self, tp: Any) -> int | None:
        """The high watermark of an assigned partition in the last fetch response, if any."""
        if self.app._consumer is None:
            return None
        try:
            value = self.app.consumer.highwater(tp)
        except Exception:  # not assigned (any more), or the consumer is being replaced
            return None
        return value if isinstance(value, int) else None

    def _define_stack_dump(self) -> None:
        app = self.app

        # Installed once the app runs, so after the faust worker's own SIGUSR1 handler (which
        # prints each task's outermost frame only, to stderr).
        @_task(app)
        async def install_stack_dump() -> None:
            def state() -> str:
                return (f"batches running {self.batches.running}, held for a rebalance "
                        f"{self.batches.held}\n{stacks.consumer_state(app)}")

            stacks.install(asyncio.get_running_loop(), state, lambda: stacks.client_loops(app))

    def _define_broker_watch(self) -> None:
        """Every few seconds, ask the broker for the consumer lag; its answer (or none) is the
        worker's broker health. On the agents' event loop, never blocking it."""

        @_task(self.app)
        async def watch_broker() -> None:
            await self.lag.run()
