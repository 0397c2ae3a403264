"""The summary of a replay: printed for people, and as JSON for reports (`--summary-out`).

Money is shown two ways, and says which: commission flagged by class, each (account, deal)
counted once per class however many rules flag it, as an amount and a share of commission
paid (the totals to act on); and per rule, which may count one deal under several rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from auditor.engine.alerts import MONEY_CLASSES, Alert
from auditor.metrics.counters import PAID, RunCounters
from auditor.metrics.retention import RetentionSource, retention_figures

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
OUTCOMES = ("processed", "late", "duplicate", "invalid")


class FindingsDigest:
    """Keeps counts, money and a few examples per rule, whatever the number of alerts."""

    def __init__(self, examples_per_rule: int = 2) -> None:
        self.examples_per_rule = examples_per_rule
        self.by_rule: Counter[tuple[str, str]] = Counter()
        # (rule, class) -> money and findings; per rule, so not a total.
        self.money: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.findings: Counter[tuple[str, str]] = Counter()
        self.examples: defaultdict[str, list[Alert]] = defaultdict(list)
        self.experimental: set[str] = set()  # rules on trial: their money is not counted

    def add(self, alert: Alert) -> None:
        self.by_rule[alert.rule, alert.severity] += 1
        if not alert.counts:
            self.experimental.add(alert.rule)
        if alert.at_risk:
            for money_class, amount in (alert.evidence.get("money") or {
                    alert.money_class or "unclassified": alert.at_risk}).items():
                self.money[alert.rule, money_class] += amount
                self.findings[alert.rule, money_class] += 1
        examples = self.examples[alert.rule]
        if len(examples) < self.examples_per_rule:
            examples.append(alert)

    def render(self, counters: RunCounters, retention: RetentionSource = lambda: ()) -> str:
        data = summary_data(counters, self, retention)
        currency = data["currency"]
        out = ["", "== comp-auditor replay summary =="]
        events = data["events"]
        out.append(f"events: {sum(events.values()):,} read -- " + ", ".join(
            f"{events[k]:,} {k}" for k in OUTCOMES))
        if counters.deadletters:
            out.append("dead letters by reason: " + ", ".join(
                f"{reason} {n:,}" for reason, n in sorted(counters.deadletters.items()) if n))
        paid = data["commission_paid"]["total"]
        out.append(f"commission paid: {paid:,.2f} {currency}")
        by_class = data["money"]["by_class"]
        if by_class:
            out.append("commission flagged by findings, each deal once per class "
                       "(share of commission paid):")
            for money_class, amount in by_class.items():
                share = f"{amount / paid:6.1%}" if paid else "     -"
                out.append(f"  {money_class:<12} {amount:>16,.2f} {currency}  {share}")
        out += _retention_lines(data["retention"])
        if data["excepted"]:
            out.append("findings excepted by the rules' exceptions (not alerts, no money "
                       "counted):")
            for row in data["excepted"]:
                out.append(f"  {row['rule']:<26} {row['exception']:<26} {row['findings']:>7,}")
        if not self.by_rule:
            out.append("findings: none")
            return "\n".join(out)
        out.append(f"findings: {sum(self.by_rule.values()):,} (money per rule: a deal flagged "
                   "by two rules is in both)")
        rows = sorted(self.by_rule.items(), key=lambda kv: (SEVERITY_ORDER.get(kv[0][1], 9),
                                                             kv[0][0]))
        trial = " (experimental: not in the totals)"
        width = max(26, *(len(rule) for rule, _ in self.by_rule))
        for (rule, severity), n in rows:
            out.append(f"  {severity:<8} {rule:<{width}} {n:>7,}"
                       + (trial if rule in self.experimental else ""))
        for row in data["money"]["by_rule"]:
            out.append(f"    {row['rule']:<{width + 6}} {row['class']:<12} "
                       f"{row['amount']:>16,.2f} {currency}"
                       + (trial if row["rule"] in self.experimental else ""))
        out.append("examples:")
        for rule in sorted(self.examples):
            for alert in self.examples[rule]:
                out.append(f"  [{alert.severity}] {alert.rule}: {alert.summary}")
        return "\n".join(out)


def _class_order(money_class: str) -> tuple[int, str]:
    return (MONEY_CLASSES.index(money_class) if money_class in MONEY_CLASSES else 99,
            money_class)


def _retention_lines(retention: dict[str, Any]) -> list[str]:
    """The newest settled quarter of each plan and team, against its target."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in retention["rows"]:
        if row["status"] == "settled" and row["share"] is not None:
            newest[row["group_by"], row["group"]] = row  # rows are sorted by period
    if not newest:
        return []
    lines = [f"commission retention ({retention['months']} months, newest settled quarter; "
             "target " + ", ".join(f"{k} {v:.0%}" for k, v in retention["targets"].items())
             + "):"]
    for (group_by, group), row in sorted(newest.items()):
        below = " below target" if row["share"] < retention["targets"].get(group_by, 0) else ""
        lines.append(f"  {group_by:<8} {group:<22} {row['period']}  {row['share']:6.1%}{below}")
    return lines


def summary_data(counters: RunCounters, digest: FindingsDigest,
                 retention: RetentionSource = lambda: ()) -> dict[str, Any]:
    """The summary as data; the shape `auditor report` reads (README, Report)."""
    figures = sorted(retention_figures(counters, retention), key=lambda v: (v.period, v.key))
    outcomes = counters.events_by_outcome()
    paid_rows: list[dict[str, Any]] = []
    money_rows: list[dict[str, Any]] = []
    by_class: defaultdict[str, float] = defaultdict(float)
    for (what, plan_id, team, quarter), amount in sorted(counters.money_by_quarter.items()):
        row = {"plan_id": plan_id, "team": team, "quarter": quarter, "amount": round(amount, 2)}
        if what == PAID:
            paid_rows.append(row)
        else:
            money_rows.append({"class": what, **row})
            by_class[what] += amount
    return {
        "currency": counters.currency,
        "events": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "commission_paid": {"total": round(sum(a for (w, *_), a in
                                               counters.money_by_quarter.items() if w == PAID), 2),
                            "rows": paid_rows},
        "money": {
            "by_class": {c: round(by_class[c], 2) for c in sorted(by_class, key=_class_order)},
            "rows": money_rows,
            "by_rule": [{"rule": rule, "class": money_class, "amount": round(amount, 2),
                         "findings": digest.findings[rule, money_class]}
                        for (rule, money_class), amount in sorted(
                            digest.money.items(),
                            key=lambda kv: (kv[0][0], _class_order(kv[0][1])))],
        },
        "excepted": [{"rule": rule, "exception": exception, "findings": n}
                     for (rule, exception), n in counters.excepted_series()],
        "retention": {
            "months": max((f.months for f in figures), default=12),
            "rows": [{"group_by": f.group_by, "group": f.group, "period": f.period,
                      "status": f.status, "paid": f.paid, "retained": f.retained,
                      "share": f.share} for f in figures],
            "targets": dict(sorted(counters.retention_targets.items())),
        },
    }
