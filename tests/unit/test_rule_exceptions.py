"""Rule exceptions: a finding an exception of its rule matches is not an alert, counts in no
money, and is counted by rule and exception; `rules check` refuses bad or expired ones;
`rules exceptions` lists them with what they excepted."""

from __future__ import annotations

import json
import logging
import re
import shutil
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from unit_helpers import Run, churn_dict, deal_dict, raw, run

from auditor.cli import common
from auditor.cli.main import main
from auditor.engine.engine import AuditEngine
from auditor.errors import RuleErrors
from auditor.events.decode import EventDecoder
from auditor.metrics.collector import build_registry
from auditor.metrics.counters import RunCounters
from auditor.replay.runner import Replay
from auditor.replay.summary import FindingsDigest, summary_data
from auditor.rules.loader import load_rule_pack
from auditor.rules.pack import RulePack
from auditor.rules.reload import RuleReloader
from auditor.rules.schema import rule_file_json_schema

FIXTURE_DIR = Path(__file__).resolve().parent / "rules_with_exceptions"
EXCEPTED = "auditor_excepted_findings_total"

# A deal rule: every new-logo deal paid half or more upfront is a finding; its exceptions are
# filled in by each test.
DEAL_RULE = """\
rules:
  - id: upfront
    kind: deal
    description: A new-logo deal paid half or more of its commission upfront.
    deal: {{deal_type: new_logo}}
    min_upfront_share: 0.5
    severity: warning
    at_risk: {at_risk}
    money_class: exposure
    exceptions:
{exceptions}
"""


def _exception(name: str, body: str, expires: str = "2026-12-31") -> str:
    """One exception as YAML, indented for DEAL_RULE."""
    text = (f"- name: {name}\n  reason: Approved by the comp committee.\n  owner: sales-ops\n"
            f"  expires: {expires}\n" + textwrap.indent(body.strip(), "  ") + "\n")
    return textwrap.indent(text, "      ")


def _deal_pack(tmp_path: Path, *exceptions: str, at_risk: str = "paid_upfront") -> RulePack:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.yaml").write_text(
        DEAL_RULE.format(at_risk=at_risk, exceptions="".join(exceptions)))
    return load_rule_pack(directory)


def _declared_run(pack: RulePack, items: list[dict[str, Any]]) -> Run:
    counters = RunCounters()
    counters.rules_reloaded(pack)
    result = Run(AuditEngine(pack, counters, lateness_days=30.0), counters)
    result.feed(EventDecoder(pack.currency), items)
    result.flush()
    return result


def _samples(counters: RunCounters, name: str) -> dict[tuple[str, ...], float]:
    registry = build_registry(counters)
    return {tuple(s.labels.values()): s.value
            for family in registry.collect() for s in family.samples if s.name == name}


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "matching", "other"), [
    ("account_id: A9", {"account_id": "A9"}, {"account_id": "A8"}),
    ("deal_id: [D1, D2]", {"deal_id": "D2"}, {"deal_id": "D3"}),
    ("rep_id: rep-9", {"rep_id": "rep-9"}, {"rep_id": "rep-8"}),
    ("team: team-z", {"team": "team-z"}, {"team": "team-y"}),
    ("plan_id: [plan-y, plan-z]", {"plan_id": "plan-z"}, {"plan_id": "plan-x"}),
    ("deal: {region: emea}", {"region": "emea"}, {"region": "amer"}),
    ("deal: {discount_pct: {gte: 0.3}}", {"discount_pct": 0.3}, {"discount_pct": 0.29}),
])
def test_each_key_excepts_the_findings_it_names_and_no_other(tmp_path, body, matching, other):
    pack = _deal_pack(tmp_path, _exception("approved", body))
    result = run(pack, [deal_dict(**matching)])
    assert result.of("upfront") == []
    assert dict(result.counters.excepted_findings) == {("upfront", "approved"): 1}
    result = run(pack, [deal_dict(**other)])
    assert len(result.of("upfront")) == 1
    assert dict(result.counters.excepted_findings) == {}


