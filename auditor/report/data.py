"""The report's inputs, read leniently: the alerts file, and optionally the replay's summary,
a plan what-if and the plan audit of a rules directory.

The summary and what-if files come from other commands whose formats grow over time, so every
part is optional: a missing file, a file that is not JSON, a missing key or a malformed row
makes that part (or row) absent with a note saying why, and the section of the report that
needs it says "not available" instead of failing the whole report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from auditor.errors import AuditorError
from auditor.findings.read import AlertsFile, number, read_alerts
from auditor.plans.audit import PlanFinding, audit

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PaidRow:
    plan_id: str
    team: str
    quarter: str
    amount: float


@dataclass(frozen=True)
class MoneyRow:
    money_class: str
    plan_id: str
    team: str
    quarter: str
    amount: float


@dataclass(frozen=True)
class RuleMoney:
    rule: str
    money_class: str
    amount: float
    findings: int | None


@dataclass(frozen=True)
class RetentionRow:
    group_by: str
    group: str
    period: str
    status: str
    paid: float | None
    retained: float | None
    share: float | None


@dataclass
class Summary:
    currency: str | None = None
    events: dict[str, int] | None = None
    paid_total: float | None = None
    paid_rows: list[PaidRow] | None = None
    by_class: dict[str, float] | None = None
    money_rows: list[MoneyRow] | None = None
    by_rule: list[RuleMoney] | None = None
    retention_months: int | None = None
    retention_rows: list[RetentionRow] | None = None
    retention_targets: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


WHATIF_FIELDS = ("paid_actual", "paid_candidate", "recovered_actual", "recovered_candidate",
                 "unrecovered_actual", "unrecovered_candidate", "deals", "churned_deals")


@dataclass(frozen=True)
class WhatIfRow:
    team: str
    quarter: str
    figures: dict[str, float | None]  # WHATIF_FIELDS


@dataclass
class WhatIfPlan:
    plan_id: str
    changes: list[tuple[str, Any, Any]]  # (field, old, new)
    totals: dict[str, Any]
    rows: list[WhatIfRow]


@dataclass
class WhatIf:
    currency: str | None
    plans: list[WhatIfPlan]
    notes: list[str] = field(default_factory=list)


@dataclass
class PlanAudit:
    source: str
    plan_ids: list[str]
    findings: list[PlanFinding]


@dataclass
class Part(Generic[T]):
    """An optional input: its value, or None with the reason it is not available."""

    value: T | None = None
    note: str | None = None


@dataclass
class ReportInputs:
    alerts_name: str
    alerts: AlertsFile
    summary: Part[Summary] = field(default_factory=Part)
    whatif: Part[WhatIf] = field(default_factory=Part)
    plans: Part[PlanAudit] = field(default_factory=Part)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (what, file) read


def load_json(path: Path) -> tuple[Any, str | None]:
    """(document, None), or (None, why it could not be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except OSError as exc:
        return None, f"{path} cannot be read: {exc.strerror or exc}"
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"{path} is not JSON: {exc}"


def load_summary(path: Path) -> Part[Summary]:
    doc, why = load_json(path)
    if why is not None:
        return Part(note=why)
    if not isinstance(doc, dict):
        return Part(note=f"{path} is not a JSON object")
    return Part(parse_summary(doc))


def parse_summary(doc: dict[str, Any]) -> Summary:
    s = Summary(currency=_str(doc.get("currency")))
    events = _dict(doc.get("events"))
    if events is not None:
        s.events = {k: int(v) for k, v in _numbers(events).items()}
    paid = _dict(doc.get("commission_paid"))
    if paid is not None:
        s.paid_total = number(paid.get("total"))
        s.paid_rows = _rows(paid.get("rows"), _paid_row, "commission_paid.rows", s.notes)
    money = _dict(doc.get("money"))
    if money is not None:
        by_class = _dict(money.get("by_class"))
        if by_class is not None:
            s.by_class = _numbers(by_class)
        s.money_rows = _rows(money.get("rows"), _money_row, "money.rows", s.notes)
        s.by_rule = _rows(money.get("by_rule"), _rule_money, "money.by_rule", s.notes)
    retention = _dict(doc.get("retention"))
    if retention is not None:
        months = number(retention.get("months"))
        s.retention_months = int(months) if months is not None else None
        s.retention_rows = _rows(retention.get("rows"), _retention_row, "retention.rows",
                                 s.notes)
        targets = _dict(retention.get("targets")) or {}
        s.retention_targets = _numbers(targets)
    return s


def load_whatif(path: Path) -> Part[WhatIf]:
    doc, why = load_json(path)
    if why is not None:
        return Part(note=why)
    if not isinstance(doc, dict) or not isinstance(doc.get("plans"), list):
        return Part(note=f"{path} has no \"plans\" list")
    notes: list[str] = []
    plans: list[WhatIfPlan] = []
    for index, item in enumerate(doc["plans"]):
        plan = _whatif_plan(item, notes, index)
        if plan is not None:
            plans.append(plan)
    return Part(WhatIf(_str(doc.get("currency")), plans, notes))


def load_plan_audit(rules: Path) -> Part[PlanAudit]:
    """The static plan audit of `auditor plans audit`, on `rules`/plans.yaml."""
    from auditor.rules.plans import load_plans

    try:
        registry = load_plans(rules)
    except AuditorError as exc:
        return Part(note=f"the plan registry cannot be loaded: {exc}")
    except OSError as exc:
        return Part(note=f"the plan registry cannot be read: {exc}")
    if registry is None:
        return Part(note=f"no plans registered: {rules / 'plans.yaml'} does not exist")
    return Part(PlanAudit(registry.source, sorted(registry.plans), audit(registry)))


def load_inputs(alerts: Path, summary: Path | None = None, whatif: Path | None = None,
                rules: Path | None = None) -> ReportInputs:
    """Everything the report shows; OSError only when the alerts file cannot be read."""
    inputs = ReportInputs(str(alerts), read_alerts(alerts), sources=[("alerts", str(alerts))])
    inputs.summary = (load_summary(summary) if summary is not None
                      else Part(note="no summary given (--summary)"))
    inputs.whatif = (load_whatif(whatif) if whatif is not None
                     else Part(note="no what-if given (--whatif)"))
    inputs.plans = (load_plan_audit(rules) if rules is not None
                    else Part(note="plan audit not requested (--plans-audit)"))
    for what, path, part in (("summary", summary, inputs.summary),
                             ("what-if", whatif, inputs.whatif)):
        if path is not None and part.value is not None:
            inputs.sources.append((what, str(path)))
    if inputs.plans.value is not None:
        inputs.sources.append(("plans", inputs.plans.value.source))
    return inputs


# -- lenient field readers -------------------------------------------------------------------

def _dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        amount = number(value)
        if amount is not None:
            out[str(key)] = amount
    return out


def _str(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _rows(value: object, parse: Callable[[dict[str, Any]], R | None], name: str,
          notes: list[str]) -> list[R] | None:
    if not isinstance(value, list):
        return None
    rows: list[R] = []
    bad = 0
    for item in value:
        parsed = parse(item) if isinstance(item, dict) else None
        if parsed is None:
            bad += 1
        else:
            rows.append(parsed)
    if bad:
        notes.append(f"{bad} malformed row(s) of {name} skipped")
    return rows


def _paid_row(item: dict[str, Any]) -> PaidRow | None:
    amount = number(item.get("amount"))
    quarter = _str(item.get("quarter"))
    if amount is None or quarter is None:
        return None
    return PaidRow(_str(item.get("plan_id")) or "", _str(item.get("team")) or "", quarter,
                   amount)


def _money_row(item: dict[str, Any]) -> MoneyRow | None:
    amount = number(item.get("amount"))
    quarter = _str(item.get("quarter"))
    if amount is None or quarter is None:
        return None
    return MoneyRow(_str(item.get("class")) or "unclassified", _str(item.get("plan_id")) or "",
                    _str(item.get("team")) or "", quarter, amount)


def _rule_money(item: dict[str, Any]) -> RuleMoney | None:
    amount = number(item.get("amount"))
    rule = _str(item.get("rule"))
    if amount is None or rule is None:
        return None
    count = number(item.get("findings"))
    return RuleMoney(rule, _str(item.get("class")) or "unclassified", amount,
                     int(count) if count is not None else None)


def _retention_row(item: dict[str, Any]) -> RetentionRow | None:
    group_by, group, period = (_str(item.get(k)) for k in ("group_by", "group", "period"))
    if group_by is None or group is None or period is None:
        return None
    paid, retained, share = (number(item.get(k)) for k in ("paid", "retained", "share"))
    if share is None and paid and retained is not None:
        share = retained / paid
    return RetentionRow(group_by, group, period, _str(item.get("status")) or "", paid,
                        retained, share)


def _whatif_plan(item: object, notes: list[str], index: int) -> WhatIfPlan | None:
    if not isinstance(item, dict) or _str(item.get("plan_id")) is None:
        notes.append(f"plan #{index + 1} of the what-if has no plan_id; skipped")
        return None
    changes: list[tuple[str, Any, Any]] = []
    for name, pair in (_dict(item.get("changes")) or {}).items():
        if isinstance(pair, list) and len(pair) == 2:
            changes.append((str(name), pair[0], pair[1]))
        else:
            changes.append((str(name), None, pair))
    rows: list[WhatIfRow] = []
    raw_rows = item.get("rows")
    for raw in raw_rows if isinstance(raw_rows, list) else []:
        if not isinstance(raw, dict):
            continue
        rows.append(WhatIfRow(_str(raw.get("team")) or "", _str(raw.get("quarter")) or "",
                              {k: number(raw.get(k)) for k in WHATIF_FIELDS}))
    return WhatIfPlan(str(item["plan_id"]), changes, _dict(item.get("totals")) or {}, rows)
