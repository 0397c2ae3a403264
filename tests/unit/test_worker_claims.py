"""Aggregate findings' money reaches the deals' ledgers in the worker as in replay: the
aggregate stage's alerts give claims, sent over the claims topic to the account's partition and
applied there by its join stage, so the worker's de-duplicated totals by money class
(`RunCounters.flagged`) are replay's, and a claims message delivered twice adds nothing."""

import asyncio
import json
from types import SimpleNamespace

import pytest
from faust.types import TP
from test_worker_delivery import FakeTopic
from test_worker_pipeline import PARTITIONS
from unit_helpers import churn_dict, deal_dict, raw, recovered_states

from auditor.engine.engine import AuditEngine, claims_of
from auditor.engine.join_stage import Claim
from auditor.engine.state import AccountState
from auditor.events.decode import EventDecoder
from auditor.metrics.counters import RunCounters
from auditor.simulate.generator import Simulator
from auditor.worker.batches import Batches, OutputTopics
from auditor.worker.commit_gate import CommitGate
from auditor.worker.partitioning import expected_partition
from auditor.worker.pipeline import FACTS_MAX_BYTES, Pipeline, StateTables
from auditor.worker.records import (
    FORMAT,
    LedgerBeat,
    UnreadableRecord,
    decode_claims,
    decode_facts,
    encode_beat,
    encode_claims,
    encode_facts,
)

RULE = "rep-early-churn-rate"
CLAIMS = "g-money-claims"
# A watermark past every period's settle time and horizon: time has moved on.
LATER = 4102444800.0  # 2100-01-01


class Worker:
    """The pipeline fed as the worker's agents feed it, the topics delivered by hand: facts by
    key (murmur2) or to the partition a heartbeat names, claims to the partition they name."""

    def __init__(self, rules, send_claims: bool = True) -> None:
        self.counters = RunCounters()
        self.tables = StateTables({}, {}, {})
        self.pipeline = Pipeline(rules, self.counters, self.tables, 30.0, PARTITIONS)
        self.send_claims = send_claims
        self.alerts: list = []
        self.claims: list = []  # every claims message sent, as (key, partition, value)
        self.offset = 0

    def event(self, line: bytes) -> None:
        key = json.loads(line)["account_id"].encode()
        self.offset += 1
        out = self.pipeline.on_input("t", expected_partition(key, PARTITIONS), self.offset, key,
                                     line)
        assert out.deadletters == []
        self.alerts += out.alerts
        facts, beats = self.pipeline.facts_messages()
        self.facts(facts + beats)

    def facts(self, messages) -> None:
        found = []
        for message in messages:
            partition = (message.partition if message.key is None
                         else expected_partition(message.key.encode(), PARTITIONS))
            self.offset += 1
            out = self.pipeline.on_facts(partition, self.offset, "facts", message.value)
            assert out.deadletters == []
            found += out.alerts
        self.alerts += found
        # As the facts agent does once the alerts are delivered.
        for m in self.pipeline.claims_messages(found):
            self.claims.append((m.key.encode(), m.partition, m.value))
            if self.send_claims:
                self.claim(m.key.encode(), m.partition, m.value)

    def claim(self, key: bytes, partition: int, value: bytes):
        self.offset += 1
        return self.pipeline.on_claims(CLAIMS, partition, self.offset, key, value)

    def later(self) -> None:
        """Every source's watermark far ahead, to every aggregate partition: all settles."""
        self.facts([SimpleNamespace(key=None, partition=p, value=beat)
                    for source in range(PARTITIONS)
                    for [beat] in [encode_facts(source, LATER, [], FACTS_MAX_BYTES)]
                    for p in range(PARTITIONS)])


def _replay(rules, lines):
    counters = RunCounters()
    engine, decoder = AuditEngine(rules, counters), EventDecoder(rules.currency)
    alerts = [a for line in lines for a in engine.process(decoder.decode(line, "x"))]
    return counters, alerts + engine.flush()


