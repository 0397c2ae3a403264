"""The human summary printed at the end of a replay."""

from __future__ import annotations

from collections import Counter, defaultdict

from auditor.engine.alerts import Alert
from auditor.metrics.counters import RunCounters

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class FindingsDigest:
    """Keeps counts and a few examples per rule, whatever the number of alerts."""

    def __init__(self, examples_per_rule: int = 2) -> None:
        self.examples_per_rule = examples_per_rule
        self.by_rule: Counter[tuple[str, str]] = Counter()
        self.at_risk: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.examples: defaultdict[str, list[Alert]] = defaultdict(list)
        self.currency = ""

    def add(self, alert: Alert) -> None:
        self.by_rule[alert.rule, alert.severity] += 1
        self.at_risk[alert.rule, alert.severity] += alert.at_risk
        self.currency = alert.currency
        examples = self.examples[alert.rule]
        if len(examples) < self.examples_per_rule:
            examples.append(alert)

    def render(self, counters: RunCounters) -> str:
        out = ["", "== comp-auditor replay summary =="]
        outcomes = counters.events_by_outcome()
        total = sum(outcomes.values())
        out.append(f"events: {total:,} read -- " + ", ".join(
            f"{outcomes.get(k, 0):,} {k}" for k in ("processed", "late", "duplicate", "invalid")))
        if counters.deadletters:
            out.append("dead letters by reason: " + ", ".join(
                f"{reason} {n:,}" for reason, n in sorted(counters.deadletters.items())))
        if not self.by_rule:
            out.append("findings: none")
            return "\n".join(out)
        out.append(f"findings: {sum(self.by_rule.values()):,}")
        rows = sorted(self.by_rule.items(), key=lambda kv: (SEVERITY_ORDER.get(kv[0][1], 9),
                                                             kv[0][0]))
        for (rule, severity), n in rows:
            risk = self.at_risk[rule, severity]
            money = f"   at risk {risk:>14,.2f} {self.currency}" if risk else ""
            out.append(f"  {severity:<8} {rule:<26} {n:>7,}{money}")
        total_risk = sum(self.at_risk.values())
        out.append(f"commission at risk: {total_risk:,.2f} {self.currency}")
        out.append("examples:")
        for rule in sorted(self.examples):
            for alert in self.examples[rule]:
                out.append(f"  [{alert.severity}] {alert.rule}: {alert.summary}")
        return "\n".join(out)
