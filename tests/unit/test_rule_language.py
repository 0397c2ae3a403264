"""The rule language as data: group by any text field of a deal, months/quarters/years, measures
written in rule files, bounded label dimensions, and rule status."""

import textwrap
from pathlib import Path

import pytest
from unit_helpers import churn_dict, deal_dict, run

from auditor.cli.main import main
from auditor.errors import RuleErrors
from auditor.metrics.collector import build_registry
from auditor.rules.loader import load_rule_pack
from auditor.rules.schema import rule_file_json_schema

# The average discount of a group's deals: a measure no code knows, written as data.
AVERAGE_DISCOUNT = """\
measures:
  average_discount:
    describe: average discount
    numerator: {sum: discount_pct}
    denominator: {count: deals}
"""


def _load(tmp_path: Path, text: str, name: str = "rules.yaml"):
    (tmp_path / name).write_text(textwrap.dedent(text))
    return load_rule_pack(tmp_path)


def _errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(RuleErrors) as caught:
        _load(tmp_path, text)
    return str(caught.value)


def _rule(**keys: str) -> str:
    base = {"id": "avg-discount", "kind": "aggregate", "description": "deep discounts",
            "measure": "average_discount", "group_by": "region", "period": "month",
            "threshold": "{above: 0.2}", "severity": "warning", "min_deals": "2"}
    base.update(keys)
    lines = "\n".join(f"    {k}: {v}" for k, v in base.items() if v is not None)
    return AVERAGE_DISCOUNT + "rules:\n  - " + lines.lstrip() + "\n"


def test_a_measure_written_in_a_rule_file_groups_by_region_per_month(tmp_path):
    rules = _load(tmp_path, _rule())
    events = [deal_dict(region="emea", discount_pct=0.1, days=1.0),
              deal_dict(region="emea", discount_pct=0.4, days=2.0),
              deal_dict(region="amer", discount_pct=0.5, days=3.0),   # one deal: < min_deals
              deal_dict(discount_pct=0.9, days=4.0),                   # no region: no group
              deal_dict(region="emea", discount_pct=0.9, days=40.0)]   # February
    [alert] = run(rules, events).of("avg-discount")
    assert (alert.group_by, alert.group, alert.period) == ("region", "emea", "2026-01")
    assert alert.value == pytest.approx((0.1 + 0.4) / 2)
    assert alert.event_time == "2026-02-01T00:00:00Z"  # the month's exclusive end
    assert "average discount was 0.25, above the threshold 0.2" in alert.summary
    assert alert.evidence == {"deals": 2, "new_logo": {"deals": 2, "commission": 2400.0,
                                                        "acv": 24000.0}}


def test_a_year_period_and_a_measure_written_in_place(tmp_path):
    in_place = ("{describe: share of deals on tcv, numerator: {count: deals, where: "
                "{commission.basis: tcv}}, denominator: {count: deals}}")
    rules = _load(tmp_path, _rule(measure=in_place, period="year", group_by="team",
                                  threshold="{at_least: 0.5}"))
    events = [deal_dict(team="t", days=1.0, commission={"basis": "tcv"}),
              deal_dict(team="t", days=200.0)]
    [alert] = run(rules, events).of("avg-discount")
    assert (alert.period, alert.value, alert.event_time) == ("2026", 0.5, "2027-01-01T00:00:00Z")


def test_min_deals_by_quantity_name(tmp_path):
    measure = ("{describe: renewal share, numerator: {name: renewals, count: deals, where: "
               "{deal_type: renewal}}, denominator: {count: deals}}")
    rules = _load(tmp_path, _rule(measure=measure, group_by="team", min_deals="{renewals: 2}",
                                  threshold="{above: 0.1}"))
    one = [deal_dict(team="t", deal_type="renewal", days=1.0), deal_dict(team="t", days=2.0)]
    assert run(rules, one).of("avg-discount") == []
    two = [*one, deal_dict(team="t", deal_type="renewal", days=3.0)]
    [alert] = run(rules, two).of("avg-discount")
    assert alert.value == pytest.approx(2 / 3)


def test_a_churn_measure_in_a_rule_file_counts_churned_deals(tmp_path):
    measure = ("{describe: share lost, numerator: {sum: commission.amount, churned: true}, "
               "denominator: {sum: commission.amount}}")
    rules = _load(tmp_path, _rule(measure=measure, group_by="team", min_deals="1",
                                  churn_within_days="30", threshold="{above: 0.2}"))
    events = [deal_dict(account_id="a", team="t", days=1.0, commission={"amount": 100.0}),
              deal_dict(account_id="b", team="t", days=1.0, commission={"amount": 300.0}),
              churn_dict(account_id="a", days=20.0),
              churn_dict(account_id="b", days=40.0)]  # 39 days: outside the window
    [alert] = run(rules, events).of("avg-discount")
    assert alert.value == 100.0 / 400.0
    assert alert.evidence["churned_deal_ids"] == [events[0]["deal_id"]]


