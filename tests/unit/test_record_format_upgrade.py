"""A worker of this version reads the records the previous one wrote (format 1: facts without
measure contributions, aggregate periods without sums): account state as it was, aggregate
periods recomputing their sums from the deals they keep."""

import pytest
from unit_helpers import churn_dict, deal_dict, run

from auditor.engine.aggregate_stage import AggregateStage
from auditor.engine.facts import AggregateFact
from auditor.engine.sink import NullSink
from auditor.engine.state import AggregateState
from auditor.engine.store import MemoryAggregateStore
from auditor.rules.loader import load_rule_pack
from auditor.worker.records import read_state_value
from auditor.worker.state_log import Changelog, PartitionLog


def _stream():
    deals = [deal_dict(account_id=f"n{i}", team="t", plan_id="p", days=float(i),
                       commission={"amount": 1000.0 + i}) for i in range(4)]
    deals += [deal_dict(account_id=f"r{i}", team="t", plan_id="p", deal_type="renewal",
                        acv=12000.0, days=float(i), commission={"amount": 20.0 + i})
              for i in range(3)]
    deals += [deal_dict(account_id=f"x{i}", rep_id="rep-x", team="t", plan_id="p",
                        days=float(i)) for i in range(4)]
    return [*deals, churn_dict(account_id="x0", days=30.0)]


def _periods(rules):
    result = run(rules, _stream(), flush=False)
    return {key: state for key, state in result.engine.aggregates.items()}


def _value(rules, state):
    rule = next(r for r in rules.aggregate_rules if r.meta.id == state.rule)
    return rule.value(state)


def test_a_period_written_without_sums_gets_the_same_value(rules):
    periods = _periods(rules)
    assert len(periods) >= 5
    for key, state in periods.items():
        old = state.to_dict()
        del old["sums"], old["churned_sums"]
        partition, data = read_state_value({"v": 1, "p": 3, "s": old})
        restored = AggregateState.from_dict(data)
        assert partition == 3 and restored.stale_sums
        assert _value(rules, restored) == pytest.approx(_value(rules, state)), key
        assert not restored.stale_sums  # recomputed once
        assert "sums" in restored.to_dict()


def test_facts_without_contributions_count_as_the_deals_they_name(rules):
    fresh = _periods(rules)
    stage = AggregateStage(rules, MemoryAggregateStore(), NullSink(), 30.0,
                           evaluate_on_settle=False)
    # Facts as format 1 wrote them (every field but `values`), for the periods without churn.
    unchurned = {key: state for key, state in fresh.items() if not state.churned}
    assert len(unchurned) >= 3
    for state in unchurned.values():
        for member, entry in state.deals.items():
            account_id, _, deal_id = member.partition("\x1f")
            data = AggregateFact("deal", state.rule, state.group, state.period, state.end,
                                 account_id, deal_id, *entry).to_dict()
            del data["values"]
            stage.apply(AggregateFact.from_dict(data))
    restored = dict(stage.store.items())
    assert set(restored) == set(unchurned)
    for key, state in restored.items():
        assert state.stale_sums
        assert _value(rules, state) == pytest.approx(_value(rules, fresh[key])), key


def test_a_measure_over_other_fields_is_not_evaluated_after_the_upgrade(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        "  - id: avg-discount\n"
        "    kind: aggregate\n"
        "    description: average discount\n"
        "    measure: {describe: average discount, numerator: {sum: discount_pct},\n"
        "              denominator: {count: deals}}\n"
        "    group_by: team\n"
        "    threshold: {above: 0.1}\n"
        "    severity: info\n")
    rules = load_rule_pack(tmp_path)
    [state] = _periods(rules).values()
    assert _value(rules, state) == pytest.approx(0.1)  # the simulated default discount
    old = state.to_dict()
    del old["sums"], old["churned_sums"]
    # discount_pct is not among what a period keeps of a deal: it cannot be recomputed.
    assert _value(rules, AggregateState.from_dict(old)) is None


def test_state_of_the_current_format_is_read_as_written(rules):
    state = next(iter(_periods(rules).values()))
    table: dict = {}
    log = PartitionLog(table, Changelog("aggregates"), 0, AggregateState.from_dict,
                       pytest.fail, merge=AggregateState.merge_changes)
    log["period"] = state
    log.flush()
    again = PartitionLog(table, Changelog("aggregates"), 0, AggregateState.from_dict,
                         pytest.fail, merge=AggregateState.merge_changes)
    assert again["period"].to_dict() == state.to_dict()
