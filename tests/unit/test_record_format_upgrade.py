"""A worker of this version reads the records earlier ones wrote: facts without measure
contributions (format 1), aggregate periods that kept every deal's entry, without the measure's
sums (format 1) or with them (format 2). Account state is read as it was; a period of format 1
recomputes its sums from the deals it kept; a period of format 2 becomes counts."""

import pytest
from unit_helpers import churn_dict, deal_dict, run

from auditor.engine.aggregate_stage import AggregateStage
from auditor.engine.facts import AggregateFact
from auditor.engine.sink import NullSink
from auditor.engine.state import AggregateState
from auditor.engine.store import MemoryAggregateStore
from auditor.events.decode import EventDecoder
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


def _run(rules):
    """The periods of a run, and the facts it applied, by period key."""
    result = run(rules, [], flush=False)
    stage = result.engine.aggregate
    applied: dict[str, list[AggregateFact]] = {}
    apply = stage.apply

    def recording(fact):
        applied.setdefault(fact.key, []).append(fact)
        return apply(fact)

    stage.apply = recording
    result.feed(EventDecoder(rules.currency), _stream())
    return dict(result.engine.aggregates.items()), applied


def _periods(rules):
    return _run(rules)[0]


def _earlier_form(state, facts, sums):
    """The period as formats 1 (`sums` False) and 2 wrote it: every deal's entry by member key,
    the churned ones' details, and with format 2 the measure's sums."""
    data = {"rule": state.rule, "group": state.group, "period": state.period, "end": state.end,
            "settled": state.settled, "fired": state.fired,
            "deals": {f.member: list(f.entry) for f in facts if f.kind == "deal"},
            "churned": {f.member: [f.days, f.money_class, f.plan_id, f.team, f.deal_time]
                        for f in facts if f.kind == "churned"}}
    if sums:
        data["sums"], data["churned_sums"] = state.sums, state.churned_sums
    return data


def _value(rules, state):
    rule = next(r for r in rules.aggregate_rules if r.meta.id == state.rule)
    return rule.value(state)


@pytest.mark.parametrize("with_sums", [False, True], ids=["format-1", "format-2"])
def test_a_period_of_an_earlier_format_gets_the_same_value(rules, with_sums):
    periods, applied = _run(rules)
    assert len(periods) >= 5
    assert any(state.churned for state in periods.values())
    for key, state in periods.items():
        old = _earlier_form(state, applied[key], with_sums)
        partition, data = read_state_value({"v": 1, "p": 3, "s": old})
        restored = AggregateState.from_dict(data)
        assert partition == 3 and (restored.legacy is None) == with_sums
        assert _value(rules, restored) == pytest.approx(_value(rules, state)), key
        assert restored.legacy is None  # recomputed once, then counts only
        again = restored.to_dict()
        assert "deals" not in again and again["sums"] == pytest.approx(state.sums)
        assert (again["count"], again["churned_count"]) == (state.count, state.churned_count)
        assert again["churned"] == state.to_dict()["churned"]
        assert again["totals"] == state.to_dict()["totals"]


def test_facts_without_contributions_count_as_the_deals_they_name(rules):
    fresh, applied = _run(rules)
    stage = AggregateStage(rules, MemoryAggregateStore(), NullSink(), 30.0,
                           evaluate_on_settle=False)
    # Facts as format 1 wrote them (every field but `values`).
    for facts in applied.values():
        for fact in facts:
            data = fact.to_dict()
            del data["values"]
            stage.apply(AggregateFact.from_dict(data))
    restored = dict(stage.store.items())
    assert set(restored) == set(fresh)
    for key, state in restored.items():
        assert state.legacy is None  # the default measures read what a fact has
        assert _value(rules, state) == pytest.approx(_value(rules, fresh[key])), key


def _avg_discount_rules(tmp_path):
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
    return load_rule_pack(tmp_path)


def test_a_measure_over_other_fields_is_not_evaluated_after_the_upgrade(tmp_path):
    rules = _avg_discount_rules(tmp_path)
    [(key, state)] = _run(rules)[0].items()
    facts = _run(rules)[1][key]
    assert _value(rules, state) == pytest.approx(0.1)  # the simulated default discount
    # discount_pct is not among what a period kept of a deal: it cannot be recomputed...
    old = _earlier_form(state, facts, sums=False)
    assert _value(rules, AggregateState.from_dict(old)) is None
    # ... nor read from a fact of format 1.
    stage = AggregateStage(rules, MemoryAggregateStore(), NullSink(), 30.0,
                           evaluate_on_settle=False)
    for fact in facts:
        data = fact.to_dict()
        del data["values"]
        stage.apply(AggregateFact.from_dict(data))
    [restored] = [s for _, s in stage.store.items()]
    assert restored.count == state.count and _value(rules, restored) is None
    assert AggregateState.from_dict(restored.to_dict()).legacy is not None  # logged so


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
