"""Why one rule did or did not fire for one deal: its filters condition by condition with the
values compared, then what its kind tests (each churn of the account for a join, the upfront
share for a deal rule, the deal's period and the measure's quantities for an aggregate, for a
deal-after-deal the deal as the second of a pair with each other deal of the account as its
first, then as the first with each later deal as its second).

A kind this module does not know (a kind added as just its module) is explained by its filters
alone, each as its spec's FILTERS names it (on the deal, or on each churn of the account), and
the verdict of a replay.

The conditions are evaluated from the rule's spec (conditions.py); the verdict on the last
line is what a replay of the same file did (replayed.py), so the two can be compared: when
they differ (events out of order beyond the allowed lateness, say) a note says so. A finding
the replay made that an exception of the rule kept from being an alert is shown with what the
exception matched; the rule then does not fire, and the conditions holding is no disagreement:
the verdict names the exception."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.engine.alerts import Alert
from auditor.engine.engine import DEFAULT_LATENESS_DAYS
from auditor.engine.findings import time_text
from auditor.engine.periods import DAY, add_months
from auditor.engine.state import AccountState
from auditor.events.models import Churn, Deal
from auditor.explain.conditions import (
    FilterResult,
    explain_filter,
    filter_text,
    number,
    show,
)
from auditor.explain.events import DealInFile, Located
from auditor.explain.replayed import Excepted, PeriodSeen, replay_for
from auditor.explain.specs import AnySpec, RuleBook
from auditor.rules.compiled import CompiledRule, Found
from auditor.rules.exceptions import finding_day
from auditor.rules.hints import did_you_mean
from auditor.rules.kind import FIELDS_OF
from auditor.rules.kinds import kinds
from auditor.rules.kinds._join import JoinSpec
from auditor.rules.kinds.aggregate import AggregateRule, AggregateRuleSpec, ChurnWindow
from auditor.rules.kinds.churn_after_deal import ChurnAfterDeal
from auditor.rules.kinds.deal import DealRule
from auditor.rules.kinds.deal_after_churn import DealAfterChurn
from auditor.rules.kinds.deal_after_deal import DealAfterDeal, DealAfterDealSpec
from auditor.rules.measures import MeasureSpec, Quantity, QuantityParts, QuantitySpec
from auditor.rules.spec import Filter

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
    # The replay's findings about the deal (or its period) that an exception of the rule kept
    # from being alerts.
    excepted: list[Excepted] = field(default_factory=list)

    @property
    def replay_found(self) -> bool:
        """The replay found what the rule looks for: it fired, or an exception excepted it."""
        return self.fires or bool(self.excepted)

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


def _deals(count: float) -> str:
    return f"{int(count)} deal{'' if count == 1 else 's'}"


def _churns_line(deal: Deal, found: DealInFile, path: str) -> str:
    if not found.churns:
        return f"  no churn of account {deal.account_id} in {path}"
    return f"  churns of account {deal.account_id} in {path}: {len(found.churns)}"


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


def kind_of(spec: AnySpec) -> str:
    """The `kind:` the rule is written with: the registered kind whose spec it is."""
    for name, kind in kinds().items():
        if type(spec) is kind.spec:
            return name
    return type(spec).__name__


def spec_filters(spec: AnySpec) -> list[tuple[str, str, Filter]]:
    """(key, event, conditions) of each filter of the rule, as its kind's FILTERS names them:
    the event ("deal" or "churn") is the one the conditions test."""
    filters: list[tuple[str, str, Filter]] = []
    for key, event in type(spec).FILTERS.items():
        conditions: Filter = getattr(spec, key, None) or {}
        filters.append((key, event, conditions))
    return filters


def explain(book: RuleBook, rule_id: str, found: DealInFile, path: str) -> Explanation:
    """Raises UnknownRule when no rule of the directory has that id."""
    spec = rule_spec(book, rule_id)
    kind = kind_of(spec)
    deal = found.deal
    out = Explanation(rule_id, kind, f"{rule_id} ({kind}) on deal {deal.deal_id} of "
                      f"account {deal.account_id} ({found.where}):")
    out.lines.extend(f"  note: {note}" for note in found.notes)
    if not spec.enabled:
        out.lines.append(f"  the rule is disabled (enabled: false, {book.sources[rule_id]}): "
                         "the engine does not run it")
        out.reason = "the rule is disabled"
        return out
    rule = book.pack.by_id()[rule_id]
    if isinstance(rule, DealAfterDeal) and isinstance(spec, DealAfterDealSpec):
        _deal_after_deal(out, book, spec, rule, found, path)  # a filter for each role
        return out
    filters = spec_filters(spec)
    deal_filters: list[tuple[str, FilterResult]] = []
    for key, event, conditions in filters:
        if event == "deal":
            result = explain_filter("deal", conditions, FIELDS_OF[event], deal, book.lists)
            deal_filters.append((key, result))
            out.lines.append(f"  {key} filter:")
            out.lines.extend(result.lines())
    deal_holds = all(result.holds for _, result in deal_filters)
    if isinstance(rule, DealRule):
        _deal_rule(out, book, rule, found, deal_holds, path)
    elif isinstance(rule, ChurnAfterDeal | DealAfterChurn) and isinstance(spec, JoinSpec):
        _join_rule(out, book, spec, rule, found, deal_holds, path)
    elif isinstance(rule, AggregateRule) and isinstance(spec, AggregateRuleSpec):
        _aggregate_rule(out, book, spec, rule, found, deal_holds, path)
    else:
        _filters_only(out, book, filters, deal_filters, rule, found, path)
    return out


def _disagree(out: Explanation, path: str, detail: str = "") -> None:
    """The replay did otherwise than the conditions say: the verdict is the replay's."""
    said = ("fires" if out.fires else "finds it (excepted)" if out.excepted
            else "does not fire")
    out.lines.append(
        f"  note: a replay of {path} {said}, unlike the conditions above{detail}: the engine "
        f"reads the file in order, ignores repeated events, and forgets an account's events "
        f"once later events are past the rules' horizon and the allowed lateness "
        f"({number(DEFAULT_LATENESS_DAYS)} days)")