def _cents(flagged) -> dict:
    return {k: round(v, 2) for k, v in flagged.items() if round(v, 2)}


def _ledgers(tables) -> dict:
    """The deals' ledgers as the accounts' logged records give them."""
    return {k: state.to_dict()["flagged"]
            for k, state in recovered_states(tables.accounts, AccountState.from_dict).items()}


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return [line.encode() for line in Simulator(accounts=1500, seed=13).lines()]


@pytest.fixture(scope="module")
def worker(rules, lines) -> Worker:
    w = Worker(rules)
    for line in lines:
        w.event(line)
    w.later()
    return w


def test_the_stream_has_aggregate_money_of_both_classes(worker):
    classes = {c.money_class for c in claims_of([a for a in worker.alerts if a.rule == RULE])}
    assert {"recoverable", "unrecovered"} <= classes


def test_worker_flagged_totals_equal_replays(rules, lines, worker):
    replayed, alerts = _replay(rules, lines)
    aggregates = {a.alert_id for a in alerts if a.kind == "aggregate"}
    assert {a.alert_id for a in worker.alerts if a.kind == "aggregate"} == aggregates
    assert _cents(worker.counters.flagged) == _cents(replayed.flagged)
    assert _cents(worker.counters.money_by_quarter) == _cents(replayed.money_by_quarter)


def test_claims_add_what_no_per_deal_finding_flags_and_nothing_twice(rules, lines, worker):
    """Recoverable money of churned deals is flagged by the aggregate alone: without the
    claims the worker's total falls short. Its unrecovered deals are early-churn-unrecovered
    findings too, of the same amount: the claims add nothing there, the deal counted once."""
    short = Worker(rules, send_claims=False)
    for line in lines:
        short.event(line)
    short.later()
    assert short.claims == worker.claims

    def total(counters, money_class):
        return round(sum(v for k, v in counters.flagged.items() if k[0] == money_class), 2)

    assert total(short.counters, "recoverable") < total(worker.counters, "recoverable") - 1
    assert total(short.counters, "unrecovered") == total(worker.counters, "unrecovered")
    claimed = sum(c.amount for c in claims_of(worker.alerts) if c.money_class == "unrecovered")
    assert claimed > 1


def test_a_redelivered_claims_message_changes_nothing(rules, lines):
    w = Worker(rules)
    for line in lines:
        w.event(line)
    sent = len(w.claims)
    w.later()
    assert w.claims[sent:]
    w.pipeline.state_records()
    flagged, ledgers = dict(w.counters.flagged), _ledgers(w.tables)
    # What a restart redelivers: the claims since the last commit. (Claims older than the
    # ledger's horizon -- a deal's time + the rules' window + lateness + two quarters -- find
    # their entry gone; no redelivery reaches that far back.)
    for key, partition, value in w.claims[sent:]:
        out = w.claim(key, partition, value)
        assert (out.alerts, out.deadletters) == ([], [])
    assert dict(w.counters.flagged) == flagged
    w.pipeline.state_records()
    assert _ledgers(w.tables) == ledgers
    assert w.counters.events_by_outcome() == _replay(rules, lines)[0].events_by_outcome()


def _scenario(account_prefix: str = "acct"):
    """Four deals of one rep in 2026-Q1, one with a clawback; two fully churned within 90
    days: rep-early-churn-rate fires with one recoverable and one unrecovered deal."""
    deals = [deal_dict(rep_id="rep-q", account_id=f"{account_prefix}-{n}", deal_id=f"D{n}",
                       days=float(n), commission={"amount": 1000.0, "paid_upfront": 100.0 + n,
                                                  "clawback_days": 180 if n == 0 else 0})
             for n in range(4)]
    churns = [churn_dict(account_id=f"{account_prefix}-{n}", days=30.0) for n in (0, 1)]
    return [raw(e) for e in deals + churns]


