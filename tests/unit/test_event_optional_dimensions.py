"""A deal's optional `region` and `manager_id` (contract v1, added without a version change):
left out they are None, given they are non-empty strings like the ids; a deal without them is
stored exactly as before; rule filters and `rules explain` read them, a missing one included."""

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from unit_helpers import deal_dict, decode_all, raw, run

from auditor.engine.state import AccountState
from auditor.events.deadletter import DeadLetter
from auditor.events.models import Deal, event_from_dict, event_to_dict
from auditor.explain.conditions import MISSING, explain_filter
from auditor.rules import filters
from auditor.rules.domains import DEAL_DOMAINS
from auditor.rules.filter_check import check_filter
from auditor.rules.filters import DEAL_FIELDS, compile_filter
from auditor.rules.loader import load_rule_pack
from auditor.rules.spec import Comparison
from auditor.ruletest.fixtures import unknown_event_fields

OPTIONAL = ("region", "manager_id")
# The top-level keys of a stored deal before the optional fields existed, in their order.
STORED_KEYS = ["event_type", "event_id", "schema_version", "deal_id", "account_id", "rep_id",
               "team", "plan_id", "deal_type", "closed_at", "term_months", "acv", "tcv",
               "discount_pct", "currency", "commission"]


def _deal_from(decoder, source: dict) -> Deal:
    [deal] = decode_all(decoder, [source])
    assert isinstance(deal, Deal)
    return deal


def _deal(decoder, **fields) -> Deal:
    return _deal_from(decoder, deal_dict(**fields))


# --- the contract ------------------------------------------------------------------------------


def test_a_deal_without_them_is_valid_and_reads_none(decoder):
    deal = _deal(decoder)
    assert deal.region is None and deal.manager_id is None


def test_a_deal_with_them_keeps_them(decoder):
    deal = _deal(decoder, region="emea", manager_id="mgr-7")
    assert (deal.region, deal.manager_id) == ("emea", "mgr-7")


@pytest.mark.parametrize("region", ["emea", "amer", "apac", "EMEA", "north-east"])
def test_any_non_empty_region_is_taken(decoder, region):
    assert _deal(decoder, region=region).region == region


def test_either_may_come_alone(decoder):
    assert (_deal(decoder, region="apac").manager_id, _deal(decoder, manager_id="m").region) == (
        None, None)


@pytest.mark.parametrize("field", OPTIONAL)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "String should have at least 1 character"),
        (None, "Input should be a valid string"),  # present: `null` is not left out
        (7, "Input should be a valid string"),
        (1.5, "Input should be a valid string"),
        (True, "Input should be a valid string"),
        (["emea"], "Input should be a valid string"),
        ({"code": "emea"}, "Input should be a valid string"),
    ],
)
def test_a_wrong_type_or_empty_string_is_a_schema_dead_letter_naming_the_field(
        decoder, field, value, message):
    letter = decoder.decode(raw(deal_dict(**{field: value})), "events.jsonl:4")
    assert isinstance(letter, DeadLetter), letter
    assert letter.reason == "schema"
    assert letter.event_type == "deal_closed"
    assert letter.detail == f"{field}: {message}"


def test_both_wrong_are_both_named(decoder):
    letter = decoder.decode(raw(deal_dict(region="", manager_id=3)), "events.jsonl:5")
    assert isinstance(letter, DeadLetter) and letter.reason == "schema"
    assert "region: " in letter.detail and "manager_id: " in letter.detail


def test_a_churn_carrying_them_is_unchanged(decoder):
    """Extra fields of a churn are ignored, as any extra field is."""
    [churn] = decode_all(decoder, [{
        "event_type": "account_churned", "event_id": "c-1", "schema_version": 1,
        "account_id": "acct-1", "churned_at": "2026-01-05T00:00:00Z", "churn_type": "full",
        "arr_lost": 10.0, "currency": "USD", "region": "", "manager_id": None}])
    assert not hasattr(churn, "region")


# --- stored state ------------------------------------------------------------------------------