# Findings an exception of the rule kept from being alerts: what each exception matched of
# the finding (as `excepted_by` tests it), and the verdict that names them.

def _finding_text(alert: Alert) -> str:
    """What a finding is about: a group's period, a deal, a deal with its churn or its first
    deal."""
    if alert.group_by is not None:
        return f"{alert.group_by} {alert.group} in {alert.period}"
    first = alert.evidence.get("first_deal_id")
    if first is not None:
        return f"deal {alert.deal_id} after deal {first}"
    churn = alert.evidence.get("churn_event_id")
    if churn is not None:
        return f"deal {alert.deal_id} with churn {churn}"
    return f"deal {alert.deal_id}"


def _deal_of(found: DealInFile, deal_id: str | None) -> Deal | None:
    """The deal a finding is about: the one explained, or another deal of its account."""
    if deal_id == found.deal.deal_id:
        return found.deal
    for loc in found.deals:
        if isinstance(loc.event, Deal) and loc.event.deal_id == deal_id:
            return loc.event
    return None


def _excepted(out: Explanation, book: RuleBook, found: DealInFile,
              excepted: list[Excepted]) -> None:
    """Each finding of the replay an exception kept from being an alert, with what the
    exception matched of it: its keys, its deal filter, its expiry."""
    out.excepted = list(excepted)
    if not excepted:
        return
    written = {e.name: e for e in rule_spec(book, out.rule_id).exceptions}
    for item in excepted:
        alert, exception = item.alert, item.exception
        out.lines.append(f"  excepted in the replay: {_finding_text(alert)}, "
                         f"{_alert_text(alert)}")
        out.lines.append(f"    exception {exception.name} ({exception.source}):")
        aggregate = alert.group_by is not None
        for key, values in exception.values:
            value = alert.group if aggregate else getattr(alert, key)
            given = exception.matches.get(key)
            shown = (f"in {show(given)}" if isinstance(given, list)
                     else f"== {show(given)}")
            out.lines.append(f"      {key} {show(value)} {shown} ... {_yes(value in values)}")
        spec = written.get(exception.name)
        if spec is not None and spec.deal:
            subject = _deal_of(found, alert.deal_id)
            if subject is None:
                out.lines.append(f"      deal {alert.deal_id}: "
                                 f"{filter_text(spec.deal, book.lists)}")
            else:
                result = explain_filter("deal", spec.deal, FIELDS_OF["deal"], subject,
                                        book.lists)
                out.lines.append(f"      deal filter (deal {alert.deal_id}):")
                out.lines.extend(result.lines("        "))
        day = finding_day(alert)
        which = "last day of the period" if aggregate else "day of the finding"
        out.lines.append(f"      {which} {day} <= expires {exception.last_day} ... "
                         f"{_yes(day <= exception.last_day)}")