@pytest.mark.parametrize(("keys", "message"), [
    ({"measure": "avg_discount"}, "unknown measure 'avg_discount'"),
    ({"group_by": "regoin"}, "group_by"),
    ({"min_deals": "{renewals: 2}"}, "min_deals: renewals is not a quantity of the measure"),
    ({"churn_within_days": "30"}, "a churn window applies to a measure that counts churned"),
    ({"period": "week"}, "period"),
])
def test_mistakes_are_refused_with_file_line_and_rule(tmp_path, keys, message):
    text = _errors(tmp_path, _rule(**keys))
    assert "rules.yaml:" in text and "avg-discount" in text and message in text


def test_a_churned_quantity_needs_a_window(tmp_path):
    measure = ("{describe: x, numerator: {count: deals, churned: true}, "
               "denominator: {count: deals}}")
    text = _errors(tmp_path, _rule(measure=measure))
    assert "the measure counts churned deals: give churn_within_days" in text


def test_a_measure_named_twice_or_wrong_is_refused_at_its_line(tmp_path):
    text = _errors(tmp_path, AVERAGE_DISCOUNT.replace("average_discount", "early_churn_share")
                   + "rules: []\n")
    assert "duplicate measure 'early_churn_share'" in text
    text = _errors(tmp_path, AVERAGE_DISCOUNT.replace("{sum: discount_pct}",
                                                      "{sum: discount_pct, count: deals}")
                   + "rules: []\n")
    assert "rules.yaml:4: measure average_discount: numerator: give one of sum" in text
    text = _errors(tmp_path, AVERAGE_DISCOUNT.replace("{sum: discount_pct}",
                                                      "{sum: team}") + "rules: []\n")
    assert "measure average_discount: numerator.sum" in text
    text = _errors(tmp_path, AVERAGE_DISCOUNT.replace(
        "{count: deals}", "{count: deals, where: {deal_type: newlogo}}") + "rules: []\n")
    assert "denominator.where.deal_type" in text and "new_logo" in text


def _live_groups(rules, events) -> set[tuple[str, str]]:
    result = run(rules, events, flush=False)
    registry = build_registry(result.counters, result.engine.live_values)
    groups = set()
    for metric in registry.collect():
        if metric.name == "auditor_aggregate_value":
            groups |= {(s.labels["group_by"], s.labels["group"]) for s in metric.samples}
    return groups


def test_only_bounded_dimensions_become_metric_labels(tmp_path):
    events = [deal_dict(region="emea", discount_pct=0.5, days=float(d)) for d in (1, 2)]
    assert _live_groups(_load(tmp_path, _rule()), events) == set()  # region: not declared
    bounded = "bounded_dimensions: [team, plan_id, region]\n" + _rule()
    assert _live_groups(_load(tmp_path, bounded), events) == {("region", "emea")}


def test_experimental_findings_are_marked_and_kept_out_of_the_money(tmp_path):
    rule = """\
    rules:
      - id: trial-upfront
        kind: deal
        description: a rule on trial
        status: experimental
        deal: {deal_type: new_logo}
        severity: warning
        at_risk: paid_upfront
        money_class: exposure
      - id: stable-upfront
        kind: deal
        description: the same rule, counting
        deal: {deal_type: new_logo}
        severity: warning
        at_risk: commission_amount
        money_class: exposure
    """
    rules = _load(tmp_path, rule)
    result = run(rules, [deal_dict(team="t", commission={"amount": 1000.0,
                                                         "paid_upfront": 600.0})])
    trial, = result.of("trial-upfront")
    stable, = result.of("stable-upfront")
    assert trial.labels == {"status": "experimental"} and stable.labels == {}
    counters = result.counters
    assert counters.alerts == {("stable-upfront", "warning", "t"): 1}
    assert counters.trial_alerts == {("trial-upfront", "warning", "t"): 1}
    assert dict(counters.trial_at_risk) == {("trial-upfront", "t", "USD", "exposure"): 600.0}
    # The deal's exposure is the stable rule's 1,000 only (the trial's 600 never reaches it).
    assert sum(counters.flagged.values()) == 1000.0
    names = {m.name for m in build_registry(counters).collect()}
    assert {"auditor_experimental_alerts", "auditor_experimental_commission_at_risk"} <= names


def test_rules_check_warns_about_deprecated_rules(tmp_path, capsys):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent("""\
    rules:
      - id: old-rule
        kind: deal
        description: going away
        status: deprecated
        severity: info
        at_risk: none
    """))
    assert main(["rules", "check", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "rules.yaml:2: old-rule: warning: the rule is deprecated" in err
    assert _load(tmp_path, (tmp_path / "rules.yaml").read_text()).rules[0].meta.labels == {
        "status": "deprecated"}


def test_the_json_schema_covers_the_language():
    schema = rule_file_json_schema()
    text = str(schema)
    for word in ("measures", "bounded_dimensions", "deal-after-deal", "numerator", "status",
                 "'month'", "'region'", "manager_id"):
        assert word in text, word


def test_the_language_fixture_rules_pass_their_rule_tests(capsys):
    """tests/unit/rules_language: a measure as data, group by region per month and by manager
    per year, an experimental rule; its rule tests are run as sales ops run them."""
    fixture = Path(__file__).resolve().parent / "rules_language"
    assert main(["rules", "test", str(fixture), "--strict"]) == 0
    assert "4 passed, 0 failed" in capsys.readouterr().out