def test_every_key_given_must_hold(tmp_path):
    pack = _deal_pack(tmp_path, _exception("moved", "rep_id: rep-9\nteam: team-2\n"
                                                    "deal: {region: emea}"))
    result = run(pack, [
        deal_dict(account_id="A1", rep_id="rep-9", team="team-2", region="emea"),
        deal_dict(account_id="A2", rep_id="rep-9", team="team-2", region="amer"),
        deal_dict(account_id="A3", rep_id="rep-9", team="team-3", region="emea"),
        deal_dict(account_id="A4", rep_id="rep-8", team="team-2", region="emea"),
    ])
    assert sorted(a.account_id for a in result.of("upfront")) == ["A2", "A3", "A4"]
    assert dict(result.counters.excepted_findings) == {("upfront", "moved"): 1}


def test_the_first_matching_exception_in_file_order_names_the_finding(tmp_path):
    first = _exception("by-account", "account_id: A1")
    second = _exception("by-team", "team: team-z")
    for order, name in (((first, second), "by-account"), ((second, first), "by-team")):
        pack = _deal_pack(tmp_path, *order)
        result = run(pack, [deal_dict(account_id="A1", team="team-z")])
        assert result.of("upfront") == []
        assert dict(result.counters.excepted_findings) == {("upfront", name): 1}


