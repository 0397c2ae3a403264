"""One alert (contract v1) as one row of the `findings` table, or the reason it cannot be one.

Pure: no database here. A record is refused (and kept in `findings_rejected` by the caller,
with its raw bytes) when it is not JSON (`NaN` and `Infinity` included: PostgreSQL's jsonb
refuses them), not an object, not an alert (a field missing or of the wrong type; the detail
names it), or not storable (a NUL character, which PostgreSQL text and jsonb cannot hold; an
amount beyond numeric(18,2)).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

# The table's columns a row gives, in table order (first_seen and updated_at are the database's).
COLUMNS = ("alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk",
           "money_class", "currency", "deal_id", "account_id", "rep_id", "team", "plan_id",
           "group_by", "group", "period", "value", "threshold", "evidence", "labels", "runbook",
           "quarter", "unrecovered", "recoverable", "exposure", "overpaid", "source")
MONEY_COLUMNS = ("unrecovered", "recoverable", "exposure", "overpaid")
_REQUIRED_TEXT = ("alert_id", "rule", "kind", "severity", "summary", "currency")
_OPTIONAL_TEXT = ("money_class", "deal_id", "account_id", "rep_id", "team", "plan_id",
                  "group_by", "group", "period")
CENT = Decimal("0.01")
# numeric(18,2): 16 digits before the point.
MONEY_LIMIT = Decimal("1e16")
# The one event_time past year 9999 the engine writes: the exclusive end of 9999-Q4.
_END_OF_TIME = "10000-01-01T00:00:00Z"
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z", re.ASCII)


class Refused(Exception):
    """A record that cannot be a row: `reason` is a word, `detail` says what and where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Row:
    alert_id: str
    rule: str
    kind: str
    severity: str
    event_time: str | None  # RFC 3339 text; PostgreSQL reads it (years up to 10000)
    summary: str
    at_risk: Decimal
    money_class: str | None
    currency: str
    deal_id: str | None
    account_id: str | None
    rep_id: str | None
    team: str | None
    plan_id: str | None
    group_by: str | None
    group: str | None
    period: str | None
    value: float | None
    threshold: float | None
    evidence: dict[str, Any]
    labels: dict[str, Any]
    runbook: str
    quarter: str | None
    unrecovered: Decimal
    recoverable: Decimal
    exposure: Decimal
    overpaid: Decimal
    source: str
    raw: bytes = field(default=b"", repr=False)  # the record as read, for a late refusal

    def values(self) -> tuple[Any, ...]:
        """The values of COLUMNS, in order (evidence and labels as dicts)."""
        return tuple(getattr(self, name) for name in COLUMNS)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record kept in `findings_rejected`."""

    source: str
    reason: str
    detail: str
    raw: bytes
    key: bytes | None = None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(raw: bytes | None) -> dict[str, Any]:
    """The JSON object of a record, or Refused."""
    if raw is None or not raw.strip():
        raise Refused("empty", "the record has no value")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused("not_json", f"not UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        raise Refused("not_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise Refused("not_object", f"a JSON {type(obj).__name__}, not an object")
    return obj


def parse(raw: bytes | None, source: str) -> Row:
    """The row of one raw record (a Kafka value, a line of an alerts file), or Refused."""
    row = to_row(decode(raw), source)
    row.raw = raw or b""
    return row


def to_row(alert: dict[str, Any], source: str) -> Row:
    """The row of an alert object, or Refused naming the field at fault."""
    texts: dict[str, str | None] = {}
    for name in _REQUIRED_TEXT:
        value = alert.get(name)
        if not isinstance(value, str) or (name == "alert_id" and not value):
            raise Refused("not_alert", f"{name}: {_wanted('text', value, name in alert)}")
        texts[name] = value
    for name in _OPTIONAL_TEXT:
        value = alert.get(name)
        if value is not None and not isinstance(value, str):
            raise Refused("not_alert", f"{name}: {_wanted('text or null', value, True)}")
        texts[name] = value
    runbook = alert.get("runbook", "")
    if not isinstance(runbook, str):
        raise Refused("not_alert", f"runbook: {_wanted('text', runbook, True)}")
    event_time = alert.get("event_time")
    if event_time is not None and not (isinstance(event_time, str) and _is_time(event_time)):
        raise Refused("not_alert", "event_time: " + (
            "not an RFC 3339 date-time" if isinstance(event_time, str)
            else _wanted("text or null", event_time, True)))
    at_risk = alert.get("at_risk")
    if not _is_number(at_risk):
        raise Refused("not_alert", f"at_risk: {_wanted('a number', at_risk, 'at_risk' in alert)}")
    ratios: dict[str, float | None] = {}
    for name in ("value", "threshold"):
        value = alert.get(name)
        if value is not None and not _is_number(value):
            raise Refused("not_alert", f"{name}: {_wanted('a number or null', value, True)}")
        ratios[name] = None if value is None else float(value)
    objects: dict[str, dict[str, Any]] = {}
    for name in ("evidence", "labels"):
        value = alert.get(name, {})
        if not isinstance(value, dict):
            raise Refused("not_alert", f"{name}: {_wanted('an object', value, True)}")
        objects[name] = value
    nul = _nul_at(alert)
    if nul is not None:
        raise Refused("unstorable", f"{nul}: a NUL character, which PostgreSQL cannot store")
    money = objects["evidence"].get("money")
    amounts = {name: _cents(money.get(name), f"evidence.money.{name}")
               if isinstance(money, dict) and _is_number(money.get(name)) else Decimal(0)
               for name in MONEY_COLUMNS}
    period = texts["period"]
    return Row(
        alert_id=str(texts["alert_id"]), rule=str(texts["rule"]), kind=str(texts["kind"]),
        severity=str(texts["severity"]), event_time=event_time, summary=str(texts["summary"]),
        at_risk=_cents(at_risk, "at_risk"), money_class=texts["money_class"],
        currency=str(texts["currency"]), deal_id=texts["deal_id"],
        account_id=texts["account_id"], rep_id=texts["rep_id"], team=texts["team"],
        plan_id=texts["plan_id"], group_by=texts["group_by"], group=texts["group"],
        period=period, value=ratios["value"], threshold=ratios["threshold"],
        evidence=objects["evidence"], labels=objects["labels"], runbook=runbook,
        quarter=period if period else quarter_of(event_time),
        unrecovered=amounts["unrecovered"], recoverable=amounts["recoverable"],
        exposure=amounts["exposure"], overpaid=amounts["overpaid"], source=source,
    )


def quarter_of(timestamp: str | None) -> str | None:
    """`2026-Q1`: the UTC calendar quarter of an RFC 3339 time; None when absent."""
    if timestamp is None:
        return None
    if timestamp == _END_OF_TIME:
        return "10000-Q1"
    when = datetime.fromisoformat(timestamp.upper().replace("Z", "+00:00")).astimezone(UTC)
    return f"{when.year}-Q{(when.month - 1) // 3 + 1}"


def _is_time(text: str) -> bool:
    if text == _END_OF_TIME:
        return True
    if not _RFC3339.match(text):
        return False
    try:
        when = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        when.astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _cents(value: Any, name: str) -> Decimal:
    amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN) \
        if abs(value) < MONEY_LIMIT else None
    if amount is None or abs(amount) >= MONEY_LIMIT:
        raise Refused("unstorable", f"{name}: {value!r} is beyond numeric(18,2)")
    return amount


def _nul_at(value: Any, path: str = "") -> str | None:
    """Where a NUL character is (a field path), or None."""
    if isinstance(value, str):
        return path or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = _nul_at(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _wanted(kind: str, value: object, present: bool) -> str:
    if not present:
        return f"missing (expected {kind})"
    shown = "null" if value is None else json.dumps(value)[:40]
    return f"expected {kind}, got {shown}"


def raw_text(raw: bytes) -> str:
    """A record's bytes as text PostgreSQL can hold: invalid UTF-8 and NUL as U+FFFD."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
