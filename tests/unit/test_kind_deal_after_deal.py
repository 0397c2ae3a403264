"""Kind `deal-after-deal`: a second deal of an account 0..N days after a first, a filter on each,
optionally by the same rep; symmetric in arrival order, one alert per (second, first) pair.

Also: a kind is one module -- a trial kind registered from this file is loaded from a rules
directory, published in the JSON Schema and run by the engine with nothing else changed."""

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from itertools import permutations
from typing import ClassVar, Literal

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field
from unit_helpers import deal_dict, run, ts

from auditor.engine.alerts import alert_id
from auditor.engine.findings import deal_alert, time_text
from auditor.errors import RuleErrors
from auditor.rules.compiled import CompiledRule, RuleMeta
from auditor.rules.kind import CompileContext, RuleKind
from auditor.rules.kinds import kinds, register, unregister
from auditor.rules.kinds.deal_after_deal import DealAfterDeal
from auditor.rules.loader import load_rule_pack
from auditor.rules.schema import rule_file_json_schema
from auditor.rules.spec import Filter, RuleSpecBase, Severity

RULE = "pair"
NEVER_LATE = 100_000.0  # nothing is late or expired before flush: order alone is tested
SECOND = 1 / 86400  # a second, in days


def _rule(**overrides):
    rule = {
        "id": RULE, "kind": "deal-after-deal", "description": "a renewal after a new logo",
        "first": {"deal_type": "new_logo"}, "second": {"deal_type": "renewal"},
        "within_days": 10, "severity": "warning", "at_risk": "none",
    }
    rule.update(overrides)
    return {key: value for key, value in rule.items() if value is not None}


def _pack(rules_dir, **overrides):
    (rules_dir / "pairs.yaml").write_text(yaml.safe_dump({"rules": [_rule(**overrides)]}))
    return load_rule_pack(rules_dir)


def _new_logo(deal_id, days, **kw):
    return deal_dict(deal_id=deal_id, deal_type="new_logo", days=days, **kw)


def _renewal(deal_id, days, **kw):
    return deal_dict(deal_id=deal_id, deal_type="renewal", days=days, **kw)


def _pairs(pack, events, lateness=NEVER_LATE):
    """(account, second deal, first deal) of each alert, in the order raised."""
    return [(a.account_id, a.evidence["second_deal_id"], a.evidence["first_deal_id"])
            for a in run(pack, events, lateness_days=lateness).of(RULE)]


# --- arrival order ----------------------------------------------------------------------------

ACCOUNTS = ("acct-a", "acct-b")


@st.composite
def _deals(draw):
    """Deals with distinct ids, closed on half days, so many pairs fall on the window's edge
    and some at the same instant."""
    count = draw(st.integers(min_value=1, max_value=7))
    return [deal_dict(
        deal_id=f"D{n}",
        account_id=draw(st.sampled_from(ACCOUNTS)),
        rep_id=draw(st.sampled_from(("rep-1", "rep-1", "rep-2"))),
        deal_type=draw(st.sampled_from(("new_logo", "expansion", "renewal"))),
        days=draw(st.integers(min_value=0, max_value=30).map(lambda h: h / 2)),
        discount_pct=draw(st.sampled_from((0.0, 0.3))),
    ) for n in range(count)]


def _expected(events, first, second, within, same_rep):
    """Every ordered pair of distinct deals of an account the rule should report, by brute
    force over the events' own fields."""
    out = set()
    for a in events:
        for b in events:
            days = at_days(b) - at_days(a)
            if (a is not b and a["account_id"] == b["account_id"] and first(a) and second(b)
                    and 0 <= days <= within and (not same_rep or a["rep_id"] == b["rep_id"])):
                out.add((b["account_id"], b["deal_id"], a["deal_id"]))
    return out


def at_days(event):
    return (_epoch(event["closed_at"]) - _epoch(ts(0))) / 86400