def test_a_deal_filter_sees_the_deal_of_a_join_finding_that_arrives_with_the_churn(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(textwrap.dedent("""\
        rules:
          - id: early-churn
            kind: churn-after-deal
            description: A customer left soon after a deal.
            within_days: 90
            severity: warning
            at_risk: paid_upfront
            money_class: unrecovered
            exceptions:
              - name: emea-pilot
                reason: EMEA pilot customers may leave after the trial.
                owner: emea-sales-ops
                expires: 2026-12-31
                deal: {region: emea}
        """))
    pack = load_rule_pack(directory)
    result = run(pack, [deal_dict(account_id="A1", region="emea"),
                        deal_dict(account_id="A2", region="amer"),
                        churn_dict(account_id="A1", days=10), churn_dict(account_id="A2", days=10)])
    assert [a.account_id for a in result.of("early-churn")] == ["A2"]
    assert dict(result.counters.excepted_findings) == {("early-churn", "emea-pilot"): 1}


# --- expiry -----------------------------------------------------------------------------------


def test_a_finding_on_the_expiry_day_is_excepted_and_the_day_after_is_not(tmp_path):
    pack = _deal_pack(tmp_path, _exception("until-10th", "account_id: A1", "2026-01-10"))
    result = run(pack, [deal_dict(account_id="A1", closed_at="2026-01-10T23:59:59Z"),
                        deal_dict(account_id="A1", closed_at="2026-01-11T00:00:00Z")])
    [alert] = result.of("upfront")
    assert alert.event_time == "2026-01-11T00:00:00Z"
    assert dict(result.counters.excepted_findings) == {("upfront", "until-10th"): 1}


def test_expiry_is_read_against_the_finding_not_the_clock(tmp_path):
    """An exception long expired still excepts the findings of its time: a replay of history
    gives the same alerts whatever day it runs."""
    pack = _deal_pack(tmp_path, _exception("old", "account_id: A1", "2020-01-31"))
    result = run(pack, [deal_dict(account_id="A1", closed_at="2020-01-15T10:00:00Z"),
                        deal_dict(account_id="A1", closed_at="2020-02-01T10:00:00Z")])
    assert [a.event_time for a in result.of("upfront")] == ["2020-02-01T10:00:00Z"]
    assert dict(result.counters.excepted_findings) == {("upfront", "old"): 1}


AGGREGATE_RULES = """\
rules:
  - id: share-by-team
    kind: aggregate
    description: Nearly all of a team's commission went to new logos.
    measure: new_logo_commission_share
    group_by: team
    period: {period}
    min_deals: 1
    threshold: {{above: 0.85}}
    severity: warning
    exceptions:
      - name: launch
        reason: A new team sells new logos only at first.
        owner: sales-ops
        expires: {expires}
        team: team-new
  - id: share-by-account
    kind: aggregate
    description: An account's commission went to new logos only.
    measure: new_logo_commission_share
    group_by: account_id
    period: {period}
    min_deals: 1
    threshold: {{above: 0.85}}
    severity: info
    exceptions:
      - name: strategic
        reason: Strategic accounts are new-logo deals by contract.
        owner: finance-ops
        expires: {expires}
        account_id: A1
"""


@pytest.mark.parametrize(("period", "expires", "inside", "outside", "labels"), [
    ("quarter", "2026-03-31", "2026-03-31T12:00:00Z", "2026-04-01T00:00:00Z",
     ("2026-Q1", "2026-Q2")),
    ("month", "2026-01-31", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z",
     ("2026-01", "2026-02")),
])
def test_an_aggregate_is_excepted_by_its_group_through_its_period_s_last_day(
        tmp_path, period, expires, inside, outside, labels):
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(AGGREGATE_RULES.format(period=period, expires=expires))
    pack = load_rule_pack(directory)
    result = run(pack, [deal_dict(account_id="A1", team="team-new", closed_at=inside),
                        deal_dict(account_id="A1", team="team-new", closed_at=outside),
                        deal_dict(account_id="A2", team="team-old", closed_at=inside)])
    by_team = sorted((a.group, a.period) for a in result.of("share-by-team"))
    assert by_team == [("team-new", labels[1]), ("team-old", labels[0])]
    by_account = sorted((a.group, a.period) for a in result.of("share-by-account"))
    assert by_account == [("A1", labels[1]), ("A2", labels[0])]
    assert dict(result.counters.excepted_findings) == {("share-by-team", "launch"): 1,
                                                       ("share-by-account", "strategic"): 1}


def test_an_excepted_period_stays_fired(tmp_path):
    """A late fact for a period whose finding was excepted does not raise it as an alert."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(AGGREGATE_RULES.format(period="quarter",
                                                                 expires="2026-03-31"))
    pack = load_rule_pack(directory)
    counters = RunCounters()
    engine = AuditEngine(pack, counters, lateness_days=365)
    engine.aggregate.evaluate_on_settle = True  # as the worker: a settled period is evaluated
    engine.aggregate.lateness = 0.0
    decoder = EventDecoder(pack.currency)
    result = Run(engine, counters)
    result.feed(decoder, [deal_dict(account_id="A1", team="team-new", days=10),
                          deal_dict(account_id="A9", team="team-x", days=120)])
    assert dict(counters.excepted_findings) == {("share-by-team", "launch"): 1,
                                                ("share-by-account", "strategic"): 1}
    result.feed(decoder, [deal_dict(account_id="A2", team="team-new", days=20)])  # late
    result.flush()
    assert [a for a in result.alerts if a.group in ("team-new", "A1")] == []


# --- money ------------------------------------------------------------------------------------


def test_excepted_findings_count_in_no_money_and_no_alert_metric(tmp_path):
    """Three findings of 1,000, 700 and 600 paid upfront; the 700 is excepted: 1,600 flagged."""
    pack = _deal_pack(tmp_path, _exception("approved", "account_id: A2"))
    result = _declared_run(pack, [
        deal_dict(account_id="A1", commission={"amount": 1000.0}),
        deal_dict(account_id="A2", commission={"amount": 700.0}),
        deal_dict(account_id="A3", commission={"amount": 600.0}),
    ])
    counters = result.counters
    assert len(result.of("upfront")) == 2
    assert sum(counters.alerts.values()) == 2
    assert sum(counters.flagged.values()) == pytest.approx(1600.0)
    assert sum(counters.at_risk.values()) == pytest.approx(1600.0)
    data = summary_data(counters, FindingsDigest())
    assert data["money"]["by_class"] == {"exposure": 1600.0}
    assert data["commission_paid"]["total"] == 2300.0


def test_an_excepted_finding_never_enters_the_deal_s_ledger(tmp_path):
    """One deal, two rules of the same class: the excepted one would have flagged 1,000 (its
    commission), the other flags 900 (paid upfront). The ledger keeps 900."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(DEAL_RULE.format(
        at_risk="commission_amount", exceptions=_exception("approved", "account_id: A1"))
        + DEAL_RULE.format(at_risk="paid_upfront", exceptions="").replace(
            "rules:\n", "").replace("id: upfront", "id: upfront-paid").replace(
            "    exceptions:\n", ""))
    pack = load_rule_pack(directory)
    result = _declared_run(pack, [deal_dict(account_id="A1", commission={
        "amount": 1000.0, "paid_upfront": 900.0})])
    assert [a.rule for a in result.alerts] == ["upfront-paid"]
    assert dict(result.counters.flagged) == {("exposure", "plan-a", "team-a", "USD"): 900.0}


