"""Reading an alerts file (JSON Lines, alert contract v1) for reports and exports.

Lenient by design: a report of last night's replay should still be made when the file comes
from an older auditor (no `money_class`, rev 4) or has a damaged line. Missing fields read as
null, and a line that is not a JSON object is skipped and counted, with its line number, so
the caller can say so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MONEY_CLASSES = ("unrecovered", "recoverable", "exposure", "overpaid")
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class Finding:
    """One alert, with the fields finance filters on."""

    alert_id: str
    rule: str
    kind: str
    severity: str
    event_time: str | None
    period: str | None  # the aggregate's period, else the UTC quarter of event_time
    team: str | None
    plan_id: str | None
    rep_id: str | None
    account_id: str | None
    deal_id: str | None
    group_by: str | None
    group: str | None
    money_class: str | None
    at_risk: float
    currency: str
    value: float | None
    threshold: float | None
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def team_or_group(self) -> str | None:
        """The finding's team: the deal's, or the group of a by-team aggregate."""
        if self.team is not None:
            return self.team
        return self.group if self.group_by == "team" else None

    def money(self) -> dict[str, float]:
        """Amount at risk per money class: `evidence.money` when given, else `at_risk` in
        its class ("unclassified" when the alert has none); empty when nothing is at risk."""
        given = self.evidence.get("money")
        if isinstance(given, dict):
            out = {str(k): float(v) for k, v in given.items() if _is_number(v) and v > 0}
            if out:
                return out
        if self.at_risk > 0:
            return {self.money_class or UNCLASSIFIED: self.at_risk}
        return {}


@dataclass
class AlertsFile:
    findings: list[Finding]
    skipped: list[tuple[int, str]]  # (line number, why) of the lines that were not alerts


def quarter_of(timestamp: str | None) -> str | None:
    """`2026-Q1` for an RFC 3339 time, in UTC; None when absent or unreadable."""
    if not timestamp:
        return None
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{when.year}-Q{(when.month - 1) // 3 + 1}"


def read_alerts(path: Path) -> AlertsFile:
    """The alerts of a JSON Lines file; OSError when it cannot be read at all."""
    with path.open("r", encoding="utf-8", errors="replace") as lines:
        return parse_alerts(lines)


def parse_alerts(lines: Iterable[str]) -> AlertsFile:
    findings: list[Finding] = []
    skipped: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            skipped.append((number, f"not JSON ({exc.args[0] if exc.args else exc})"))
            continue
        if not isinstance(obj, dict):
            skipped.append((number, "not a JSON object"))
            continue
        findings.append(to_finding(obj))
    return AlertsFile(findings, skipped)


def to_finding(obj: dict[str, Any]) -> Finding:
    kind = _text(obj.get("kind")) or ""
    event_time = _text(obj.get("event_time"))
    period = _text(obj.get("period"))
    if period is None and kind != "aggregate":
        period = quarter_of(event_time)
    evidence = obj.get("evidence")
    money_class = _text(obj.get("money_class"))
    return Finding(
        alert_id=_text(obj.get("alert_id")) or "",
        rule=_text(obj.get("rule")) or "",
        kind=kind,
        severity=_text(obj.get("severity")) or "",
        event_time=event_time,
        period=period,
        team=_text(obj.get("team")),
        plan_id=_text(obj.get("plan_id")),
        rep_id=_text(obj.get("rep_id")),
        account_id=_text(obj.get("account_id")),
        deal_id=_text(obj.get("deal_id")),
        group_by=_text(obj.get("group_by")),
        group=_text(obj.get("group")),
        money_class=money_class,
        at_risk=number(obj.get("at_risk")) or 0.0,
        currency=_text(obj.get("currency")) or "",
        value=number(obj.get("value")),
        threshold=number(obj.get("threshold")),
        summary=_text(obj.get("summary")) or "",
        evidence=evidence if isinstance(evidence, dict) else {},
    )


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
