"""Builders for the unit tests: contract-shaped event dicts, decoded through the real decoder.

Times are a fixed base datetime plus a timedelta, so "90 days" and "90.5 days" are exact.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.engine.alerts import Alert
from auditor.engine.engine import AuditEngine
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import Churn, Deal
from auditor.intake import Intake
from auditor.metrics.counters import RunCounters
from auditor.rules.pack import RulePack

# A Monday well inside 2026-Q1, so a few months either way stay in known quarters.
BASE = datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC)

_ids = itertools.count(1)


def at(days: float = 0.0, base: datetime = BASE) -> datetime:
    return base + timedelta(days=days)


def rfc3339(when: datetime) -> str:
    """RFC 3339 as producers write it; UTC gets a `Z`."""
    text = when.isoformat()
    return text.replace("+00:00", "Z")


def ts(days: float = 0.0, base: datetime = BASE) -> str:
    """The timestamp `days` (a real number) after `base`."""
    return rfc3339(at(days, base))


def _next(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def deal_dict(commission: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid `deal_closed` dict. Override any top-level field by keyword, commission fields
    by `commission={...}` (merged into the defaults) or by dotted keyword via
    `**{"commission.amount": 5}`. Pass `days=` for closed_at = BASE + days.

    If the amount is overridden but paid_upfront is not, paid_upfront follows the amount.
    """
    days = overrides.pop("days", 0.0)
    comm: dict[str, Any] = {
        "amount": 1200.0,
        "paid_upfront": 1200.0,
        "basis": "acv",
        "rate": 0.1,
        "clawback_days": 0,
    }
    dotted = {k.split(".", 1)[1]: overrides.pop(k) for k in list(overrides)
              if k.startswith("commission.")}
    given = {**(commission or {}), **dotted}
    if "amount" in given and "paid_upfront" not in given:
        comm["paid_upfront"] = given["amount"]
    comm.update(given)
    deal_id = overrides.pop("deal_id") if "deal_id" in overrides else _next("deal")
    event: dict[str, Any] = {
        "event_type": "deal_closed",
        "event_id": _next("evt-deal"),
        "schema_version": 1,
        "deal_id": deal_id,
        "account_id": "acct-1",
        "rep_id": "rep-1",
        "team": "team-a",
        "plan_id": "plan-a",
        "deal_type": "new_logo",
        "closed_at": ts(days),
        "term_months": 12,
        "acv": 12000.0,
        "tcv": 12000.0,
        "discount_pct": 0.1,
        "currency": "USD",
        "commission": comm,
    }
    event.update(overrides)
    return event


def churn_dict(**overrides: Any) -> dict[str, Any]:
    """A valid `account_churned` dict; `days=` for churned_at = BASE + days."""
    days = overrides.pop("days", 0.0)
    event: dict[str, Any] = {
        "event_type": "account_churned",
        "event_id": _next("evt-churn"),
        "schema_version": 1,
        "account_id": "acct-1",
        "churned_at": ts(days),
        "churn_type": "full",
        "arr_lost": 12000.0,
        "currency": "USD",
    }
    event.update(overrides)
    return event


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode("utf-8")


def decode_all(decoder: EventDecoder, events: Iterable[dict[str, Any]]) -> list[Deal | Churn]:
    """Dicts -> events through the real decoder; a dead letter here is a bug in the test."""
    out: list[Deal | Churn] = []
    for n, event in enumerate(events, 1):
        result = decoder.decode(raw(event), f"test:{n}")
        assert not isinstance(result, DeadLetter), result
        out.append(result)
    return out


@dataclass
class Run:
    engine: AuditEngine
    counters: RunCounters
    alerts: list[Alert] = field(default_factory=list)
    flushed: list[Alert] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    inputs: int = 0

    def feed(self, decoder: EventDecoder, items: Iterable[dict[str, Any] | bytes]) -> list[Alert]:
        """Each item (dict or raw bytes) through the shells' intake, then the engine, as replay
        does."""
        produced: list[Alert] = []
        intake = Intake(decoder, self.counters)
        for item in items:
            self.inputs += 1
            data = item if isinstance(item, bytes) else raw(item)
            result = intake.take(data, f"test:{self.inputs}", self.engine.process)
            if isinstance(result, DeadLetter):
                self.deadletters.append(result)
                continue
            produced.extend(result)
        self.alerts.extend(produced)
        return produced

    def flush(self) -> list[Alert]:
        out = self.engine.flush()
        self.flushed.extend(out)
        self.alerts.extend(out)
        return out

    def of(self, rule: str) -> list[Alert]:
        return [a for a in self.alerts if a.rule == rule]


def run(rules: RulePack, items: Iterable[dict[str, Any] | bytes], *, flush: bool = True,
        lateness_days: float = 30.0) -> Run:
    """A fresh engine with RunCounters as its sink, fed `items` in order, then flushed."""
    counters = RunCounters()
    result = Run(AuditEngine(rules, counters, lateness_days=lateness_days), counters)
    result.feed(EventDecoder(rules.currency), items)
    if flush:
        result.flush()
    return result


def of_rule(alerts: Iterable[Alert], rule: str) -> list[Alert]:
    return [a for a in alerts if a.rule == rule]


def recovered_states(table: dict[str, Any], from_dict: Any, partitions: int = 4) -> dict[str, Any]:
    """Every partition's states as a restarted worker rebuilds them from `table`'s records."""
    from auditor.worker.state_log import Changelog, PartitionLog

    def unreadable(what: str, problem: str) -> None:
        raise AssertionError(f"{what}: {problem}")

    # A state class that logs patches (AggregateState) merges them with its merge_changes.
    merge = getattr(getattr(from_dict, "__self__", None), "merge_changes", None)
    states: dict[str, Any] = {}
    for p in range(partitions):
        states.update(PartitionLog(table, Changelog("t"), p, from_dict, unreadable,
                                   merge=merge).items())
    return states
