"""`auditor_consumer_lag{topic, partition}` from the broker, refreshed in the background.

The lag of a partition is its end offset (ListOffsets) minus the offset the consumer group has
committed for it (OffsetFetch), both asked of the broker every few seconds by two small aiokafka
clients of the worker's own, on its event loop: nothing blocks the agents, and a scrape only
reads the last values. It covers the partitions of the input topics and of the repartition
topic assigned to this worker, so the workers of a group together export each partition once.
A partition the group has never committed counts from its earliest offset. Where the worker
has fetched from a partition, the high watermark of the last fetch response is a floor of its end
offset: some Kafka-protocol brokers (Tansu) answer ListOffsets with the start of the last batch
written, not its end.

Each refresh is also the worker's probe of the broker: an answer, or none, goes to a
`BrokerHealth` (auditor_broker_connected, /readyz).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auditor.worker.health import BrokerHealth
from auditor.worker.settings import WorkerSettings

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0  # at most; shorter when the broker grace period is short
# What says the broker did not answer at all, as opposed to answering with an error.
NO_ANSWER: tuple[type[BaseException], ...] = (
    KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError,
    TimeoutError, OSError)


class Partition(NamedTuple):
    topic: str
    partition: int


Assignment = Callable[[], Iterable[Any]]  # the worker's assigned (topic, partition) pairs
Highwater = Callable[[Any], int | None]  # of a partition, from the last fetch response


def lag_of(end: int, committed: int | None, earliest: int = 0) -> int:
    """Messages behind: from the committed offset (or the earliest, never committed) to the
    end, never negative."""
    start = committed if committed is not None and committed >= 0 else earliest
    return max(0, end - start)


class LagMonitor(Collector):
    """Refreshes the lag of the assigned partitions of `topics` from the broker; a collector
    exporting the last values of the partitions still assigned."""

    def __init__(self, settings: WorkerSettings, topics: Iterable[str], assignment: Assignment,
                 health: BrokerHealth, highwater: Highwater | None = None) -> None:
        self.group = settings.group_id
        self.topics = frozenset(topics)
        self.assignment = assignment
        self.health = health
        self.highwater = highwater or (lambda tp: None)
        self.interval = min(REFRESH_SECONDS, max(0.5, settings.broker_grace_seconds / 3))
        self.timeout = max(2.0, 2 * self.interval)  # for one refresh
        self.client_options: dict[str, Any] = {
            "bootstrap_servers": list(settings.brokers),
            "client_id": f"{settings.group_id}-lag",
            "request_timeout_ms": int(self.timeout * 1000),
            "retry_backoff_ms": 500,
            **settings.security.aiokafka(),
        }
        self.lag: dict[Partition, int] = {}
        self._admin: Any = None
        self._consumer: Any = None

    def assigned(self) -> list[Partition]:
        try:
            pairs = list(self.assignment())
        except Exception:  # the consumer is not started yet, or is being replaced
            return []
        return sorted({Partition(tp.topic, tp.partition) for tp in pairs
                       if tp.topic in self.topics})

    async def run(self) -> None:
        """Refresh forever, every `interval` seconds; closes the clients when cancelled."""
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(self.interval)
        finally:
            await self.close()

    async def refresh(self) -> None:
        try:
            await asyncio.wait_for(self._refresh(), self.timeout)
        except NO_ANSWER as exc:
            self.health.lost(_describe(exc))
            if self._admin is None:  # never started: start afresh next time
                await self.close()
        except Exception as exc:  # the broker answered, with an error: lag not refreshed
            self.health.answered()
            log.warning("consumer lag not refreshed: %s", _describe(exc))
        else:
            self.health.answered()

    async def _refresh(self) -> None:
        admin, consumer = await self._clients()
        partitions = self.assigned()
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        if not tps:
            await admin.find_coordinator(self.group)  # a round trip: the broker answers
            self.lag = {}
            return
        committed = {tp: meta.offset for tp, meta in
                     (await admin.list_consumer_group_offsets(self.group, partitions=tps)).items()}
        ends = {tp: max(end, self.highwater(tp) or 0)
                for tp, end in (await consumer.end_offsets(tps)).items()}
        never = [tp for tp in tps if committed.get(tp, -1) < 0]
        earliest = await consumer.beginning_offsets(never) if never else {}
        self.lag = {Partition(tp.topic, tp.partition):
                    lag_of(ends[tp], committed.get(tp), earliest.get(tp, 0))
                    for tp in tps if tp in ends}

    async def _clients(self) -> tuple[Any, Any]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self.client_options)
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                                        **self.client_options)
            self._consumer = consumer
            await consumer.start()
            await admin.start()
            self._admin = admin
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        for stop in (admin.close if admin else None, consumer.stop if consumer else None):
            if stop is not None:
                try:
                    await stop()
                except Exception:  # closing clients of an unreachable broker
                    log.debug("closing a lag client", exc_info=True)

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "auditor_consumer_lag",
            "Messages behind: end offset minus the group's committed offset, per assigned "
            "partition, from the broker every few seconds.", labels=["topic", "partition"])
        current = self.lag
        for p in self.assigned():
            if p in current:
                lag.add_metric([p.topic, str(p.partition)], current[p])
        yield lag


def _describe(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name
