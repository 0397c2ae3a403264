"""Why one rule did or did not fire for one deal: its filters condition by condition with the
values compared, then what its kind tests (each churn of the account for a join, the upfront
share for a deal rule, the deal's period for an aggregate).

The conditions are evaluated from the rule's spec (conditions.py); the verdict on the last
line is what a replay of the same file did (replayed.py), so the two can be compared: when
they differ (events out of order beyond the allowed lateness, say) a note says so."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.engine.alerts import Alert
from auditor.engine.engine import DEFAULT_LATENESS_DAYS
from auditor.engine.findings import join_alert, time_text
from auditor.engine.periods import DAY, add_months, quarter_of
from auditor.events.models import Churn, Deal
from auditor.explain.conditions import FilterResult, explain_filter, number, show
from auditor.explain.events import DealInFile, Located
from auditor.explain.replayed import PeriodSeen, replay_for
from auditor.explain.specs import AnySpec, RuleBook
from auditor.rules.compiled import AggregateRule, DealRule, JoinRule
from auditor.rules.filters import CHURN_FIELDS, DEAL_FIELDS
from auditor.rules.hints import did_you_mean
from auditor.rules.schema import AggregateRuleSpec, DealRuleSpec, JoinRuleSpec

THRESHOLD_SYMBOLS = {"above": ">", "below": "<", "at_least": ">=", "at_most": "<="}


class UnknownRule(ValueError):
    pass


@dataclass
class Explanation:
    rule_id: str
    kind: str
    header: str
    fires: bool = False  # what a replay of the file did: the last line
    reason: str = ""
    analysis_fires: bool = False  # what the conditions say
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        verdict = "fires" if self.fires else "does not fire"
        return "\n".join([self.header, *self.lines, f"  => {verdict}: {self.reason}"]) + "\n"


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _alert_text(alert: Alert) -> str:
    money = f", at risk {_money(alert.at_risk, alert.currency)}" if alert.at_risk else ""
    money_class = f" {alert.money_class}" if alert.money_class and alert.at_risk else ""
    return f"severity {alert.severity}{money}{money_class}"


def _yes(holds: bool) -> str:
    return "yes" if holds else "no"


def _churn_title(loc: Located) -> str:
    churn = loc.event
    assert isinstance(churn, Churn)
    return (f"  churn {churn.event_id} ({loc.where}, {time_text(churn.time)}, "
            f"{churn.churn_type}, arr_lost {number(churn.arr_lost)}):")


def rule_spec(book: RuleBook, rule_id: str) -> AnySpec:
    """The rule's spec, or UnknownRule with a "did you mean" (or the rules there are)."""
    spec = book.specs.get(rule_id)
    if spec is None:
        hint = did_you_mean(rule_id, book.specs)
        known = "" if hint else f"; the rules are: {', '.join(sorted(book.specs))}"
        raise UnknownRule(f"unknown rule {rule_id!r}{hint}{known}")
    return spec


def explain(book: RuleBook, rule_id: str, found: DealInFile, path: str) -> Explanation:
    """Raises UnknownRule when no rule of the directory has that id."""
    spec = rule_spec(book, rule_id)
    deal = found.deal
    out = Explanation(rule_id, spec.kind, f"{rule_id} ({spec.kind}) on deal {deal.deal_id} of "
                      f"account {deal.account_id} ({found.where}):")
    out.lines.extend(f"  note: {note}" for note in found.notes)
    if not spec.enabled:
        out.lines.append(f"  the rule is disabled (enabled: false, {book.sources[rule_id]}): "
                         "the engine does not run it")
        out.reason = "the rule is disabled"
        return out
    rule = book.pack.by_id()[rule_id]
    deal_filter = explain_filter("deal", spec.deal, DEAL_FIELDS, deal, book.lists)
    out.lines.append("  deal filter:")
    out.lines.extend(deal_filter.lines())
    if isinstance(spec, DealRuleSpec):
        assert isinstance(rule, DealRule)
        _deal_rule(out, book, rule, deal, deal_filter, path)
    elif isinstance(spec, JoinRuleSpec):
        assert isinstance(rule, JoinRule)
        _join_rule(out, book, spec, rule, found, deal_filter, path)
    else:
        assert isinstance(rule, AggregateRule)
        _aggregate_rule(out, book, spec, rule, found, deal_filter, path)
    return out


