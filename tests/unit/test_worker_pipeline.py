"""The worker's pipeline without a broker: per-partition stages over plain-dict tables, fed in
the orders a consumer of two topics can see, give replay's per-deal alerts."""

import json

import pytest
from unit_helpers import recovered_states

from auditor.engine.engine import AuditEngine
from auditor.engine.state import AccountState, AggregateState
from auditor.events.decode import EventDecoder
from auditor.metrics.counters import RunCounters
from auditor.simulate.generator import Simulator
from auditor.worker import state_log
from auditor.worker.partitioning import expected_partition
from auditor.worker.pipeline import Pipeline, StateTables
from auditor.worker.records import decode_facts
from auditor.worker.tables import TableAggregateStore

PARTITIONS = 4


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return [line.encode() for line in Simulator(accounts=1500, seed=13).lines()]


def _replay_ids(rules, lines) -> set[str]:
    engine, decoder = AuditEngine(rules), EventDecoder(rules.currency)
    alerts = [a for line in lines for a in engine.process(decoder.decode(line, "x"))]
    return {a.alert_id for a in alerts if a.deal_id is not None}


def deliver_facts(pipeline: Pipeline) -> list:
    """The facts messages as the repartition topic delivers them: by key, or to the partition
    a heartbeat names."""
    alerts = []
    facts, heartbeats = pipeline.facts_messages()
    for n, message in enumerate(facts + heartbeats):
        partition = (message.partition if message.key is None
                     else expected_partition(message.key.encode(), PARTITIONS))
        alerts += pipeline.on_facts(partition, n, "facts", message.value).alerts
    return alerts


def _feed(pipeline: Pipeline, lines, offset: int = 0) -> set[str]:
    ids: set[str] = set()
    for n, line in enumerate(lines, offset):
        key = json.loads(line)["account_id"].encode()
        partition = expected_partition(key, PARTITIONS)  # as the producer partitions
        out = pipeline.on_input("t", partition, n, key, line)
        ids |= {a.alert_id for a in out.alerts}
        deliver_facts(pipeline)
    return ids


@pytest.mark.parametrize("order", ["as produced", "churns first", "deals first"])
def test_any_interleaving_of_the_two_topics_gives_replays_alerts(rules, lines, order):
    deals = [line for line in lines if b'"deal_closed"' in line]
    churns = [line for line in lines if b'"account_churned"' in line]
    arrival = {"as produced": lines, "churns first": churns + deals,
               "deals first": deals + churns}[order]
    counters = RunCounters()
    got = _feed(Pipeline(rules, counters, StateTables({}, {}, {}), 30.0), arrival)
    assert got == _replay_ids(rules, lines)
    assert counters.events_by_outcome().get("late", 0) == 0  # the slower topic holds expiry


def recover(records, tables: StateTables | None = None) -> StateTables:
    """Tables as faust recovers them from the changelogs: each record in order, its value
    decoded from JSON, a tombstone deleting its key."""
    tables = tables or StateTables({}, {}, {})
    for r in records:
        table = getattr(tables, r.table)
        if r.value is None:
            table.pop(r.key, None)
        else:
            table[r.key] = json.loads(r.value)
    return tables


@pytest.mark.parametrize("snapshot_every", [1, 20_000, 10**9])
def test_a_pipeline_rebuilt_from_the_changelogs_continues(rules, lines, snapshot_every,
                                                           monkeypatch):
    """A restart: new stages over tables recovered from the records logged batch by batch,
    with snapshots (and their tombstones) taken often or not at all."""
    monkeypatch.setattr(state_log, "MIN_BYTES_BETWEEN_SNAPSHOTS", snapshot_every)
    pipeline = Pipeline(rules, RunCounters(), StateTables({}, {}, {}), 30.0)
    half, records = len(lines) // 2, []
    first: set[str] = set()
    for start in range(0, half, 97):
        first |= _feed(pipeline, lines[start:min(start + 97, half)], start)
        records += pipeline.state_records()
    tables = recover(records)
    if snapshot_every < 10**9:
        # Snapshots replaced the older records: what is left logs about the live states once
        # or twice (a snapshot, and deltas since it), not every change since the start.
        assert any(r.cleanup for r in records)
        live = recovered_states(tables.accounts, AccountState.from_dict)
        logged = sum(len(v["states"]) for v in tables.accounts.values())
        assert len(live) <= logged <= 2 * len(live) + 4 * 97
        assert logged < sum(len(json.loads(r.value)["states"]) for r in records
                            if r.table == "accounts" and r.value)
    second = _feed(Pipeline(rules, RunCounters(), tables, 30.0), lines[half:], half)
    assert first | second == _replay_ids(rules, lines)
    assert not first & second  # nothing fired twice