def _epoch(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


CASES = {
    "typed": (dict(first={"deal_type": "new_logo"},
                   second={"deal_type": "renewal", "discount_pct": {"gte": 0.3}},
                   within_days=5, same_rep=True),
              lambda d: d["deal_type"] == "new_logo",
              lambda d: d["deal_type"] == "renewal" and d["discount_pct"] >= 0.3, 5, True),
    "any two deals": (dict(first={}, second={}, within_days=3),
                      lambda d: True, lambda d: True, 3, False),
}


@pytest.mark.parametrize("case", CASES)
def test_any_arrival_order_gives_each_pair_once(rules_dir, case):
    overrides, first, second, within, same_rep = CASES[case]
    pack = _pack(rules_dir, **overrides)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(events=_deals(), data=st.data())
    def check(events, data):
        expected = _expected(events, first, second, within, same_rep)
        for order in (events, list(reversed(events)), data.draw(st.permutations(events))):
            pairs = _pairs(pack, order)
            assert len(pairs) == len(set(pairs))  # once per pair
            assert set(pairs) == expected

    check()


def test_every_order_of_three_deals_gives_the_same_alerts(rules_dir):
    pack = _pack(rules_dir, first={}, second={"deal_type": "renewal"})
    events = [_new_logo("N1", 0.0), _new_logo("N2", 4.0), _renewal("R1", 9.0)]
    seen = set()
    for order in permutations(events):
        alerts = run(pack, order, lateness_days=NEVER_LATE).of(RULE)
        seen.add(tuple(sorted((a.alert_id, a.event_time, a.deal_id, a.severity)
                              for a in alerts)))
    [alerts] = seen
    assert [deal_id for _, _, deal_id, _ in alerts] == ["R1", "R1"]


def test_the_second_deal_may_arrive_first(rules_dir):
    pack = _pack(rules_dir)
    first, second = _new_logo("N1", 0.0), _renewal("R1", 7.0)
    result = run(pack, [second, first])
    [alert] = result.of(RULE)
    # Raised when the later-arriving deal (the first) is processed, not at flush; about the
    # second deal, at its time.
    assert alert not in result.flushed
    assert alert.deal_id == "R1"
    assert alert.event_time == second["closed_at"]
    assert alert.alert_id == alert_id(RULE, "acct-1", "R1", "N1")
    forward = run(pack, [first, second]).of(RULE)
    assert [a.alert_id for a in forward] == [alert.alert_id]


def test_duplicates_raise_nothing_more(rules_dir):
    pack = _pack(rules_dir)
    first, second = _new_logo("N1", 0.0), _renewal("R1", 2.0)
    again = {**second, "event_id": "evt-other"}  # the same deal under another event id
    result = run(pack, [first, second, second, again, first])
    assert len(result.of(RULE)) == 1
    assert result.counters.events_by_outcome().get("duplicate") == 3


# --- window, filters, rep ---------------------------------------------------------------------


@pytest.mark.parametrize(("days", "fires"), [
    (0.0, True), (10.0, True), (10.0 + SECOND, False), (-SECOND, False), (-5.0, False)])
def test_window_edges(rules_dir, days, fires):
    pack = _pack(rules_dir)
    events = [_new_logo("N1", 20.0), _renewal("R1", 20.0 + days)]
    assert _pairs(pack, events) == ([("acct-1", "R1", "N1")] if fires else [])
    assert _pairs(pack, events[::-1]) == ([("acct-1", "R1", "N1")] if fires else [])


def test_deals_at_the_same_instant_pair_both_ways_when_both_filters_allow(rules_dir):
    pack = _pack(rules_dir, first={}, second={})
    events = [_new_logo("A", 1.0), _renewal("B", 1.0)]
    assert sorted(_pairs(pack, events)) == [("acct-1", "A", "B"), ("acct-1", "B", "A")]
    typed = _pack(rules_dir)  # only a new logo first and a renewal second
    assert _pairs(typed, events) == [("acct-1", "B", "A")]


def test_a_deal_never_pairs_with_itself_nor_with_another_account(rules_dir):
    pack = _pack(rules_dir, first={}, second={})
    assert _pairs(pack, [_new_logo("N1", 0.0)]) == []
    assert _pairs(pack, [_new_logo("N1", 0.0), _renewal("R1", 1.0, account_id="acct-2")]) == []


@pytest.mark.parametrize(("same_rep", "rep", "fires"), [
    (True, "rep-1", True), (True, "rep-2", False), (None, "rep-2", True), (False, "rep-2", True)])
def test_same_rep(rules_dir, same_rep, rep, fires):
    pack = _pack(rules_dir, same_rep=same_rep)
    events = [_new_logo("N1", 0.0, rep_id="rep-1"), _renewal("R1", 3.0, rep_id=rep)]
    for order in (events, events[::-1]):
        assert len(_pairs(pack, order)) == (1 if fires else 0)


def test_each_side_has_its_own_filter(rules_dir):
    pack = _pack(rules_dir, first={"deal_type": "new_logo", "acv": {"gte": 10000}},
                 second={"deal_type": "renewal", "discount_pct": {"gte": 0.3}})
    good_first = _new_logo("N1", 0.0, acv=12000.0)
    good_second = _renewal("R1", 5.0, discount_pct=0.3)
    assert _pairs(pack, [good_first, good_second]) == [("acct-1", "R1", "N1")]
    # The first side's filter fails ...
    assert _pairs(pack, [_new_logo("N1", 0.0, acv=9000.0), good_second]) == []
    # ... the second side's fails ...
    assert _pairs(pack, [good_first, _renewal("R1", 5.0, discount_pct=0.29)]) == []
    # ... and the sides are not interchangeable: a renewal before a new logo is no pair.
    assert _pairs(pack, [_renewal("R0", 0.0, discount_pct=0.5), _new_logo("N1", 5.0)]) == []


def test_one_deal_can_be_the_first_of_one_pair_and_the_second_of_another(rules_dir):
    pack = _pack(rules_dir, first={}, second={"discount_pct": {"gte": 0.3}})
    events = [_new_logo("A", 0.0), _renewal("B", 2.0, discount_pct=0.4),
              _renewal("C", 4.0, discount_pct=0.5)]
    expected = {("acct-1", "B", "A"), ("acct-1", "C", "A"), ("acct-1", "C", "B")}
    for order in permutations(events):
        assert set(_pairs(pack, order)) == expected


def test_a_churn_field_in_a_deal_filter_is_refused(rules_dir):
    with pytest.raises(RuleErrors) as info:
        _pack(rules_dir, second={"churn_type": "full"})
    assert "churn_type" in str(info.value)


# --- severity, money, evidence ----------------------------------------------------------------


def test_severity_tiers_by_days(rules_dir):
    tiers = {"tiers": [{"max_days": 3, "severity": "critical"}], "otherwise": "info"}
    pack = _pack(rules_dir, severity=tiers)
    [rule] = pack.rules
    assert isinstance(rule, DealAfterDeal)
    assert rule.severities() == ("critical", "info")
    events = [_new_logo("N1", 0.0), _renewal("R1", 3.0, account_id="acct-1"),
              _new_logo("N2", 0.0, account_id="acct-2"),
              _renewal("R2", 3.5, account_id="acct-2")]
    severity = {a.deal_id: a.severity for a in run(pack, events).of(RULE)}
    assert severity == {"R1": "critical", "R2": "info"}


def _money_deals():
    first = _new_logo("N1", 0.0, acv=20000.0, discount_pct=0.05,
                      commission={"amount": 2000.0, "paid_upfront": 1500.0})
    second = _renewal("R1", 6.0, acv=13000.0, discount_pct=0.35,
                      commission={"amount": 650.0, "paid_upfront": 300.0})
    return first, second


@pytest.mark.parametrize(("at_risk", "money_class", "amount", "words"), [
    ("first_paid_upfront", "exposure", 1500.0,
     "1,500.00 USD of commission paid upfront on deal N1 is exposure."),
    ("second_paid_upfront", "overpaid", 300.0,
     "300.00 USD of commission paid upfront on deal R1 is overpaid."),
    ("second_commission_amount", "overpaid", 650.0,
     "650.00 USD of commission on deal R1 is overpaid."),
])
def test_at_risk_and_its_money_class(rules_dir, at_risk, money_class, amount, words):
    pack = _pack(rules_dir, at_risk=at_risk, money_class=money_class)
    [rule] = pack.rules
    assert rule.money_classes() == (money_class,)
    [alert] = run(pack, _money_deals()).of(RULE)
    assert (alert.at_risk, alert.money_class) == (amount, money_class)
    assert alert.evidence["money"] == {money_class: amount}
    assert alert.summary.endswith(words), alert.summary


def test_no_money_without_an_at_risk(rules_dir):
    [alert] = run(_pack(rules_dir), _money_deals()).of(RULE)
    assert (alert.at_risk, alert.money_class) == (0.0, None)
    assert "money" not in alert.evidence
    assert alert.summary == (
        "Account acct-1 closed renewal deal R1 (35% discount, ACV 13,000.00 USD) 6 days after "
        "new_logo deal N1 (5% discount, ACV 20,000.00 USD).")


@pytest.mark.parametrize(("extra", "words"), [
    ({"at_risk": "first_paid_upfront"}, "needs a money_class"),
    ({"money_class": "overpaid"}, "with an at_risk only"),
    ({"at_risk": "first_paid_upfront",
      "money_class": {"otherwise": "unrecovered", "clawback_covers": "recoverable"}},
     "decided by clawback"),
    ({"at_risk": "paid_upfront", "money_class": "overpaid"}, "at_risk"),
])
def test_money_class_is_checked(rules_dir, extra, words):
    with pytest.raises(RuleErrors) as info:
        _pack(rules_dir, **extra)
    assert words in str(info.value), str(info.value)


def test_the_alert_is_about_the_second_deal_and_its_evidence_names_both(rules_dir):
    pack = _pack(rules_dir, same_rep=True)
    first, second = _money_deals()
    second = {**second, "team": "team-b", "plan_id": "plan-b", "rep_id": "rep-1"}
    [alert] = run(pack, [second, first]).of(RULE)
    assert (alert.deal_id, alert.account_id, alert.rep_id, alert.team, alert.plan_id) == (
        "R1", "acct-1", "rep-1", "team-b", "plan-b")
    assert (alert.rule, alert.kind, alert.severity) == (RULE, "deal-after-deal", "warning")
    assert alert.summary.endswith(", both by rep rep-1.")
    assert alert.evidence == {
        "days": 6.0,
        "first_deal_id": "N1", "first_event_id": first["event_id"],
        "first_deal_type": "new_logo", "first_closed_at": first["closed_at"],
        "first_rep_id": "rep-1", "first_discount_pct": 0.05, "first_acv": 20000.0,
        "first_commission_amount": 2000.0, "first_paid_upfront": 1500.0,
        "second_deal_id": "R1", "second_event_id": second["event_id"],
        "second_deal_type": "renewal", "second_closed_at": second["closed_at"],
        "second_rep_id": "rep-1", "second_discount_pct": 0.35, "second_acv": 13000.0,
        "second_commission_amount": 650.0, "second_paid_upfront": 300.0,
    }


# --- state horizon ----------------------------------------------------------------------------


def test_window_days_is_the_state_horizon_and_an_expired_first_deal_pairs_no_more(rules_dir):
    pack = _pack(rules_dir, within_days=10)
    [rule] = pack.rules
    assert rule.window_days() == 10.0
    assert pack.longest_window_days() == 10.0
    first = _new_logo("N1", 0.0)
    late_second = _renewal("R1", 9.0)
    # Another account moves event time on by 40 days: with no lateness allowed, N1 is past the
    # 10-day horizon and forgotten; R1, closed 9 days after it, arrives too late to meet it.
    later = _new_logo("X1", 40.0, account_id="acct-2")
    assert _pairs(pack, [first, later, late_second], lateness=0.0) == []
    # Within the horizon (or with lateness to cover the gap) it still pairs.
    assert _pairs(pack, [first, late_second, later], lateness=0.0) == [("acct-1", "R1", "N1")]
    assert _pairs(pack, [first, later, late_second], lateness=40.0) == [("acct-1", "R1", "N1")]


# --- the rule-file format ---------------------------------------------------------------------


def _schema():
    out = subprocess.run([sys.executable, "-m", "auditor.cli.main", "rules", "schema"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_the_json_schema_has_the_kind():
    schema = _schema()
    assert '"deal-after-deal"' in json.dumps(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {"rules": [_rule(same_rep=True, at_risk="first_paid_upfront",
                            money_class="exposure",
                            severity={"tiers": [{"max_days": 30, "severity": "critical"}],
                                      "otherwise": "warning"})]}
    assert not list(validator.iter_errors(good))
    for bad in ({"same_reps": True}, {"same_rep": "yes"}, {"at_risk": "paid_upfront"},
                {"within_days": -1}):
        assert list(validator.iter_errors({"rules": [_rule(**bad)]})), bad


# --- a kind is one module ---------------------------------------------------------------------


class BigDealSpec(RuleSpecBase):
    """A trial kind: a deal of at least `min_acv` ACV."""

    FILTERS: ClassVar[dict[str, str]] = {"deal": "deal"}

    kind: Literal["trial-big-deal"]
    deal: Filter = Field(default_factory=dict)
    min_acv: float
    severity: Severity


@dataclass(frozen=True, slots=True, eq=False)
class BigDeal(CompiledRule):
    meta: RuleMeta
    deal: object
    min_acv: float
    severity: str
    money: None = None

    def on_deal(self, deal, state, found):
        if deal.acv >= self.min_acv and (self.deal is None or self.deal(deal)):
            closed_at = time_text(deal.time)
            found.alerts.append(deal_alert(
                self.meta, (deal.account_id, deal.deal_id), self.severity, closed_at,
                f"Deal {deal.deal_id} has an ACV of {deal.acv:,.0f}.", 0.0, None,
                found.currency, deal, {"acv": deal.acv}))

    def severities(self):
        return (self.severity,)


def _compile_big_deal(spec: BigDealSpec, ctx: CompileContext) -> BigDeal:
    return BigDeal(ctx.meta, ctx.filter(spec.deal), spec.min_acv, spec.severity)


TRIAL = RuleKind(BigDealSpec, _compile_big_deal)


@pytest.fixture
def trial_kind():
    register(TRIAL)
    yield TRIAL
    unregister(TRIAL.name)


def test_a_registered_kind_loads_and_runs_with_nothing_else_changed(rules_dir, trial_kind):
    assert kinds()["trial-big-deal"] is trial_kind
    assert '"trial-big-deal"' in json.dumps(rule_file_json_schema())
    (rules_dir / "trial.yaml").write_text(yaml.safe_dump({"rules": [{
        "id": "big-deal", "kind": "trial-big-deal", "description": "a big deal",
        "deal": {"deal_type": "new_logo"}, "min_acv": 50000.0, "severity": "info"}]}))
    pack = load_rule_pack(rules_dir)
    events = [deal_dict(deal_id="B1", acv=60000.0, tcv=60000.0),
              deal_dict(deal_id="S1", acv=1000.0, tcv=1000.0),
              deal_dict(deal_id="B2", acv=60000.0, tcv=60000.0, deal_type="renewal")]
    [alert] = [a for a in run(pack, events).alerts if a.rule == "big-deal"]
    assert (alert.deal_id, alert.kind, alert.severity) == ("B1", "trial-big-deal", "info")
    # Its keys are checked like any kind's: a filter field it does not have is refused.
    (rules_dir / "trial.yaml").write_text(yaml.safe_dump({"rules": [{
        "id": "big-deal", "kind": "trial-big-deal", "description": "a big deal",
        "deal": {"deal_typ": "new_logo"}, "min_acv": 50000.0, "severity": "info"}]}))
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(rules_dir)
    assert "deal_typ" in str(info.value)


def test_unregistering_a_trial_kind_forgets_it(rules_dir):
    register(TRIAL)
    unregister(TRIAL.name)
    assert "trial-big-deal" not in kinds()
    assert '"trial-big-deal"' not in json.dumps(rule_file_json_schema())
    (rules_dir / "trial.yaml").write_text(yaml.safe_dump({"rules": [{
        "id": "big-deal", "kind": "trial-big-deal", "description": "a big deal",
        "min_acv": 1.0, "severity": "info"}]}))
    with pytest.raises(RuleErrors):
        load_rule_pack(rules_dir)
