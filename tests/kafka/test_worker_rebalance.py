"""A rebalance and the batch in hand, without a broker: the worker's own rebalance receivers.

Recovery writes every changelog record over the table in memory, so the batch in hand must have
logged its state before it starts (or its changes would be put back to older values), and no
batch may change state until the tables are recovered.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from kafka_helpers import deal_event, murmur2_partition

from auditor.cli.common import load_rules_or_exit
from auditor.worker.app import AuditorWorker
from auditor.worker.settings import WorkerSettings

TOPIC = "deals.closed"


def _worker(tmp_path: Path) -> AuditorWorker:
    settings = WorkerSettings(brokers=("127.0.0.1:9",), group_id="rebalance-test",
                              data_dir=tmp_path / "data", session_timeout=4, reload_seconds=0)
    return AuditorWorker(settings, load_rules_or_exit(None))


def _message(offset: int, account: str) -> Any:
    value = json.dumps(deal_event(offset, account=account)).encode()
    partition = murmur2_partition(account.encode(), 4)
    return SimpleNamespace(topic=TOPIC, partition=partition, offset=offset, key=account.encode(),
                           value=value, tp=TP(TOPIC, partition))


def _logged_accounts(worker: AuditorWorker) -> set[str]:
    """The accounts whose state the accounts table's log records hold."""
    return {account for value in worker.tables.accounts.data.values()
            for account in json.loads(value)["states"]}


def test_a_rebalance_waits_for_the_batch_in_hand_and_holds_the_next(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    batches, app = worker.batches, worker.app
    sent: list[str] = []
    delivering = asyncio.Event()

    async def deliver(records: Any) -> None:
        await delivering.wait()  # the broker acknowledges only when the test says so
        sent.extend(r.output for r in records)

    batches.delivery.deliver = deliver  # type: ignore[method-assign]

    async def scenario() -> None:
        in_hand = asyncio.ensure_future(batches.events([_message(0, "acct-1")]))
        await asyncio.sleep(0.05)
        revoked = asyncio.ensure_future(app.on_partitions_revoked.send(set()))
        await asyncio.sleep(0.2)
        assert not revoked.done(), "the rebalance went on while a batch had state to log"

        delivering.set()
        await asyncio.wait_for(revoked, 2)
        assert in_hand.done() and "state" in sent  # its state logged before the recovery

        # Until the tables are recovered, a batch (what faust had already buffered) changes
        # nothing and marks nothing done: its messages are read again after the rebalance.
        sent.clear()
        await batches.events([_message(1, "acct-2")])
        assert sent == [] and worker.gate.limit(_message(1, "acct-2").tp) == -1
        assert "acct-2" not in _logged_accounts(worker)

        await app.on_rebalance_complete.send()
        await batches.events([_message(1, "acct-2")])
        assert "state" in sent and "acct-2" in _logged_accounts(worker)

    asyncio.run(scenario())


def test_the_consumer_thread_fetches_for_a_snapshot_of_the_active_partitions(
        tmp_path: Path) -> None:
    from faust.transport.consumer import ThreadDelegateConsumer

    _worker(tmp_path)  # the worker applies its faust fixes (auditor/worker/compat.py)
    active = {TP(TOPIC, 0), TP(TOPIC, 1)}
    seen: list[Any] = []

    class Thread:  # faust's consumer thread, which hands the partitions to aiokafka
        async def getmany(self, partitions: Any, timeout: float) -> Any:
            seen.append(partitions)
            active.clear()  # a rebalance pauses every partition while the fetch waits
            return {tp: [] for tp in partitions}

    consumer = SimpleNamespace(_thread=Thread())
    fetched = asyncio.run(ThreadDelegateConsumer._getmany(consumer, active, 1.0))
    # aiokafka takes an emptied set for "every partition": it must get its own copy.
    assert seen == [frozenset({TP(TOPIC, 0), TP(TOPIC, 1)})]
    assert set(fetched) == {TP(TOPIC, 0), TP(TOPIC, 1)}

    seen.clear()  # and nothing is fetched for no partition at all
    assert asyncio.run(ThreadDelegateConsumer._getmany(consumer, set(), 1.0)) == {}
    assert seen == []