def test_claims_of_a_hand_made_stream_reach_the_accounts_partitions(rules):
    w = Worker(rules)
    for line in _scenario():
        w.event(line)
    assert not [a for a in w.alerts if a.rule == RULE]  # not settled yet
    w.later()
    [alert] = [a for a in w.alerts if a.rule == RULE]
    money = {(d["account_id"], d["class"]): d["amount"] for d in alert.evidence["money_by_deal"]}
    assert money == {("acct-0", "recoverable"): 100.0, ("acct-1", "unrecovered"): 101.0}
    # One message per account, keyed by it, on the partition murmur2 gives it.
    assert sorted(k for k, _, _ in w.claims if k) == [b"acct-0", b"acct-1"]
    for key, partition, _ in [c for c in w.claims if c[0]]:
        assert partition == expected_partition(key, PARTITIONS)
    # In the ledger of the deal's account, on its partition; counted once with replay's.
    w.pipeline.state_records()
    home = expected_partition(b"acct-0", PARTITIONS)
    ledger = recovered_states({k: v for k, v in w.tables.accounts.items()
                               if k.startswith(f"~log/{home}/")}, AccountState.from_dict)["acct-0"]
    [entry] = [f for f in ledger.flagged if f.deal_id == "D0"]
    assert entry.amount("recoverable") == 100.0
    replayed, _ = _replay(rules, _scenario())
    assert _cents(w.counters.flagged) == _cents(replayed.flagged)
    assert w.counters.events_by_outcome() == {"processed": 6}  # claims are not events


def test_claims_records_round_trip_and_split():
    claims = [Claim("a-1", f"D{n}", "unrecovered", 10.5 + n, "plan", "team", 1.7e9 + n)
              for n in range(300)]
    values = encode_claims("a-1", claims, 4096)
    assert len(values) > 1 and all(len(v) <= 4096 for v in values)
    back = [c for v in values for c in decode_claims(v)[1]]
    assert back == claims
    assert json.loads(values[0])["v"] == FORMAT


@pytest.mark.parametrize("value", [
    None, b"", b"{oops", b"[]", b'{"v": 99, "account_id": "a", "claims": []}',
    b'{"v": 1, "claims": []}',
    b'{"v": 1, "account_id": "a", "claims": [{"deal_id": "D"}]}',
    b'{"v": 1, "account_id": "a", "claims": [{"deal_id": 5, "money_class": "x", "amount": 1,'
    b' "plan_id": "p", "team": "t", "time": 0}]}',
    b'{"v": 1, "account_id": "a", "claims": [{"deal_id": "D", "money_class": "x",'
    b' "amount": NaN, "plan_id": "p", "team": "t", "time": 0}]}',
    b'{"v": 1, "account_id": "a", "claims": [{"deal_id": "D", "money_class": "x",'
    b' "amount": -1, "plan_id": "p", "team": "t", "time": 0}]}',
])
def test_a_claims_message_that_cannot_be_read_is_a_dead_letter(rules, value):
    if value not in (None, b""):
        with pytest.raises(UnreadableRecord):
            decode_claims(value)
    counters = RunCounters()
    pipeline = Pipeline(rules, counters, StateTables({}, {}, {}), 30.0, PARTITIONS)
    out = pipeline.on_claims(CLAIMS, 2, 9, b"a", value)
    [letter] = out.deadletters
    assert (letter.reason, letter.source) == ("unreadable_record", f"{CLAIMS}/2/9")
    assert counters.deadletters["unreadable_record"] == 1
    assert pipeline.unreadable == 1
    assert counters.events_by_outcome() == {}  # not an input event
    assert counters.flagged == {}


