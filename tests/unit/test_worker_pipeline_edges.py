"""The worker's pipeline at its edges, without a broker: periods settle only when every source
partition has passed them, events on the wrong partition are refused, and records of the
worker's own that it cannot read are handled by policy, never by a crash."""

import itertools
import json
from datetime import datetime

import pytest
from test_worker_pipeline import PARTITIONS, deliver_facts

from auditor.engine.engine import AuditEngine
from auditor.engine.facts import AggregateFact
from auditor.engine.periods import DAY
from auditor.events.decode import EventDecoder
from auditor.metrics.counters import RunCounters
from auditor.simulate.generator import Simulator
from auditor.worker.partitioning import expected_partition
from auditor.worker.pipeline import FACTS_MAX_BYTES, Pipeline, StateTables
from auditor.worker.records import (
    FORMAT,
    LOG_FORMAT,
    UnreadableRecord,
    decode_facts,
    encode_facts,
)


@pytest.fixture(scope="module")
def keyed() -> list[tuple[int, bytes, bytes]]:
    """(partition, key, line) of a simulated stream, partitioned as the contract says."""
    out = []
    for text in Simulator(accounts=800, months=15, seed=21).lines():
        key = json.loads(text)["account_id"].encode()
        out.append((expected_partition(key, PARTITIONS), key, text.encode()))
    return out


def _pipeline(rules, counters=None, tables=None) -> Pipeline:
    return Pipeline(rules, counters or RunCounters(), tables or StateTables({}, {}, {}), 30.0,
                    PARTITIONS)


def _settles_at(rules, alert) -> float:
    rule = next(r for r in rules.aggregate_rules if r.meta.id == alert.rule)
    end = datetime.fromisoformat(alert.event_time.replace("Z", "+00:00")).timestamp()
    return end + (rule.settle_days + 30.0) * DAY


def test_the_fastest_partition_does_not_settle_a_period(rules, keyed):
    """Partition 0 is read to its end before the others start (a consumer can do that): with
    the largest watermark, its quarters would settle while the others still fill them."""
    first = [item for item in keyed if item[0] == 0]
    rest = [item for item in keyed if item[0] != 0]
    pipeline = _pipeline(rules)
    worker = []
    for n, (partition, key, line) in enumerate(first + rest):
        worker += pipeline.on_input("t", partition, n, key, line).alerts
        worker += deliver_facts(pipeline)
        if n == len(first) - 1:  # partition 0 is done; nothing may have settled yet
            assert [a for a in worker if a.period] == []
    engine, decoder = AuditEngine(rules), EventDecoder(rules.currency)
    replay = [a for _, _, line in keyed for a in engine.process(decoder.decode(line, "x"))]
    replay += engine.flush()
    # Heartbeats say a source's watermark once a day: compare periods settled a day before.
    settled_by = min(j.store.watermark for j in pipeline.joins.values()) - DAY
    expected = {a.alert_id: a for a in replay if a.period and _settles_at(rules, a) <= settled_by}
    got = {a.alert_id: a for a in worker if a.period and _settles_at(rules, a) <= settled_by}
    assert len(expected) >= 10
    assert got.keys() == expected.keys()
    for alert_id, alert in got.items():
        assert alert.to_dict() == expected[alert_id].to_dict()


def test_an_event_on_the_wrong_partition_is_a_dead_letter(rules, keyed):
    counters = RunCounters()
    pipeline = _pipeline(rules, counters)
    right, key, line = keyed[0]
    wrong = (right + 1) % PARTITIONS
    [letter] = pipeline.on_input("deals.closed", wrong, 7, key, line).deadletters
    assert (letter.reason, letter.source) == ("wrong_partition", f"deals.closed/{wrong}/7")
    assert f"partition {right} of {PARTITIONS}" in letter.detail
    assert "partitioner=murmur2_random" in letter.detail
    assert counters.deadletters["wrong_partition"] == 1
    assert counters.events_by_outcome() == {"invalid": 1}
    assert pipeline.on_input("deals.closed", right, 8, key, line).deadletters == []
    assert counters.events_by_outcome() == {"invalid": 1, "processed": 1}


@pytest.mark.parametrize("value", [
    b"not json", b"[]", json.dumps({"v": FORMAT + 1, "source": 0, "watermark": 0,
                                    "facts": []}).encode(),
    json.dumps({"source": 0, "watermark": 0, "facts": []}).encode(),  # before versions
    json.dumps({"v": FORMAT, "source": 0, "watermark": 0, "facts": [{"x": 1}]}).encode(),
    None,
])
def test_a_facts_message_that_cannot_be_read_is_a_dead_letter(rules, value):
    counters = RunCounters()
    out = _pipeline(rules, counters).on_facts(2, 9, "g-aggregate-facts", value)
    [letter] = out.deadletters
    assert (letter.reason, letter.source) == ("unreadable_record", "g-aggregate-facts/2/9")
    assert counters.deadletters["unreadable_record"] == 1
    assert counters.events_by_outcome() == {}  # not an input event