def _excepted_reason(excepted: list[Excepted]) -> str:
    """`excepted by NAME (owner O, until D: REASON)`, for each exception that excepted one."""
    named = {item.exception.name: item.exception for item in excepted}
    return "excepted by " + "; by ".join(
        f"{e.name} (owner {e.owner}, until {e.last_day}: {e.reason})" for e in named.values())


def _also_excepted(excepted: list[Excepted]) -> str:
    """Beside the alerts of a verdict that fires: the findings that were excepted."""
    if not excepted:
        return ""
    names = ", ".join(dict.fromkeys(item.exception.name for item in excepted))
    count = len(excepted)
    return f"; {count} more finding{'s' if count > 1 else ''} excepted by {names}"


def _deal_rule(out: Explanation, book: RuleBook, rule: DealRule, found: DealInFile,
               deal_holds: bool, path: str) -> None:
    deal = found.deal
    holds = deal_holds
    reason = "the deal filter does not hold"
    share = rule.min_upfront_share
    if holds and share is not None:
        upfront = deal.paid_upfront >= share * deal.amount  # as the rule tests it
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
    _excepted(out, book, found, replayed.excepted)
    if out.fires:
        out.reason = _alert_text(replayed.alerts[0])
    elif out.excepted:
        out.reason = _excepted_reason(out.excepted)
    else:
        out.reason = reason if not holds else "no alert in the replay"
    if out.replay_found != holds:
        _disagree(out, path)


def _pair_alert(rule: CompiledRule, deal: Deal, churn: Churn, currency: str) -> Alert | None:
    """The alert the rule raises on the deal with this one churn of its account: the rule's
    own, from an account holding the churn only."""
    state = AccountState()
    state.add_churn(churn)
    found = Found(currency)
    rule.on_deal(deal, state, found)
    return found.alerts[0] if found.alerts else None


def _join_rule(out: Explanation, book: RuleBook, spec: JoinSpec,
               rule: ChurnAfterDeal | DealAfterChurn, found: DealInFile, deal_holds: bool,
               path: str) -> None:
    deal = found.deal
    currency = book.pack.currency.reporting
    after = isinstance(rule, ChurnAfterDeal)
    qualifying: list[tuple[float, Located]] = []
    if deal_holds:
        out.lines.append(_churns_line(deal, found, path))
        for loc in found.churns:
            churn = loc.event
            assert isinstance(churn, Churn)
            out.lines.append(_churn_title(loc))
            churn_filter = explain_filter("churn", spec.churn, FIELDS_OF["churn"], churn,
                                          book.lists)
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
            if isinstance(rule, ChurnAfterDeal) and rule.unless_clawback_covers:
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
                alert = _pair_alert(rule, deal, churn, currency) if after else None
                if alert is not None:
                    out.lines.append(f"    -> this churn raises an alert: {_alert_text(alert)}")
                else:
                    out.lines.append("    -> this churn qualifies")
    out.analysis_fires = bool(qualifying)
    replayed = replay_for(book.pack, path, rule.meta.id, deal)
    out.fires = bool(replayed.alerts)
    _excepted(out, book, found, replayed.excepted)
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
        out.reason += _also_excepted(out.excepted)
    elif out.excepted:
        out.reason = _excepted_reason(out.excepted)
    elif not deal_holds:
        out.reason = "the deal filter does not hold"
    elif not found.churns:
        out.reason = f"no churn of account {deal.account_id} in the file"
    else:
        out.reason = f"none of the account's {len(found.churns)} churns qualifies"
    if out.replay_found != out.analysis_fires:
        _disagree(out, path)
    elif after and out.replay_found:
        expected = {loc.event.event_id for _, loc in qualifying}
        found_alerts = [*replayed.alerts, *(item.alert for item in out.excepted)]
        got = {str(a.evidence.get("churn_event_id")) for a in found_alerts}
        if expected != got:
            what = "findings" if out.excepted else "alerts"
            _disagree(out, path,
                      f" on which churns (the replay's {what}: {', '.join(sorted(got))})")


# Deal-after-deal: the deal as the second of a pair, each other deal of the account tried as
# its first; then the deal as the first, each later deal tried as its second.

