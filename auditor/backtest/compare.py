"""Replays the same history under two rule packs and compares their alerts, rule by rule."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from auditor.engine.alerts import Alert, money
from auditor.replay.parallel import make_replay
from auditor.rules.pack import RulePack


@dataclass
class RuleChange:
    """One rule's alerts under the baseline and the candidate, matched by alert_id."""

    rule: str
    added: list[Alert] = field(default_factory=list)
    removed: list[Alert] = field(default_factory=list)
    changed: list[tuple[Alert, Alert]] = field(default_factory=list)  # (baseline, candidate)
    kept: int = 0
    at_risk_baseline: float = 0.0
    at_risk_candidate: float = 0.0

    @property
    def differs(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def at_risk_change(self) -> float:
        return money(self.at_risk_candidate - self.at_risk_baseline)

    def to_dict(self, examples: int) -> dict[str, Any]:
        return {
            "rule": self.rule, "added": len(self.added), "removed": len(self.removed),
            "changed": len(self.changed), "kept": self.kept,
            "at_risk_baseline": money(self.at_risk_baseline),
            "at_risk_candidate": money(self.at_risk_candidate),
            "at_risk_change": self.at_risk_change,
            "examples": {
                "added": [a.to_dict() for a in self.added[:examples]],
                "removed": [a.to_dict() for a in self.removed[:examples]],
                "changed": [{"baseline": b.to_dict(), "candidate": c.to_dict()}
                            for b, c in self.changed[:examples]],
            },
        }


def replay_alerts(pack: RulePack, files: Iterable[str], lateness_days: float = 30.0,
                  jobs: int = 1) -> dict[str, Alert]:
    """The alerts of a replay of `files` by id, in the order found (with any `jobs`)."""
    alerts: dict[str, Alert] = {}

    def keep(alert: Alert) -> None:
        alerts[alert.alert_id] = alert

    make_replay(pack, jobs, on_alert=keep, lateness_days=lateness_days).run_files(files)
    return alerts


def compare(baseline: dict[str, Alert], candidate: dict[str, Alert]) -> list[RuleChange]:
    """Per rule (sorted by id), what the candidate adds, removes and changes."""
    changes: dict[str, RuleChange] = {}

    def change(rule: str) -> RuleChange:
        return changes.setdefault(rule, RuleChange(rule))

    for alert_id, before in baseline.items():
        entry = change(before.rule)
        entry.at_risk_baseline += before.at_risk
        after = candidate.get(alert_id)
        if after is None:
            entry.removed.append(before)
        elif after.to_dict() != before.to_dict():
            entry.changed.append((before, after))
        else:
            entry.kept += 1
    for alert_id, after in candidate.items():
        entry = change(after.rule)
        entry.at_risk_candidate += after.at_risk
        if alert_id not in baseline:
            entry.added.append(after)
    return [changes[rule] for rule in sorted(changes)]


def render(changes: list[RuleChange], currency: str, examples: int = 3) -> str:
    out = ["== comp-auditor backtest: candidate vs baseline =="]
    differing = [c for c in changes if c.differs]
    if not differing:
        out.append(f"no differences: {sum(c.kept for c in changes):,} alerts in both")
    for c in differing:
        out.append(f"{c.rule}: +{len(c.added):,} added, -{len(c.removed):,} removed, "
                   f"~{len(c.changed):,} changed, {c.kept:,} kept; commission at risk "
                   f"{c.at_risk_baseline:,.2f} -> {c.at_risk_candidate:,.2f} {currency} "
                   f"({c.at_risk_change:+,.2f})")
        for alert in c.added[:examples]:
            out.append(f"    + [{alert.severity}] {alert.summary}")
        for alert in c.removed[:examples]:
            out.append(f"    - [{alert.severity}] {alert.summary}")
        for before, after in c.changed[:examples]:
            fields = [k for k, v in before.to_dict().items() if after.to_dict()[k] != v]
            out.append(f"    ~ {before.summary} (changed: {', '.join(fields)})")
    same = [c for c in changes if not c.differs]
    if same and differing:
        out.append("unchanged: " + ", ".join(f"{c.rule} ({c.kept:,})" for c in same))
    total = sum(c.at_risk_change for c in changes)
    out.append(f"commission at risk, all rules: {total:+,.2f} {currency}")
    return "\n".join(out)