def test_a_deal_without_them_is_stored_exactly_as_before(decoder):
    source = deal_dict(closed_at="2026-01-05T10:00:00Z")
    stored = event_to_dict(_deal_from(decoder, source))
    assert list(stored) == STORED_KEYS
    assert json.dumps(stored) == json.dumps({**source, "closed_at": "2026-01-05T10:00:00+00:00"})


def test_a_state_record_written_before_them_still_reads():
    old = {"event_type": "deal_closed", "event_id": "e-1", "schema_version": 1,
           "deal_id": "d-1", "account_id": "a-1", "rep_id": "r-1", "team": "t", "plan_id": "p",
           "deal_type": "renewal", "closed_at": "2026-01-05T10:00:00+00:00", "term_months": 12,
           "acv": 1000.0, "tcv": 1000.0, "discount_pct": 0.0, "currency": "USD",
           "commission": {"amount": 100.0, "paid_upfront": 0.0, "basis": "acv", "rate": 0.1,
                          "clawback_days": 90}}
    deal = event_from_dict(old)
    assert isinstance(deal, Deal) and deal.region is None and deal.manager_id is None
    assert json.dumps(event_to_dict(deal)) == json.dumps(old)


def test_they_survive_a_round_trip_and_sit_before_the_commission(decoder):
    deal = _deal(decoder, region="emea", manager_id="mgr-1")
    stored = event_to_dict(deal)
    assert list(stored)[-3:] == ["region", "manager_id", "commission"]
    again = event_from_dict(json.loads(json.dumps(stored)))
    assert isinstance(again, Deal)
    assert (again.region, again.manager_id) == ("emea", "mgr-1")
    assert event_to_dict(again) == stored


def test_one_alone_is_stored_alone(decoder):
    stored = event_to_dict(_deal(decoder, manager_id="mgr-2"))
    assert "region" not in stored and stored["manager_id"] == "mgr-2"


def test_account_state_round_trip_with_and_without_them(decoder):
    state = AccountState()
    for deal in decode_all(decoder, [deal_dict(deal_id="d-with", region="apac", manager_id="m"),
                                     deal_dict(deal_id="d-without")]):
        assert isinstance(deal, Deal)
        state.add_deal(deal)
    stored = json.loads(json.dumps(state.to_dict()))
    again = AccountState.from_dict(stored)
    assert again.to_dict() == state.to_dict()
    assert (again.deal("d-with").region, again.deal("d-with").manager_id) == ("apac", "m")
    assert (again.deal("d-without").region, again.deal("d-without").manager_id) == (None, None)
    assert not set(OPTIONAL) & set(stored["deals"][1])


# --- filters -----------------------------------------------------------------------------------

LISTS = {"west": ["amer"], "managers": ["mgr-1"]}
# (condition on region, holds for region emea, for amer, for a deal without a region)
REGION_CONDITIONS = [
    ("emea", True, False, False),
    (["emea", "apac"], True, False, False),
    ({"eq": "emea"}, True, False, False),
    ({"ne": "emea"}, False, True, True),
    ({"in": ["emea"]}, True, False, False),
    ({"not_in": ["emea"]}, False, True, True),
    ({"in_list": "west"}, False, True, False),
    ({"not_in_list": "west"}, True, False, True),
    ({"ne": "emea", "not_in": ["amer"]}, False, False, True),
]


def _condition(condition):
    return Comparison.model_validate(condition) if isinstance(condition, dict) else condition


@pytest.mark.parametrize(("condition", "emea", "amer", "missing"), REGION_CONDITIONS)
def test_region_filters_on_present_and_missing_values(decoder, condition, emea, amer, missing):
    predicate = compile_filter({"region": _condition(condition)}, DEAL_FIELDS, LISTS)
    assert predicate is not None
    deals = [_deal(decoder, region="emea"), _deal(decoder, region="amer"), _deal(decoder)]
    assert [predicate(d) for d in deals] == [emea, amer, missing]