@dataclass(frozen=True, slots=True)
class _Role:
    """The deal in one role of the rule's pairs (first or second), as the conditions see it."""

    name: str  # "first" or "second"
    holds: bool  # the deal passes this role's filter
    tried: int  # the account's deals tried in the other role
    pairs: tuple[tuple[str, str], ...]  # (first deal id, second deal id) of each that qualifies

    def why_not(self) -> str:
        """Why no pair has the deal in this role."""
        other = "first" if self.name == "second" else "second"
        which = "other" if self.name == "second" else "later"
        if not self.holds:
            return f"the {self.name} filter does not hold"
        if not self.tried:
            return f"no {which} deal of the account in the file"
        return f"none of the account's {self.tried} {which} deals qualifies as its {other}"


def _deal_title(loc: Located, role: str) -> str:
    deal = loc.event
    assert isinstance(deal, Deal)
    return (f"    deal {deal.deal_id} ({loc.where}, {time_text(deal.time)}, {deal.deal_type}, "
            f"rep {deal.rep_id}) as the {role}:")


def _deal_pair_alert(rule: DealAfterDeal, first: Deal, second: Deal,
                     currency: str) -> Alert | None:
    """The alert the rule raises on this pair: the rule's own, from an account holding the
    first deal only."""
    state = AccountState()
    state.add_deal(first)
    found = Found(currency)
    rule.on_deal(second, state, found)
    return next((a for a in found.alerts if a.evidence.get("first_deal_id") == first.deal_id),
                None)


def _deal_role(out: Explanation, book: RuleBook, spec: DealAfterDealSpec, rule: DealAfterDeal,
               found: DealInFile, path: str, role: str) -> _Role:
    """The deal in `role` ("second" or "first"): its filter for that role, then each deal of
    the account that could be the other of the pair (any other deal as its first; a deal
    closed at or after it as its second)."""
    deal = found.deal
    as_second = role == "second"
    other_role = "first" if as_second else "second"
    own, others_filter = (spec.second, spec.first) if as_second else (spec.first, spec.second)
    out.lines.append(f"  as the {role} deal:")
    result = explain_filter("deal", own, FIELDS_OF["deal"], deal, book.lists)
    out.lines.append(f"    {role} filter:")
    out.lines.extend(result.lines("      "))
    if not result.holds:
        out.lines.append(f"    -> not the {role} deal of a pair: the {role} filter does not "
                         f"hold")
        return _Role(role, False, 0, ())
    others = [loc for loc in found.deals if as_second or loc.event.time >= deal.time]
    which = "other" if as_second else "later"
    if not others:
        out.lines.append(f"    no {which} deal of account {deal.account_id} in {path}")
    else:
        out.lines.append(f"    {which} deals of account {deal.account_id} in {path}: "
                         f"{len(others)}")
    pairs: list[tuple[str, str]] = []
    for loc in others:
        other = loc.event
        assert isinstance(other, Deal)
        first, second = (other, deal) if as_second else (deal, other)
        out.lines.append(_deal_title(loc, other_role))
        other_filter = explain_filter("deal", others_filter, FIELDS_OF["deal"], other,
                                      book.lists)
        out.lines.append(f"      {other_role} filter:")
        out.lines.extend(other_filter.lines("        "))
        days = (second.time - first.time) / DAY
        in_window = 0 <= days <= rule.within_days
        label = (f"days from deal {other.deal_id} to this one" if as_second
                 else f"days from this one to deal {other.deal_id}")
        out.lines.append(f"      {label}: {number(days)}, window 0..{show(rule.within_days)} "
                         f"... {_yes(in_window)}")
        same_rep = other.rep_id == deal.rep_id
        if rule.same_rep:
            out.lines.append(f"      same_rep: deal {other.deal_id} by {other.rep_id}, this one "
                             f"by {deal.rep_id} ... {_yes(same_rep)}")
        if not other_filter.holds:
            out.lines.append(f"      -> not this pair: the {other_role} filter does not hold")
        elif not in_window:
            out.lines.append("      -> not this pair: outside the window")
        elif rule.same_rep and not same_rep:
            out.lines.append("      -> not this pair: not the same rep")
        else:
            pairs.append((first.deal_id, second.deal_id))
            alert = _deal_pair_alert(rule, first, second, book.pack.currency.reporting)
            if alert is not None:
                out.lines.append(f"      -> this pair raises an alert: {_alert_text(alert)}")
            else:
                out.lines.append("      -> this pair qualifies")
    return _Role(role, True, len(others), tuple(pairs))