def _disagree(out: Explanation, path: str, detail: str = "") -> None:
    """The replay did otherwise than the conditions say: the verdict is the replay's."""
    said = "fires" if out.fires else "does not fire"
    out.lines.append(
        f"  note: a replay of {path} {said}, unlike the conditions above{detail}: the engine "
        f"reads the file in order, ignores repeated events, and forgets an account's events "
        f"once later events are past the rules' horizon and the allowed lateness "
        f"({number(DEFAULT_LATENESS_DAYS)} days)")


def _deal_rule(out: Explanation, book: RuleBook, rule: DealRule, deal: Deal,
               deal_filter: FilterResult, path: str) -> None:
    holds = deal_filter.holds
    reason = "the deal filter does not hold"
    share = rule.min_upfront_share
    if holds and share is not None:
        upfront = deal.paid_upfront >= share * deal.amount  # as the join stage tests it
        out.lines.append(
            f"  min_upfront_share: commission.paid_upfront {number(deal.paid_upfront)} >= "
            f"{show(share)} x commission.amount {number(deal.amount)} "
            f"(= {number(share * deal.amount)}) ... {_yes(upfront)}")
        if not upfront:
            holds = False
            reason = (f"less than {show(share)} of the commission was paid upfront "
                      f"(min_upfront_share)")
    out.analysis_fires = holds
    replayed = replay_for(book.pack, path, rule.meta.id, deal)
    out.fires = bool(replayed.alerts)
    if out.fires:
        out.reason = _alert_text(replayed.alerts[0])
    else:
        out.reason = reason if not holds else "no alert in the replay"
    if out.fires != holds:
        _disagree(out, path)


def _join_rule(out: Explanation, book: RuleBook, spec: JoinRuleSpec, rule: JoinRule,
               found: DealInFile, deal_filter: FilterResult, path: str) -> None:
    deal = found.deal
    currency = book.pack.currency.reporting
    after = not rule.deal_after_churn
    qualifying: list[tuple[float, Located]] = []
    if deal_filter.holds:
        if not found.churns:
            out.lines.append(f"  no churn of account {deal.account_id} in {path}")
        else:
            out.lines.append(f"  churns of account {deal.account_id} in {path}: "
                             f"{len(found.churns)}")
        for loc in found.churns:
            churn = loc.event
            assert isinstance(churn, Churn)
            out.lines.append(_churn_title(loc))
            churn_filter = explain_filter("churn", spec.churn, CHURN_FIELDS, churn, book.lists)
            out.lines.append("    churn filter:")
            out.lines.extend(churn_filter.lines("      "))
            if after:
                days = (churn.time - deal.time) / DAY
                label = "days from the deal to the churn"
            else:
                days = (deal.time - churn.time) / DAY
                label = "days from the churn to the deal"
            in_window = 0 <= days <= rule.within_days
            out.lines.append(f"    {label}: {number(days)}, window 0..{show(rule.within_days)}"
                             f" ... {_yes(in_window)}")
            recovered = False
            if after and rule.unless_clawback_covers:
                covers = deal.clawback_days > 0 and days <= deal.clawback_days
                recovered = covers
                if deal.clawback_days == 0:
                    out.lines.append("    clawback (unless_clawback_covers): "
                                     "commission.clawback_days 0, no clawback ... covers: no")
                else:
                    out.lines.append(
                        f"    clawback (unless_clawback_covers): day {number(days)} <= "
                        f"commission.clawback_days {deal.clawback_days} ... covers: "
                        f"{_yes(covers)}")
            if not churn_filter.holds:
                out.lines.append("    -> not this churn: the churn filter does not hold")
            elif not in_window:
                out.lines.append("    -> not this churn: outside the window")
            elif recovered:
                out.lines.append("    -> not this churn: the deal's clawback recovers it")
            else:
                qualifying.append((days, loc))
                if after:
                    alert = join_alert(rule, deal, churn, days, currency)
                    out.lines.append(f"    -> this churn raises an alert: {_alert_text(alert)}")
                else:
                    out.lines.append("    -> this churn qualifies")
    out.analysis_fires = bool(qualifying)
    replayed = replay_for(book.pack, path, rule.meta.id, deal)
    out.fires = bool(replayed.alerts)
    if out.fires:
        if after:
            ids = [str(a.evidence.get("churn_event_id")) for a in replayed.alerts]
            out.reason = (f"{len(ids)} alert{'s' if len(ids) > 1 else ''} (churn "
                          f"{', '.join(ids)}), {_alert_text(replayed.alerts[0])}")
        else:
            alert = replayed.alerts[0]
            out.reason = (f"the deal came {number(float(alert.evidence.get('days', 0.0)))} days "
                          f"after churn {alert.evidence.get('churn_event_id')}, "
                          f"{_alert_text(alert)}")
    elif not deal_filter.holds:
        out.reason = "the deal filter does not hold"
    elif not found.churns:
        out.reason = f"no churn of account {deal.account_id} in the file"
    else:
        out.reason = f"none of the account's {len(found.churns)} churns qualifies"
    if out.fires != out.analysis_fires:
        _disagree(out, path)
    elif after and out.fires:
        expected = {loc.event.event_id for _, loc in qualifying}
        got = {str(a.evidence.get("churn_event_id")) for a in replayed.alerts}
        if expected != got:
            _disagree(out, path,
                      f" on which churns (the replay's alerts: {', '.join(sorted(got))})")