@pytest.mark.parametrize("where", ["wrong_partition", "key_mismatch"])
def test_claims_elsewhere_than_the_accounts_partition_are_refused(rules, where):
    claim = Claim("acct-7", "D1", "unrecovered", 50.0, "plan", "team", 1.7e9)
    [value] = encode_claims("acct-7", [claim], FACTS_MAX_BYTES)
    home = expected_partition(b"acct-7", PARTITIONS)
    key, partition = ((b"acct-7", (home + 1) % PARTITIONS) if where == "wrong_partition"
                      else (b"acct-8", home))
    counters = RunCounters()
    tables = StateTables({}, {}, {})
    pipeline = Pipeline(rules, counters, tables, 30.0, PARTITIONS)
    [letter] = pipeline.on_claims(CLAIMS, partition, 3, key, value).deadletters
    assert letter.reason == where
    assert letter.original == value.decode()
    assert counters.deadletters[where] == 1
    assert counters.events_by_outcome() == {}
    assert counters.flagged == {} and tables.accounts == {}
    # Where it belongs, it is applied.
    assert pipeline.on_claims(CLAIMS, home, 4, b"acct-7", value).deadletters == []
    assert sum(counters.flagged.values()) == 50.0


class Ordered(FakeTopic):
    """Records every send of every topic in one list, in order."""

    def __init__(self, name: str, log: list) -> None:
        super().__init__(name)
        self.log = log

    async def send(self, key, value, partition=None, key_serializer=None,
                   value_serializer=None):
        self.log.append(self.name)
        return await super().send(key, value, partition, key_serializer, value_serializer)


def _message(topic: str, partition: int, offset: int, key: bytes | None, value: bytes):
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key,
                           value=value, tp=TP(topic, partition))


def test_batches_send_claims_after_the_alerts_and_apply_them_with_the_events(rules):
    """The facts agent sends a batch's claims once its alerts are delivered, before its state;
    the input agent applies claims in its batches, logs the state they changed with the
    batch's own, and marks their offsets done; neither agent logs the other's state."""
    log: list[str] = []
    counters = RunCounters()
    pipeline = Pipeline(rules, counters, StateTables({}, {}, {}), 30.0, PARTITIONS)
    topics = OutputTopics(Ordered("alerts", log), Ordered("dead", log), Ordered("facts", log),
                          {name: Ordered(name, log)
                           for name in ("accounts", "aggregates", "watermarks")},
                          Ordered(CLAIMS, log))
    inputs = ("deals.closed", "accounts.churned")
    gate = CommitGate({*inputs, "facts", CLAIMS})
    batches = Batches(pipeline, topics, gate)

    events = []
    for n, line in enumerate(_scenario("b")):
        key = json.loads(line)["account_id"].encode()
        topic = inputs[0] if b'"deal_closed"' in line else inputs[1]
        events.append(_message(topic, expected_partition(key, PARTITIONS), n, key, line))
    asyncio.run(batches.events(events))
    assert "aggregates" not in log  # the input agent logs the join stages' state only

    facts = [_message("facts", expected_partition(k, PARTITIONS) if p is None else p, n, k, v)
             for n, (k, v, p) in enumerate(topics.facts.sent)]
    facts += [_message("facts", p, len(facts) + s * PARTITIONS + p, None, beat)
              for s in range(PARTITIONS)
              for [beat] in [encode_facts(s, LATER, [], FACTS_MAX_BYTES)]
              for p in range(PARTITIONS)]
    log.clear()
    asyncio.run(batches.facts(facts))
    assert log.index(CLAIMS) > max(i for i, name in enumerate(log) if name == "alerts")
    assert log.index("aggregates") > max(i for i, name in enumerate(log) if name == CLAIMS)
    assert "accounts" not in log  # nor the facts agent the accounts'
    sent = topics.claims.sent
    # The claims, then a LedgerBeat (no key) with the aggregate stages' watermarks to every
    # partition.
    assert sorted(k for k, _, _ in sent if k) == [b"b-0", b"b-1"]
    assert all(p == expected_partition(k, PARTITIONS) for k, _, p in sent if k)
    assert sorted(p for k, _, p in sent if not k) == list(range(PARTITIONS))
    assert {stage for k, v, _ in sent if not k
            for stage in decode_claims(v).watermarks} == set(range(PARTITIONS))

    before = sum(counters.flagged.values())
    log.clear()
    claims = [_message(CLAIMS, p, n, k, v) for n, (k, v, p) in enumerate(sent)]
    asyncio.run(batches.events(claims))
    after = dict(counters.flagged)
    assert sum(after.values()) >= before + 100.0  # the recoverable deal, flagged by no other
    assert _cents(after) == _cents(_replay(rules, _scenario("b"))[0].flagged)
    assert "accounts" in log  # the ledgers changed are logged with the batch
    ends = {m.tp: m.offset + 1 for m in claims}  # offsets grow within a partition
    assert {tp: gate.limit(tp) for tp in ends} == ends
    asyncio.run(batches.events(claims))  # delivered again: nothing more
    assert dict(counters.flagged) == after