def _pair_ids(alert: Alert) -> tuple[str, str]:
    return (str(alert.evidence.get("first_deal_id")), str(alert.evidence.get("second_deal_id")))


def _deal_after_deal(out: Explanation, book: RuleBook, spec: DealAfterDealSpec,
                     rule: DealAfterDeal, found: DealInFile, path: str) -> None:
    deal = found.deal
    as_second = _deal_role(out, book, spec, rule, found, path, "second")
    as_first = _deal_role(out, book, spec, rule, found, path, "first")
    expected = {*as_second.pairs, *as_first.pairs}
    out.analysis_fires = bool(expected)
    # The rule's alerts are about the second deal: with this one the first, about the other.
    replayed = replay_for(book.pack, path, rule.meta.id, deal, named_as="first_deal_id")
    alerts = [*replayed.alerts, *replayed.naming]
    out.fires = bool(alerts)
    _excepted(out, book, found, replayed.excepted)
    if out.fires:
        pairs = [f"deal {second} {number(float(a.evidence.get('days', 0.0)))} days after deal "
                 f"{first}" for a in alerts for first, second in [_pair_ids(a)]]
        out.reason = (f"{len(alerts)} alert{'s' if len(alerts) > 1 else ''} "
                      f"({'; '.join(pairs)}), {_alert_text(alerts[0])}"
                      f"{_also_excepted(out.excepted)}")
    elif out.excepted:
        out.reason = _excepted_reason(out.excepted)
    elif out.analysis_fires:
        out.reason = "no alert about a pair of this deal in the replay"
    else:
        out.reason = (f"as the second deal, {as_second.why_not()}; as the first deal, "
                      f"{as_first.why_not()}")
    if out.replay_found != out.analysis_fires:
        _disagree(out, path)
    elif out.replay_found:
        got = {_pair_ids(a) for a in [*alerts, *(item.alert for item in out.excepted)]}
        if got != expected:
            shown = ", ".join(f"{second} after {first}" for first, second in sorted(got))
            what = "findings" if out.excepted else "alerts"
            _disagree(out, path, f" on which pairs (the replay's {what}: {shown})")


def _aggregate_rule(out: Explanation, book: RuleBook, spec: AggregateRuleSpec,
                    rule: AggregateRule, found: DealInFile, deal_holds: bool,
                    path: str) -> None:
    deal = found.deal
    if not deal_holds:
        out.reason = "the deal filter does not hold: the deal counts in no period of the rule"
        return
    group = rule.group_of(deal)
    if group is None:  # an optional field the deal left out
        out.lines.append(f"  counts in: no group, the deal has no {rule.group_by}")
        out.reason = f"the deal has no {rule.group_by}: it counts in no period of the rule"
        return
    period, _ = rule.period_of(deal.time)
    out.lines.append(f"  counts in: {rule.group_by} {group}, period {period} "
                     f"(closed_at {time_text(deal.time)})")
    churned = False
    if rule.window is not None:
        churned = _churn_lines(out, book, spec, rule.window, found, path)
    measure = _measure_spec(book, spec)
    out.lines.extend(_measure_lines(rule, measure, book))
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
    out.lines.append(f"  a replay of {path}, {where}: {_deals(seen.deals)}, this one "
                     f"{'among them' if seen.counted else 'NOT among them'}")
    out.lines.extend(_value_lines(rule, measure, seen, deal))
    op, limit = rule.threshold_op, rule.threshold
    fired = bool(replayed.alerts) and seen.counted
    excepted = replayed.excepted if seen.counted else []
    if seen.value is None:
        why = _not_evaluated(rule, measure, seen)
        out.lines.append(f"    not evaluated: {why}")
        reason = f"{where} is not evaluated: {why}"
    else:
        crosses = rule.crosses(seen.value)
        out.lines.append(f"    value {number(seen.value)} {THRESHOLD_SYMBOLS[op]} "
                         f"{number(limit)} ({op}) ... {_yes(crosses)}")
        verb = "crosses" if crosses else "does not cross"
        reason = (f"{where}: {_measure_label(rule)} {number(seen.value)} {verb} {op} "
                  f"{number(limit)}")
        if fired:
            reason += f", {_alert_text(replayed.alerts[0])}"
    out.analysis_fires = seen.counted and seen.value is not None and rule.crosses(seen.value)
    out.fires = fired
    _excepted(out, book, found, excepted)
    out.reason = _excepted_reason(excepted) if excepted and not fired else reason
    if not seen.counted:
        _disagree(out, path, " (the deal is not counted in its period)")
    elif rule.window is not None and churned != seen.churned:
        _disagree(out, path, " on whether the deal churned")
    elif out.replay_found != out.analysis_fires:
        _disagree(out, path)


