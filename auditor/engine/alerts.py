"""Alert contract v1: one finding, with its evidence, as it leaves the engine."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def alert_id(rule_id: str, *key: str) -> str:
    """Deterministic, so a re-delivered alert can be recognised and de-duplicated. A finding
    about a deal is keyed by (account, deal, ...): deal ids are unique per account only."""
    return hashlib.sha256("\x1f".join((rule_id, *key)).encode()).hexdigest()


def money(amount: float) -> float:
    return round(amount, 2)


# Money classes, in the order a tie between two is broken.
MONEY_CLASSES = ("unrecovered", "recoverable", "overpaid", "exposure")


@dataclass(slots=True)
class Alert:
    alert_id: str
    rule: str
    kind: str
    severity: str
    event_time: str | None  # None only for findings about a plan itself, not an event
    summary: str
    at_risk: float
    # What the money is: unrecovered, recoverable, exposure, overpaid; None for ratio findings.
    # A finding whose deals fall in several classes has the amount of each in evidence["money"]
    # and here the class of the largest.
    money_class: str | None
    currency: str
    deal_id: str | None = None
    account_id: str | None = None
    rep_id: str | None = None
    team: str | None = None
    plan_id: str | None = None
    group_by: str | None = None
    group: str | None = None
    period: str | None = None
    value: float | None = None
    threshold: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    runbook: str = ""

    @property
    def metric_team(self) -> str:
        """The bounded `team` label: the deal's team, or the group of a by-team aggregate."""
        if self.team is not None:
            return self.team
        return self.group if self.group_by == "team" and self.group is not None else ""

    @property
    def counts(self) -> bool:
        """Its money counts in finance's figures: not a finding of an experimental rule (one
        on trial, its alerts marked `labels.status: experimental`)."""
        return self.labels.get("status") != "experimental"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        # Fields in contract order, read without asdict's deep copy (a third of replay's time
        # when it writes alerts); the same text as json.dumps(self.to_dict()).
        return _ENCODE({name: getattr(self, name) for name in _FIELDS})


_FIELDS = tuple(f.name for f in fields(Alert))
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