def test_an_excepted_aggregate_claims_no_money_on_its_deals(tmp_path):
    """Rep 9's and rep 8's only deals churn early, paid 1,200 and 1,000 upfront; rep 9 is
    excepted: 1,000 unrecovered."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(textwrap.dedent("""\
        rules:
          - id: rep-churn
            kind: aggregate
            description: A rep's deals churned early.
            measure: early_churn_share
            group_by: rep_id
            churn: {churn_type: full}
            churn_within_days: 90
            min_deals: 1
            threshold: {at_least: 0.5}
            severity: warning
            at_risk: churned_paid_upfront
            money_class: unrecovered
            exceptions:
              - name: ramping
                reason: Rep 9 is ramping; the first quarter is not held against them.
                owner: sales-ops
                expires: 2026-12-31
                rep_id: rep-9
        """))
    pack = load_rule_pack(directory)
    result = _declared_run(pack, [
        deal_dict(account_id="A1", rep_id="rep-9"), churn_dict(account_id="A1", days=10),
        deal_dict(account_id="A2", rep_id="rep-8", commission={"amount": 1000.0}),
        churn_dict(account_id="A2", days=10),
    ])
    [alert] = result.of("rep-churn")
    assert (alert.group, alert.at_risk) == ("rep-8", 1000.0)
    assert sum(result.counters.flagged.values()) == pytest.approx(1000.0)
    assert dict(result.counters.excepted_findings) == {("rep-churn", "ramping"): 1}


# --- metrics and summary ----------------------------------------------------------------------


def test_every_exception_is_exported_at_zero_and_counts_its_findings():
    pack = load_rule_pack(FIXTURE_DIR)
    counters = RunCounters()
    counters.rules_reloaded(pack)
    declared = {(r.meta.id, e.name) for r in pack.rules for e in r.meta.exceptions}
    assert len(declared) == 7
    assert _samples(counters, EXCEPTED) == dict.fromkeys(declared, 0.0)
    engine = AuditEngine(pack, counters)
    Run(engine, counters).feed(EventDecoder(pack.currency), [
        deal_dict(account_id="legacy-1", team="team-legacy"),
        deal_dict(account_id="legacy-1", deal_id="P1", team="team-legacy"),
        deal_dict(account_id="A2", deal_id="P1"),
    ])
    samples = _samples(counters, EXCEPTED)
    assert samples[("upfront-new-logo", "legacy-account")] == 2.0  # first match, in file order
    assert samples[("upfront-new-logo", "pilot-deals")] == 1.0
    assert samples[("upfront-new-logo", "team-legacy")] == 0.0
    assert _samples(counters, "auditor_alerts_total").get(
        ("upfront-new-logo", "warning", "team-a"), 0.0) == 0.0


def test_the_replay_summary_gives_the_findings_each_exception_excepted(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(raw(d) for d in (
        deal_dict(account_id="legacy-1", closed_at="2099-01-10T00:00:00Z"),
        deal_dict(account_id="A2", closed_at="2099-01-10T00:00:00Z"))) + b"\n")
    digest = FindingsDigest()
    replay = Replay(load_rule_pack(FIXTURE_DIR), on_alert=digest.add)
    counters = replay.run_files([str(events)])
    data = summary_data(counters, digest)
    assert {"rule": "upfront-new-logo", "exception": "legacy-account", "findings": 1} in (
        data["excepted"])
    assert {"rule": "upfront-new-logo", "exception": "pilot-deals", "findings": 0} in (
        data["excepted"])
    text = digest.render(counters)
    assert re.search(r"upfront-new-logo\s+legacy-account\s+1$", text, re.M)


# --- rules check ------------------------------------------------------------------------------

BROKEN = """\
rules:
  - id: upfront
    kind: deal
    description: A new-logo deal paid half or more of its commission upfront.
    min_upfront_share: 0.5
    severity: warning
    at_risk: none
    exceptions:
      - name: no-reason
        owner: sales-ops
        expires: 2026-12-31
        account_id: A1
      - name: no-expiry
        reason: Approved.
        owner: sales-ops
        account_id: A1
      - name: old
        reason: Approved.
        owner: sales-ops
        expires: 2026-05-31
        account_id: A1
      - name: typo
        reason: Approved.
        owner: sales-ops
        expires: 2026-12-31
        deal: {regoin: emea}
      - name: old
        reason: Approved.
        owner: sales-ops
        expires: 2026-12-31
        account_id: A2
      - name: blank-owner
        reason: Approved.
        owner: " "
        expires: 2026-12-31
        account_id: A1
      - name: nothing
        reason: Approved.
        owner: sales-ops
        expires: 2026-12-31
      - name: quoted
        reason: Approved.
        owner: sales-ops
        expires: "2026-12-31"
        account_id: A1
  - id: by-plan
    kind: aggregate
    description: Nearly all of a plan's commission went to new logos.
    measure: new_logo_commission_share
    group_by: plan_id
    threshold: {above: 0.85}
    severity: warning
    exceptions:
      - name: team-key
        reason: Approved.
        owner: sales-ops
        expires: 2026-12-31
        team: team-a
        deal: {region: emea}
  - id: broken-elsewhere
    kind: deal
    description: A rule with an error of its own.
    severity: severe
    at_risk: none
    exceptions:
      - name: still-checked
        reason: Approved.
        owner: sales-ops
        expires: 2026-12-31
        deal: {deal_type: newlogo}