def _aggregate_rule(out: Explanation, book: RuleBook, spec: AggregateRuleSpec,
                    rule: AggregateRule, found: DealInFile, deal_filter: FilterResult,
                    path: str) -> None:
    deal = found.deal
    if not deal_filter.holds:
        out.reason = "the deal filter does not hold: the deal counts in no period of the rule"
        return
    group = str(getattr(deal, rule.group_by))
    period, _ = quarter_of(deal.time)
    out.lines.append(f"  counts in: {rule.group_by} {group}, period {period} "
                     f"(closed_at {time_text(deal.time)})")
    churned = False
    if rule.counts_churn:
        churned = _churn_lines(out, book, spec, rule, found, path)
    replayed = replay_for(book.pack, path, rule.meta.id, deal, group, period)
    seen = replayed.period
    where = f"{rule.group_by} {group} in {period}"
    if seen is None:
        out.lines.append(f"  a replay of {path} never evaluated {where}")
        out.analysis_fires = True  # the deal passes: the replay should have counted it
        out.fires = False
        out.reason = f"the replay counted no deal in {where}"
        _disagree(out, path, " (the deal is not counted in its period)")
        return
    out.lines.append(f"  a replay of {path}, {where}: {seen.deals} deal"
                     f"{'s' if seen.deals != 1 else ''}, this one "
                     f"{'among them' if seen.counted else 'NOT among them'}")
    out.lines.extend(_measure_lines(rule, seen))
    op, limit = rule.threshold_op, rule.threshold
    fired = bool(replayed.alerts) and seen.counted
    if seen.value is None:
        out.lines.append(f"    not evaluated: {_not_evaluated(rule, seen)}")
        reason = f"{where} is not evaluated: {_not_evaluated(rule, seen)}"
    else:
        crosses = rule.crosses(seen.value)
        out.lines.append(f"    value {number(seen.value)} {THRESHOLD_SYMBOLS[op]} "
                         f"{number(limit)} ({op}) ... {_yes(crosses)}")
        verb = "crosses" if crosses else "does not cross"
        reason = f"{where}: {_measure_name(rule)} {number(seen.value)} {verb} {op} {number(limit)}"
        if fired:
            reason += f", {_alert_text(replayed.alerts[0])}"
    out.analysis_fires = seen.counted and seen.value is not None and rule.crosses(seen.value)
    out.fires = fired
    out.reason = reason
    if not seen.counted:
        _disagree(out, path, " (the deal is not counted in its period)")
    elif rule.counts_churn and churned != seen.churned:
        _disagree(out, path, " on whether the deal churned")
    elif out.fires != out.analysis_fires:
        _disagree(out, path)


