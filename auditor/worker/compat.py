"""Three fixes to faust-streaming 0.15.3 (and one setting), applied by the worker.

All were found running the worker against the test broker; without them a restarted worker,
or one taking over partitions, loses table state or skips input. Each is harmless where it is
not needed.

1. Seek before resume (cf. faust-streaming issue #596): `Recovery.on_recovery_completed`
   resumes the source partitions *before* seeking them to their committed offsets while the
   fetcher already runs, so a fetch from the stale position can reach the stream and a batch is
   skipped. The patched method seeks first, then resumes.
2. Changelog end offsets checked against a fetch: some Kafka-protocol brokers (Tansu 0.6) answer
   ListOffsets(latest) with the last *batch's* base offset + 1, so recovery stops before the last
   records of a changelog. The high watermark in a fetch response is right, so one short fetch
   per changelog partition confirms (or raises) the end offset faust recovers to.
3. The consumer thread fetches for a snapshot of the active partitions: faust hands it its own
   set, which a rebalance empties (pause_partitions) while the fetch waits, and aiokafka takes
   an empty set for "every partition": it returns the records of the paused input partitions,
   moves their positions past them, and faust drops them as not active. The post-recovery seek
   puts back only partitions with a committed offset, so a partition nobody had committed yet
   was left at its end: never processed, while the worker sat idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.tables.recovery import Recovery
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer

log = logging.getLogger(__name__)

PRODUCER_BUFFER_MESSAGES = 2000
_client_options: dict[str, Any] = {}
_applied = False


def apply(bootstrap_servers: list[str], client_options: dict[str, Any]) -> None:
    global _applied
    _client_options.update(bootstrap_servers=bootstrap_servers, **client_options)
    if _applied:
        return
    _applied = True
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    # Not a fix, a setting faust does not expose: its producer buffer waits (and logs a warning)
    # every 100 pending sends, and an event can send several (alerts, facts, changelog).
    ProducerBuffer.max_messages = PRODUCER_BUFFER_MESSAGES
    consumer_class: Any = ThreadDelegateConsumer
    consumer_class._getmany = _getmany_snapshot
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: Any) -> Any:
        reported = dict(await original(self, partitions))
        return await _confirm_end_offsets(reported)

    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]


async def _getmany_snapshot(self: Any, active_partitions: Any, timeout: float) -> Any:
    # faust's ThreadDelegateConsumer._getmany, with the partitions copied (fix 3).
    if active_partitions is None:  # a client-only app: every partition, as faust means
        return await self._thread.getmany(None, timeout)
    snapshot = frozenset(active_partitions)
    if not snapshot:
        return {}
    return await self._thread.getmany(snapshot, timeout)


async def _on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    # faust's method, with the seek moved before the resume.
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    coros = [
        asyncio.ensure_future(
            table.on_recovery_completed(self.actives_for_table[table],
                                        self.standbys_for_table[table]))
        for table in self.tables.values()
    ]
    if coros:
        await asyncio.wait(coros)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again")
        return
    if assignment:
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_flow()
    await self.app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _confirm_end_offsets(reported: dict[Any, int]) -> dict[Any, int]:
    need = [tp for tp, offset in reported.items() if offset]
    if not need:
        return reported
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, fetch_max_wait_ms=50,
                                **_client_options)
    await consumer.start()
    try:
        consumer.assign(need)
        for tp in need:
            consumer.seek(tp, reported[tp] - 1)
        pending = set(need)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    if highwater > reported[tp]:
                        log.info("changelog %s:%d ends at %d, not %d as the broker listed",
                                 tp.topic, tp.partition, highwater, reported[tp])
                        reported[tp] = highwater
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return reported