@pytest.mark.parametrize(("condition", "present", "missing"), [
    ("mgr-1", True, False),
    ({"ne": "mgr-1"}, False, True),
    ({"in_list": "managers"}, True, False),
    ({"not_in_list": "managers"}, False, True),
])
def test_manager_filters_on_present_and_missing_values(decoder, condition, present, missing):
    predicate = compile_filter({"manager_id": _condition(condition)}, DEAL_FIELDS, LISTS)
    assert predicate is not None
    assert predicate(_deal(decoder, manager_id="mgr-1")) is present
    assert predicate(_deal(decoder)) is missing


def test_they_are_optional_text_in_the_contract_domains():
    for field in OPTIONAL:
        domain = DEAL_DOMAINS[field]
        assert (domain.kind, domain.optional) == ("text", True)
    assert not DEAL_DOMAINS["rep_id"].optional


def test_filter_check_takes_text_and_refuses_numbers_and_empty_text():
    def problems(conditions):
        return [p.message for p in check_filter(conditions, DEAL_FIELDS, DEAL_DOMAINS, LISTS)]

    assert problems({"region": "emea", "manager_id": _condition({"not_in": ["m-1"]})}) == []
    assert problems({"region": Comparison(gt=1)})  # not a number
    assert problems({"region": 5})  # not text
    assert problems({"manager_id": ""})  # never matches


def test_an_ordered_comparison_on_a_missing_value_is_false_not_an_error(monkeypatch):
    """No optional field is a number today; should one be, gt/lt on None must not raise."""
    monkeypatch.setattr(filters, "NUMERIC", filters.NUMERIC | {"score"})
    monkeypatch.setattr(filters, "OPTIONAL", filters.OPTIONAL | {"score"})
    predicate = compile_filter({"score": Comparison(gt=1, lte=5)}, {"score": "score"})
    assert predicate is not None
    assert [predicate(SimpleNamespace(score=s)) for s in (3, 9, None)] == [True, False, False]


RULE = """\
rules:
  - id: emea-deals
    kind: deal
    description: deals of the EMEA region
    deal:
      region: emea
    severity: info
    at_risk: none
  - id: not-mgr-1
    kind: deal
    description: deals not under manager mgr-1
    deal:
      manager_id: {ne: mgr-1}
    severity: info
    at_risk: none
"""


def test_a_rule_filtering_on_them_loads_and_fires_as_documented(rules_dir: Path):
    (rules_dir / "rules.yaml").write_text(textwrap.dedent(RULE))
    pack = load_rule_pack(rules_dir)
    deals = [deal_dict(account_id="a-emea", region="emea", manager_id="mgr-1"),
             deal_dict(account_id="a-apac", region="apac", manager_id="mgr-2"),
             deal_dict(account_id="a-none")]
    result = run(pack, deals)
    assert [a.account_id for a in result.of("emea-deals")] == ["a-emea"]
    assert sorted(a.account_id for a in result.of("not-mgr-1")) == ["a-apac", "a-none"]


def test_rule_test_fixtures_may_set_them():
    assert unknown_event_fields("deal", {"region": "emea", "manager_id": "m"}) == []


# --- explain -----------------------------------------------------------------------------------


def test_explain_shows_a_missing_value_as_missing(decoder):
    conditions = {"region": "emea", "manager_id": Comparison(ne="mgr-1")}
    result = explain_filter("deal", conditions, DEAL_FIELDS, _deal(decoder))
    assert [c.value for c in result.conditions] == [None, None]
    assert not result.holds
    assert result.lines() == [
        f"    region {MISSING} == emea ... no   <- stops here",
        f"    manager_id {MISSING} != mgr-1 ... yes",
    ]


def test_explain_shows_a_present_value_as_it_is(decoder):
    deal = _deal(decoder, region="emea", manager_id="mgr-1")
    result = explain_filter("deal", {"region": ["emea", "apac"]}, DEAL_FIELDS, deal)
    assert result.holds
    assert result.lines() == ["    region emea in [emea, apac] ... yes"]