def _churn_lines(out: Explanation, book: RuleBook, spec: AggregateRuleSpec,
                 window: ChurnWindow, found: DealInFile, path: str) -> bool:
    """Whether a churn of the account counts the deal as churned, churn by churn."""
    deal = found.deal
    if window.months:
        until = add_months(deal.time, window.months)
        span = (f"after the close and within {window.months} months "
                f"(by {time_text(until)})")
    else:
        span = f"0..{show(window.days)} days after the close"
    if not found.churns:
        out.lines.append(f"  churned: no churn of account {deal.account_id} in {path}")
        return False
    out.lines.append(f"  churned (a churn {span}):")
    churned = False
    for loc in found.churns:
        churn = loc.event
        assert isinstance(churn, Churn)
        out.lines.append("  " + _churn_title(loc))
        churn_filter = explain_filter("churn", spec.churn, FIELDS_OF["churn"], churn,
                                      book.lists)
        out.lines.append("      churn filter:")
        out.lines.extend(churn_filter.lines("        "))
        in_window = window.contains(deal.time, churn.time)
        days = (churn.time - deal.time) / DAY
        out.lines.append(f"      {number(days)} days after the close, in the window ... "
                         f"{_yes(in_window)}")
        counts = churn_filter.holds and in_window
        churned = churned or counts
        out.lines.append(f"      -> {'counts' if counts else 'does not count'} the deal as "
                         f"churned")
    return churned


# The aggregate's measure, described from its data: numerator / denominator, each a count or
# a sum (a rate with `per`) over the period's deals that pass its `where`, churned or not.

def _measure_spec(book: RuleBook, spec: AggregateRuleSpec) -> MeasureSpec:
    if isinstance(spec.measure, MeasureSpec):
        return spec.measure
    return book.measures[spec.measure]  # the pack compiled: the name is defined


def _describe(rule: AggregateRule) -> str:
    """The measure's `describe`, as the alert's sentence words it."""
    months = rule.window.months if rule.window is not None else 0
    return rule.measure.describe.replace("{months}", str(months))


def _measure_label(rule: AggregateRule) -> str:
    """How the verdict names the value: the measure's name, or its description."""
    return rule.measure.name.replace("_", " ") if rule.measure.name else _describe(rule)


def _quantity_label(place: str, spec: QuantitySpec) -> str:
    return f"{place} ({spec.name})" if spec.name else place


def _quantities(rule: AggregateRule, measure: MeasureSpec
                ) -> tuple[tuple[str, QuantitySpec, Quantity], ...]:
    return (("numerator", measure.numerator, rule.measure.numerator),
            ("denominator", measure.denominator, rule.measure.denominator))


def _quantity_text(spec: QuantitySpec, compiled: Quantity, book: RuleBook) -> str:
    """`sum of commission.amount / sum of acv over deals with deal_type == renewal`."""
    qualifiers: list[str] = []
    if spec.where:
        qualifiers.append(f"with {filter_text(spec.where, book.lists)}")
    if spec.churned is not None:
        qualifiers.append("counted as churned" if spec.churned else "not counted as churned")
    deals = "deals " + ", ".join(qualifiers) if qualifiers else "deals"
    if spec.sum is None:
        text = f"number of {deals}"
    else:
        what = f"sum of {spec.sum}" + (f" / sum of {spec.per}" if spec.per else "")
        text = f"{what} over {deals if qualifiers else 'all deals'}"
    if compiled.min_deals:
        text += f"; min_deals {compiled.min_deals}"
    return text


def _measure_lines(rule: AggregateRule, measure: MeasureSpec, book: RuleBook) -> list[str]:
    name = f" {rule.measure.name}" if rule.measure.name else ""
    value = "    value = numerator / denominator"
    if rule.min_deals:
        value += f"; min_deals {rule.min_deals} in the period"
    lines = [f"  measure{name}: {_describe(rule)}", value]
    for place, spec, compiled in _quantities(rule, measure):
        lines.append(f"    {_quantity_label(place, spec)}: "
                     f"{_quantity_text(spec, compiled, book)}")
    return lines