"""


def _line(text: str, needle: str, after: str = "") -> int:
    """The line of the first `needle` after the first `after`."""
    start = text.index(after) if after else 0
    return text.count("\n", 0, text.index(needle, start)) + 1


def test_rules_check_reports_every_bad_exception_at_its_line_with_its_rule(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    path = directory / "rules.yaml"
    path.write_text(BROKEN)
    with pytest.raises(RuleErrors) as caught:
        load_rule_pack(directory, today=date(2026, 6, 1))
    errors = [str(e) for e in caught.value.errors]
    t = BROKEN
    blank, quoted = _line(t, 'owner: " "'), _line(t, 'expires: "2026')
    expected = [
        f"{path}:{_line(t, '- name: no-reason')}: upfront: exceptions[no-reason]: reason: "
        "required key is missing",
        f"{path}:{_line(t, '- name: no-expiry')}: upfront: exceptions[no-expiry]: expires: "
        "required key is missing",
        f"{path}:{_line(t, '- name: old')}: upfront: exceptions[old]: expired on 2026-05-31",
        f"{path}:{_line(t, 'regoin')}: upfront: exceptions[typo]: deal.regoin: unknown field; "
        "did you mean 'region'?",
        f"{path}:{_line(t, 'name: old', 'deal: {regoin')}: upfront: exceptions[old]: duplicate "
        f"exception name, first at line {_line(t, '- name: old')}",
        f"{path}:{blank}: upfront: exceptions[blank-owner]: owner: must not "
        "be empty",
        f"{path}:{_line(t, '- name: nothing')}: upfront: exceptions[nothing]: say which findings "
        "it excepts: give any of account_id, deal_id, rep_id, team, plan_id or deal (a deal "
        "filter)",
        f"{path}:{quoted}: upfront: exceptions[quoted]: expires: "
        "'2026-12-31' is text: write a date unquoted, as YYYY-MM-DD",
        f"{path}:{_line(t, 'team: team-a')}: by-plan: exceptions[team-key]: team: never "
        "matches: the rule's findings are groups of deals by plan_id, matched by plan_id only",
        f"{path}:{_line(t, 'deal: {region')}: by-plan: exceptions[team-key]: deal: never "
        "matches: the rule's findings are groups of deals by plan_id, matched by plan_id only",
        f"{path}:{_line(t, 'newlogo')}: broken-elsewhere: exceptions[still-checked]: "
        "deal.deal_type: 'newlogo' is not one of",
    ]
    for want in expected:
        assert any(e.startswith(want) for e in errors), (want, errors)
    # To run, an expired exception is no error: it matches nothing after its day.
    with pytest.raises(RuleErrors) as caught:
        load_rule_pack(directory)
    assert not any("expired" in str(e) for e in caught.value.errors)
    assert len(caught.value.errors) == len(errors) - 1


def test_a_date_that_does_not_exist_is_an_error_at_its_line(tmp_path):
    pack_dir = tmp_path / "rules"
    _deal_pack(tmp_path, _exception("ok", "account_id: A1"))
    path = pack_dir / "rules.yaml"
    path.write_text(path.read_text().replace("2026-12-31", "2026-02-30"))
    with pytest.raises(RuleErrors) as caught:
        load_rule_pack(pack_dir)
    [error] = caught.value.errors
    assert str(error).startswith(f"{path}:{_line(path.read_text(), '2026-02-30')}: "
                                 "'2026-02-30' is not a valid date")


def _check_dir(tmp_path: Path, expires: date) -> Path:
    _deal_pack(tmp_path, _exception("soon", "account_id: A1", expires.isoformat()))
    return tmp_path / "rules"


def test_rules_check_exits_1_on_an_expired_exception(tmp_path, capsys):
    today = common.utc_today()
    directory = _check_dir(tmp_path, today - timedelta(days=1))
    assert main(["rules", "check", str(directory)]) == 1
    err = capsys.readouterr().err
    line = _line((directory / "rules.yaml").read_text(), "- name: soon")
    assert (f"{directory / 'rules.yaml'}:{line}: upfront: exceptions[soon]: expired on "
            f"{(today - timedelta(days=1)).isoformat()}") in err


def test_an_exception_expiring_today_passes_rules_check(tmp_path, capsys):
    directory = _check_dir(tmp_path, common.utc_today())
    assert main(["rules", "check", str(directory)]) == 0


def test_running_with_an_expired_exception_warns_with_its_place(tmp_path, capsys):
    directory = _check_dir(tmp_path, common.utc_today() - timedelta(days=3))
    pack = common.load_rules_or_exit(str(directory))
    assert pack.rule_count == 1
    err = capsys.readouterr().err
    line = _line((directory / "rules.yaml").read_text(), "- name: soon")
    assert f"warning: {directory / 'rules.yaml'}:{line}: upfront: exceptions[soon]: " in err
    assert "it matches no finding after that day" in err


# --- rules exceptions -------------------------------------------------------------------------


def test_rules_exceptions_lists_each_exception_with_what_it_excepted(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(raw(d) for d in (
        deal_dict(account_id="legacy-1", closed_at="2099-01-10T00:00:00Z"),
        deal_dict(account_id="legacy-2", closed_at="2099-01-10T00:00:00Z", deal_id="P2"),
        deal_dict(account_id="legacy-1", closed_at="2099-02-10T00:00:00Z"),
    )) + b"\n")
    assert main(["rules", "exceptions", str(FIXTURE_DIR), "--events", str(events),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(r["rule"], r["exception"]): r for r in data["exceptions"]}
    assert len(rows) == 7
    legacy = rows["upfront-new-logo", "legacy-account"]
    assert legacy["findings"] == 2
    assert legacy["owner"] == "finance-ops"
    assert legacy["matches"] == {"account_id": "legacy-1"}
    assert legacy["expires"] == "2099-06-30"
    assert legacy["status"] == "active"
    assert legacy["source"].endswith("exceptions.yaml:16")
    assert rows["upfront-new-logo", "pilot-deals"]["findings"] == 1
    assert rows["upfront-new-logo", "pilot-deals"]["matches"] == {"deal_id": ["P1", "P2"]}
    assert rows["upfront-new-logo", "old-plan-discounts"]["matches"] == {
        "plan_id": "plan-old", "deal": {"discount_pct": {"gte": 0.2}}}
    assert rows["team-new-logo-share", "team-launch"]["findings"] == 0

    assert main(["rules", "exceptions", str(FIXTURE_DIR)]) == 0
    out = capsys.readouterr().out
    assert "upfront-new-logo  exceptions[old-plan-discounts]  active (expires 2099-12-31)" in out
    assert "  matches: plan_id: plan-old; deal: {discount_pct: {gte: 0.2}}" in out
    assert "  owner:   comp-committee" in out
    assert "7 exception(s), 0 expired" in out


def test_rules_exceptions_says_which_expired_and_which_expire_soon(tmp_path, capsys):
    today = common.utc_today()
    _deal_pack(tmp_path, _exception("gone", "account_id: A1",
                                    (today - timedelta(days=1)).isoformat()),
               _exception("soon", "account_id: A2", (today + timedelta(days=5)).isoformat()),
               _exception("today", "account_id: A3", today.isoformat()))
    assert main(["rules", "exceptions", str(tmp_path / "rules"), "--json"]) == 0
    statuses = {r["exception"]: (r["status"], r["days_left"])
                for r in json.loads(capsys.readouterr().out)["exceptions"]}
    assert statuses == {"gone": ("expired", -1), "soon": ("expires in 5 days", 5),
                        "today": ("expires today", 0)}


# --- schema and reload ------------------------------------------------------------------------


def test_the_json_schema_describes_exceptions():
    schema = rule_file_json_schema()
    spec = schema["$defs"]["RuleExceptionSpec"]
    assert set(spec["required"]) == {"name", "reason", "owner", "expires"}
    assert spec["properties"]["expires"]["format"] == "date"
    assert spec["additionalProperties"] is False
    rule_defs = [d for d in schema["$defs"].values() if "kind" in d.get("properties", {})]
    assert rule_defs and all("exceptions" in d["properties"] for d in rule_defs)
    # The test directory's rule file is valid under it, dates as YAML reads them (text).
    data = json.loads(json.dumps(yaml.safe_load((FIXTURE_DIR / "exceptions.yaml").read_text()),
                                 default=str))
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()).validate(data)


def test_a_reloaded_exception_applies_from_the_next_event(tmp_path, caplog):
    directory = tmp_path / "rules"
    shutil.copytree(FIXTURE_DIR, directory)
    pack = load_rule_pack(directory)
    result = run(pack, [deal_dict(account_id="A7", closed_at="2099-01-10T00:00:00Z")])
    assert len(result.of("upfront-new-logo")) == 1
    loaded: list[RulePack] = []
    reloader = RuleReloader(directory, loaded.append)
    path = directory / "exceptions.yaml"
    path.write_text(path.read_text().replace("account_id: legacy-1", "account_id: [legacy-1, A7]")
                    .replace("expires: 2099-12-31\n        team: team-legacy",
                             "expires: 2020-12-31\n        team: team-legacy"))
    with caplog.at_level(logging.WARNING, logger="auditor.rules.reload"):
        assert reloader.poll() is True
    [new] = loaded
    assert "upfront-new-logo: exceptions[team-legacy]: expired on 2020-12-31" in caplog.text
    result.engine.set_rules(new)
    result.feed(EventDecoder(new.currency),
                [deal_dict(account_id="A7", closed_at="2099-01-11T00:00:00Z")])
    assert len(result.of("upfront-new-logo")) == 1  # the first, before the reload
    assert dict(result.counters.excepted_findings) == {
        ("upfront-new-logo", "legacy-account"): 1}


def test_the_day_of_a_finding():
    from auditor.engine.alerts import Alert
    from auditor.rules.exceptions import finding_day

    def alert(event_time: str, period: str | None) -> Alert:
        return Alert("id", "r", "k", "info", event_time, "", 0.0, None, "USD", period=period)

    assert finding_day(alert("2026-03-31T23:59:59Z", None)) == "2026-03-31"
    assert finding_day(alert("2026-04-01T00:00:00Z", "2026-Q1")) == "2026-03-31"
    assert finding_day(alert("2026-03-01T00:00:00Z", "2026-02")) == "2026-02-28"
    assert finding_day(alert("10000-01-01T00:00:00Z", "9999-Q4")) == "9999-12-31"


def test_the_worker_excepts_what_replay_excepts():
    from auditor.worker.partitioning import expected_partition
    from auditor.worker.pipeline import Pipeline, StateTables

    pack = load_rule_pack(FIXTURE_DIR)
    counters = RunCounters()
    counters.rules_reloaded(pack)
    pipeline = Pipeline(pack, counters, StateTables({}, {}, {}), 30.0)
    events = [deal_dict(account_id="legacy-1", team="team-new", deal_id="D1",
                        closed_at="2099-01-10T00:00:00Z"),
              deal_dict(account_id="A2", team="team-old", deal_id="D2",
                        closed_at="2099-01-10T00:00:00Z")]
    # Later deals, and churns after them, on every input partition: the watermark, the
    # smallest of both topics', settles 2099-Q1.
    later: dict[int, str] = {}
    for n in range(100):
        later.setdefault(expected_partition(f"W{n}".encode(), 4), f"W{n}")
    for partition, account in sorted(later.items()):
        events += [deal_dict(account_id=account, team="team-x", deal_id=f"L{partition}",
                             closed_at="2099-06-01T00:00:00Z"),
                   churn_dict(account_id=account, churned_at="2099-06-02T00:00:00Z")]
    alerts = []
    for n, event in enumerate(events):
        key = event["account_id"].encode()
        alerts += pipeline.on_input("deals", expected_partition(key, 4), n, key,
                                    raw(event)).alerts
        facts, beats = pipeline.facts_messages()
        for m, message in enumerate(facts + beats):
            partition = (message.partition if message.key is None
                         else expected_partition(message.key.encode(), 4))
            alerts += pipeline.on_facts(partition, m, "facts", message.value).alerts
    assert sorted((a.rule, a.deal_id or a.group) for a in alerts) == [
        ("team-new-logo-share", "team-old"), ("upfront-new-logo", "D2"),
        *(("upfront-new-logo", f"L{partition}") for partition in range(4))]
    assert dict(counters.excepted_findings) == {("upfront-new-logo", "legacy-account"): 1,
                                                ("team-new-logo-share", "team-launch"): 1}