def test_state_that_cannot_be_read_starts_afresh(rules, keyed):
    partition, key, line = keyed[0]
    account = key.decode()
    tables = StateTables({account: {"v": FORMAT + 9, "p": partition, "s": {}}}, {},
                         {f"accounts/{partition}/deal_closed": {"w": 1.0}})  # no version
    counters = RunCounters()
    pipeline = _pipeline(rules, counters, tables)
    out = pipeline.on_input("t", partition, 0, key, line)
    assert out.deadletters == []
    assert pipeline.unreadable == 2
    assert counters.events_by_outcome() == {"processed": 1}
    state = pipeline.joins[partition].store.get(account)
    assert state is not None and state.has_event(json.loads(line)["event_id"])  # afresh
    records = [r for r in pipeline.state_records() if r.table == "accounts"]
    # The unreadable record's key is tombstoned once a snapshot of the log replaces it.
    [snapshot, tombstone] = records
    assert json.loads(snapshot.value)["v"] == LOG_FORMAT
    assert account in json.loads(snapshot.value)["states"]
    assert (tombstone.key, tombstone.value, tombstone.cleanup) == (account, None, True)


def test_facts_messages_stay_under_the_limit():
    facts = [AggregateFact("deal", "r", "g", "2026-Q1", 0.0, f"a{n}", f"d{n}", "new_logo",
                           1.0, 2.0, 0.5) for n in range(500)]
    # An event's facts (three here) travel together, whatever the split.
    events = [("deals" if n % 2 else "churns", n, facts[3 * n:3 * n + 3])
              for n in range((len(facts) + 2) // 3)]
    values = encode_facts(3, 12.5, events, 4096)
    assert len(values) > 1
    assert all(len(v) <= 4096 for v in values)
    records = [decode_facts(v) for v in values]
    assert all(r.watermarks == {3: 12.5} for r in records)
    back = list(itertools.chain.from_iterable(r.facts for r in records))
    assert [f.to_dict() for f in back] == [f.to_dict() for f in facts]
    positions = [p for r in records for p in r.positions or ()]
    assert positions == [(topic, n) for topic, n, group in events for _ in group]
    for r in records:  # no event split between two messages
        assert not {n for _, n in r.positions or ()} & {
            n for other in records if other is not r for _, n in other.positions or ()}


def test_a_source_that_sends_no_facts_still_moves_every_partition(rules, keyed):
    pipeline = _pipeline(rules)
    for n, (partition, key, line) in enumerate(keyed[:200]):
        pipeline.on_input("t", partition, n, key, line)
    _, beats = pipeline.facts_messages()
    # One message to each partition, with every source's watermark.
    assert sorted(m.partition for m in beats) == list(range(PARTITIONS))
    assert all(decode_facts(m.value).watermarks == {
        s: j.store.watermark for s, j in pipeline.joins.items()} for m in beats)


def test_facts_go_as_rows_and_the_previous_form_is_still_read():
    fact = AggregateFact("churned", "r", "g", "2026-Q1", 1.7e9, "a", "d", "renewal", 1.0, 2.0,
                         0.5, days=12.0, money_class="recoverable", plan_id="p", team="t",
                         deal_time=1.6e9, values=(1.0, 2.0, 0.0, 1.0, 2.0, 0.0))
    [value] = encode_facts(1, 5.0, [("deals-topic", 41, [fact])], FACTS_MAX_BYTES)
    assert b'"account_id"' not in value  # no field names per fact
    record = decode_facts(value)
    [back] = record.facts
    assert back.to_dict() == fact.to_dict() and back.member == fact.member
    assert record.positions == [("deals-topic", 41)]
    # The previous forms: fields by name, and rows without positions.
    for previous in ({"v": 2, "source": 1, "watermark": 5.0, "facts": [fact.to_dict()]},
                     {"v": 2, "source": 1, "watermark": 5.0, "rows": [fact.to_row()]}):
        old = decode_facts(json.dumps(previous).encode())
        assert [f.to_dict() for f in old.facts] == [fact.to_dict()]
        assert old.positions is None
    for row in ([*fact.to_row()[:-1], 0, 41],  # a field short
                [*fact.to_row(), 1, 41],  # no such topic
                [*fact.to_row(), 0, "41"]):  # an offset that is not one
        with pytest.raises(UnreadableRecord):
            decode_facts(json.dumps({"v": 2, "source": 1, "watermark": 5.0,
                                     "topics": ["deals-topic"], "rows": [row]}).encode())