def _among(compiled: Quantity, seen: PeriodSeen, deal: Deal) -> bool:
    """The deal counts in the quantity: in the period, passing its `where`, churned as it
    asks."""
    return (seen.counted and (compiled.where is None or compiled.where(deal))
            and (compiled.churned is None or compiled.churned == seen.churned))


def _figures(spec: QuantitySpec, parts: QuantityParts) -> str:
    """A quantity's figures in the period: its deals, and its sum (or rate)."""
    if spec.sum is None:
        return _deals(parts.deals)
    summed = f"{_deals(parts.deals)}, {spec.sum} {parts.total:,.2f}"
    if spec.per is None:
        return summed
    rate = f" = {number(parts.total / parts.per)}" if parts.per else ""
    return f"{summed} / {spec.per} {parts.per:,.2f}{rate}"


def _value_lines(rule: AggregateRule, measure: MeasureSpec, seen: PeriodSeen,
                 deal: Deal) -> list[str]:
    lines = []
    for (place, spec, compiled), parts in zip(_quantities(rule, measure),
                                              (seen.numerator, seen.denominator), strict=True):
        mark = ", this one among them" if _among(compiled, seen, deal) else ""
        lines.append(f"    {_quantity_label(place, spec)}: {_figures(spec, parts)}{mark}")
    return lines


def _not_evaluated(rule: AggregateRule, measure: MeasureSpec, seen: PeriodSeen) -> str:
    """Why the period has no value: in the order the measure tests it."""
    if seen.deals < rule.min_deals:
        return f"{_deals(seen.deals)}, fewer than min_deals {rule.min_deals}"
    for (place, spec, compiled), parts in zip(_quantities(rule, measure),
                                              (seen.numerator, seen.denominator), strict=True):
        label = _quantity_label(place, spec)
        if parts.deals < compiled.min_deals:
            return (f"{label} has {_deals(parts.deals)}, fewer than its min_deals "
                    f"{compiled.min_deals}")
        if parts.value is None:
            return f"{label}: the sum of {spec.per} is 0"
    return f"{_quantity_label('denominator', measure.denominator)} is 0"


# A kind this module does not know: its filters, and the replay's verdict.

def _filters_only(out: Explanation, book: RuleBook, filters: list[tuple[str, str, Filter]],
                  deal_filters: list[tuple[str, FilterResult]], rule: CompiledRule,
                  found: DealInFile, path: str) -> None:
    deal = found.deal
    deal_holds = all(result.holds for _, result in deal_filters)
    churn_sides = [(key, conditions) for key, event, conditions in filters if event == "churn"]
    passing = 0  # churns of the account passing every churn filter
    if deal_holds and churn_sides:
        out.lines.append(_churns_line(deal, found, path))
        for loc in found.churns:
            churn = loc.event
            assert isinstance(churn, Churn)
            out.lines.append(_churn_title(loc))
            holds = True
            for key, conditions in churn_sides:
                result = explain_filter("churn", conditions, FIELDS_OF["churn"], churn,
                                        book.lists)
                out.lines.append(f"    {key} filter:")
                out.lines.extend(result.lines("      "))
                holds = holds and result.holds
            passing += holds
            out.lines.append(f"    -> {'passes' if holds else 'does not pass'} the rule's "
                             f"churn filters")
    out.analysis_fires = deal_holds and (not churn_sides or passing > 0)
    if out.analysis_fires:
        out.lines.append(f"  what else a {out.kind} rule tests is not broken down here: the "
                         f"verdict is a replay's")
    replayed = replay_for(book.pack, path, rule.meta.id, deal)
    out.fires = bool(replayed.alerts)
    _excepted(out, book, found, replayed.excepted)
    if out.fires:
        count = len(replayed.alerts)
        out.reason = (f"{count} alert{'s' if count > 1 else ''}, "
                      f"{_alert_text(replayed.alerts[0])}{_also_excepted(out.excepted)}")
    elif out.excepted:
        out.reason = _excepted_reason(out.excepted)
    elif not deal_holds:
        failed = next(key for key, result in deal_filters if not result.holds)
        out.reason = f"the {failed} filter does not hold"
    elif churn_sides and not found.churns:
        out.reason = f"no churn of account {deal.account_id} in the file"
    elif churn_sides and not passing:
        out.reason = f"none of the account's {len(found.churns)} churns passes its filters"
    else:
        out.reason = "no alert about the deal in the replay"