def test_neither_agent_logs_state_the_other_batch_has_not_delivered_for(rules):
    """A facts batch waiting for the broker to take its alerts: an input batch that runs
    meanwhile logs its own accounts' state, not the periods whose alerts are not out yet (a
    crash then would recover them as fired, and the alerts would be lost)."""
    log: list[str] = []
    alerts = Ordered("alerts", log)
    counters = RunCounters()
    pipeline = Pipeline(rules, counters, StateTables({}, {}, {}), 30.0, PARTITIONS)
    topics = OutputTopics(alerts, Ordered("dead", log), Ordered("facts", log),
                          {name: Ordered(name, log)
                           for name in ("accounts", "aggregates", "watermarks")},
                          Ordered(CLAIMS, log))
    batches = Batches(pipeline, topics, CommitGate({"deals.closed", "facts", CLAIMS}))
    batches.delivery.first_retry = 0.01
    lines = _scenario("c")
    events = [_message("deals.closed", expected_partition(k, PARTITIONS), n, k, line)
              for n, line in enumerate(lines)
              for k in [json.loads(line)["account_id"].encode()]]
    asyncio.run(batches.events(events))
    facts = [_message("facts", expected_partition(k, PARTITIONS) if p is None else p, n, k, v)
             for n, (k, v, p) in enumerate(topics.facts.sent)]
    facts += [_message("facts", p, 1000 + s * PARTITIONS + p, None, beat)
              for s in range(PARTITIONS)
              for [beat] in [encode_facts(s, LATER, [], FACTS_MAX_BYTES)]
              for p in range(PARTITIONS)]
    more = deal_dict(account_id="c-9", days=2.0)
    key = b"c-9"

    async def scenario():
        alerts.outages = 10**6  # the broker does not take the alerts
        waiting = asyncio.create_task(batches.facts(facts))
        await asyncio.sleep(0.05)
        log.clear()
        await batches.events([_message("deals.closed", expected_partition(key, PARTITIONS),
                                       100, key, raw(more))])
        logged = list(log)
        alerts.outages = 0
        await waiting
        return logged

    logged = asyncio.run(scenario())
    assert "accounts" in logged and "aggregates" not in logged
    assert "aggregates" in log[len(logged):]  # logged by the facts batch, after its alerts


def test_ledger_beats_of_several_stages_and_of_the_previous_version_are_read():
    assert decode_claims(encode_beat({0: 5.0, 3: 7.5})) == LedgerBeat({0: 5.0, 3: 7.5})
    assert decode_claims(b'{"v": 2, "source": 1, "watermark": 5.0}') == LedgerBeat({1: 5.0})
    assert decode_facts(encode_beat({2: 1.5})).watermarks == {2: 1.5}
    with pytest.raises(UnreadableRecord):
        decode_claims(b'{"v": 2, "beats": {"x": 1.0}}')