def test_redelivered_facts_change_nothing(rules, lines):
    pipeline = Pipeline(rules, RunCounters(), StateTables({}, {}, {}), 30.0)
    line = next(line for line in lines if b'"new_logo"' in line)
    key = json.loads(line)["account_id"].encode()
    pipeline.on_input("t", expected_partition(key, PARTITIONS), 0, key, line)
    messages, _ = pipeline.facts_messages()
    assert messages
    for m in messages:
        pipeline.on_facts(0, 0, "facts", m.value)
    pipeline.state_records()

    def logged() -> dict:
        states = recovered_states(pipeline.tables.aggregates, AggregateState.from_dict)
        return {k: state.to_dict() for k, state in states.items()}

    before = logged()
    assert before
    for m in messages:
        assert pipeline.on_facts(0, 1, "facts", m.value).alerts == []
    pipeline.state_records()
    assert logged() == before


def _feed_batches(pipeline: Pipeline, lines, size: int) -> None:
    """Events in batches of `size`, as the input agent takes them: the batch's facts are sent
    after it, then the aggregate side's state is logged (the join side's is not)."""
    for start in range(0, len(lines), size):
        for n, line in enumerate(lines[start:start + size], start):
            key = json.loads(line)["account_id"].encode()
            pipeline.on_input("t", expected_partition(key, PARTITIONS), n, key, line)
        deliver_facts(pipeline)
        pipeline.aggregate_state_records()


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _logged_periods(pipeline: Pipeline) -> dict:
    states = recovered_states(pipeline.tables.aggregates, AggregateState.from_dict)
    return {k: _rounded(state.to_dict()) for k, state in states.items()}


def test_facts_sent_again_by_a_restarted_source_count_once(rules, lines, monkeypatch):
    """The join side stops after its facts were delivered and before its state was logged:
    restarted without that state, it audits the same events again, in other batches, and sends
    their facts again. The aggregate side, rebuilt from its log, applies each event's facts
    once: its periods are those of a run that sent everything once."""
    cut, end = 700, 1400
    once = Pipeline(rules, RunCounters(), StateTables({}, {}, {}), 30.0)
    _feed_batches(once, lines[:end], 100)
    expected = _logged_periods(once)
    assert sum(p["count"] for p in expected.values()) > 500

    crashed = Pipeline(rules, RunCounters(), StateTables({}, {}, {}), 30.0)
    _feed_batches(crashed, lines[:cut], 100)

    def restart() -> Pipeline:
        restarted = Pipeline(rules, RunCounters(),
                             StateTables({}, dict(crashed.tables.aggregates), {}), 30.0)
        _feed_batches(restarted, lines[:end], 70)
        return restarted

    restarted = restart()
    assert _logged_periods(restarted) == expected
    assert restarted.redelivered_facts > 0
    # The same restart without the marks counts the first events' deals twice.
    monkeypatch.setattr(TableAggregateStore, "applied", lambda self, source, topic: -1)
    twice = _logged_periods(restart())
    assert sum(p["count"] for p in twice.values()) > sum(
        p["count"] for p in expected.values())


@pytest.mark.parametrize(("key", "value", "reason"), [
    (b"acct-1", b"", "empty"),
    (b"acct-1", None, "empty"),
    (None, None, "empty"),
    (b"acct-1", b"{oops", "bad_json"),
])
def test_bad_messages_become_dead_letters_with_their_source(rules, key, value, reason):
    counters = RunCounters()
    out = Pipeline(rules, counters, StateTables({}, {}, {}), 30.0).on_input(
        "deals.closed", 2, 41, key, value)
    [letter] = out.deadletters
    assert (letter.reason, letter.source) == (reason, "deals.closed/2/41")
    assert counters.events_by_outcome() == {"invalid": 1}


def test_the_key_must_be_the_account(rules, lines):
    line = next(line for line in lines if b'"deal_closed"' in line)
    pipeline = Pipeline(rules, RunCounters(), StateTables({}, {}, {}), 30.0)
    [missing] = pipeline.on_input("t", 0, 0, None, line).deadletters
    [wrong] = pipeline.on_input("t", 0, 1, b"someone-else", line).deadletters

    assert (missing.reason, wrong.reason) == ("null_key", "key_mismatch")
    assert missing.original == line.decode()


def test_a_batch_sends_one_facts_message_per_source_and_destination_partition(rules, lines):
    """Facts are combined per destination partition: a batch of many deals sends at most one
    message per (source, aggregate partition), each fact where its key maps to."""
    pipeline = Pipeline(rules, RunCounters(), StateTables({}, {}, {}), 30.0)
    batch = lines[:400]
    sources = set()
    for n, line in enumerate(batch):
        key = json.loads(line)["account_id"].encode()
        sources.add(expected_partition(key, PARTITIONS))
        pipeline.on_input("t", expected_partition(key, PARTITIONS), n, key, line)
    messages, _ = pipeline.facts_messages()
    places = [(*decode_facts(m.value).watermarks, m.partition) for m in messages]
    assert len(places) == len(set(places)) <= len(sources) * PARTITIONS
    facts = 0
    for message in messages:
        assert message.key is None
        for fact in decode_facts(message.value).facts:
            assert expected_partition(fact.key.encode(), PARTITIONS) == message.partition
            facts += 1
    assert facts > 10 * len(messages)  # hundreds of facts, a handful of messages