def _churn_lines(out: Explanation, book: RuleBook, spec: AggregateRuleSpec,
                 rule: AggregateRule, found: DealInFile, path: str) -> bool:
    """Whether a churn of the account counts the deal as churned, churn by churn."""
    deal = found.deal
    if rule.churn_within_months:
        until = add_months(deal.time, rule.churn_within_months)
        window = (f"after the close and within {rule.churn_within_months} months "
                  f"(by {time_text(until)})")
    else:
        window = f"0..{show(rule.churn_within_days)} days after the close"
    if not found.churns:
        out.lines.append(f"  churned: no churn of account {deal.account_id} in {path}")
        return False
    out.lines.append(f"  churned (a churn {window}):")
    churned = False
    for loc in found.churns:
        churn = loc.event
        assert isinstance(churn, Churn)
        out.lines.append("  " + _churn_title(loc))
        churn_filter = explain_filter("churn", spec.churn, CHURN_FIELDS, churn, book.lists)
        out.lines.append("      churn filter:")
        out.lines.extend(churn_filter.lines("        "))
        in_window = rule.churned_in_window(deal.time, churn.time)
        days = (churn.time - deal.time) / DAY
        out.lines.append(f"      {number(days)} days after the close, in the window ... "
                         f"{_yes(in_window)}")
        counts = churn_filter.holds and in_window
        churned = churned or counts
        out.lines.append(f"      -> {'counts' if counts else 'does not count'} the deal as "
                         f"churned")
    return churned


def _measure_name(rule: AggregateRule) -> str:
    return rule.measure.replace("_", " ")


def _measure_lines(rule: AggregateRule, seen: PeriodSeen) -> list[str]:
    totals = seen.totals
    paid = sum(t[1] for t in totals.values())
    if rule.measure == "early_churn_share":
        mark = ", this one among them" if seen.churned else ""
        return [f"    churned within {show(rule.churn_within_days)} days: {seen.churned_count} "
                f"of {seen.deals} deals{mark}"]
    if rule.measure == "commission_retention":
        mark = " (this deal's among the churned)" if seen.churned else ""
        return [f"    commission paid {paid:,.2f}, on deals churned within "
                f"{rule.churn_within_months} months {seen.churned_amount:,.2f}{mark}, "
                f"retained {paid - seen.churned_amount:,.2f}"]
    if rule.measure == "new_logo_commission_share":
        new_logo = totals.get("new_logo", (0.0, 0.0, 0.0))[1]
        return [f"    new-logo commission {new_logo:,.2f} of {paid:,.2f}"]
    lines = []
    for deal_type in ("renewal", "new_logo"):
        count, commission, acv = totals.get(deal_type, (0.0, 0.0, 0.0))
        rate = f", rate {number(commission / acv)}" if acv else ""
        lines.append(f"    {deal_type}: {int(count)} deals, commission {commission:,.2f} "
                     f"on ACV {acv:,.2f}{rate}")
    return lines


def _not_evaluated(rule: AggregateRule, seen: PeriodSeen) -> str:
    totals = seen.totals
    if rule.measure == "renewal_rate_ratio":
        renewal = totals.get("renewal", (0.0, 0.0, 0.0))
        new_logo = totals.get("new_logo", (0.0, 0.0, 0.0))
        need_r, need_n = rule.min_deals.get("renewal", 0), rule.min_deals.get("new_logo", 0)
        if renewal[0] < need_r or new_logo[0] < need_n:
            return (f"{int(renewal[0])} renewal and {int(new_logo[0])} new-logo deals, "
                    f"min_deals renewal {need_r}, new_logo {need_n}")
        return "a renewal or new-logo ACV of 0, or no new-logo commission"
    need = rule.min_deals["all"]
    if seen.deals < need:
        return f"{seen.deals} deals, fewer than min_deals {need}"
    return "no commission paid on its deals"
