"""`auditor findings export`: an alerts file as CSV, one column per field finance filters on.

The columns are fixed (COLUMNS), in that order, with the finding's evidence as JSON last. Null
fields are empty cells; `period` is the aggregate's period, or the UTC calendar quarter of
`event_time` for per-deal findings. Money is written with two decimals, ratios as the alert
gave them.

Ids, teams and summaries come from the events, which anyone upstream can write: a text cell
that a spreadsheet would read as a formula (starting with =, +, -, @, a tab or a carriage
return) is written with a leading apostrophe, the usual defence against CSV injection.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from auditor.findings.read import Finding

COLUMNS = ("alert_id", "rule", "kind", "severity", "event_time", "period", "team", "plan_id",
           "rep_id", "account_id", "deal_id", "group_by", "group", "money_class", "at_risk",
           "currency", "value", "threshold", "summary", "evidence")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def row(finding: Finding) -> list[str]:
    return [
        _text(finding.alert_id), _text(finding.rule), _text(finding.kind),
        _text(finding.severity), _text(finding.event_time), _text(finding.period),
        _text(finding.team), _text(finding.plan_id), _text(finding.rep_id),
        _text(finding.account_id), _text(finding.deal_id), _text(finding.group_by),
        _text(finding.group), _text(finding.money_class), f"{finding.at_risk:.2f}",
        _text(finding.currency), _ratio(finding.value), _ratio(finding.threshold),
        _text(finding.summary),
        # Evidence is JSON, which never starts with a formula character.
        json.dumps(finding.evidence, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
    ]


def write_csv(findings: Iterable[Finding], out: TextIO) -> int:
    """Writes the header and one row per finding; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for finding in findings:
        writer.writerow(row(finding))
        count += 1
    return count


def _text(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _ratio(value: float | None) -> str:
    return "" if value is None else repr(value)
