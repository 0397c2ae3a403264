"""Renders the report: one HTML document with its charts (inline SVG), style and script inside.

Nothing in the page loads anything: a Content-Security-Policy forbids every fetch, so the file
behaves the same offline, from a mail attachment or a file share. Every text that comes from
the inputs is escaped. The output depends on the inputs only (no clock, no random ids): the
same files give the same bytes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from auditor.findings.read import MONEY_CLASSES, UNCLASSIFIED, Finding
from auditor.report import charts
from auditor.report.assets import CSS, JS
from auditor.report.data import (
    WHATIF_FIELDS,
    PlanAudit,
    ReportInputs,
    RetentionRow,
    Summary,
    WhatIf,
)

TITLE = "Commission audit report"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; base-uri 'none'; form-action 'none'")
# More rows than this make a page a browser struggles with; the CSV export has them all.
MAX_FINDING_ROWS = 20_000
SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
NO_TEAM = "(no team)"
GROUP_NAMES = {"plan_id": "plan", "team": "team"}


def render(inputs: ReportInputs) -> str:
    findings = inputs.alerts.findings
    currency = _currency(inputs)
    sections = [
        ("overview", "Overview", _overview(inputs, currency)),
        ("money", "Money", _money(inputs, currency)),
        ("retention", "Commission retention", _retention(inputs)),
        ("plans", "Plan audit", _plan_audit(inputs)),
        ("whatif", "Plan what-if", _whatif(inputs)),
        ("findings", "Findings", _findings(findings, currency)),
    ]
    nav = "".join(f'<li><a href="#{key}">{escape(title)}</a></li>' for key, title, _ in sections)
    body = "\n".join(f'<section id="{key}">\n<h2>{escape(title)}</h2>\n{content}\n</section>'
                     for key, title, content in sections)
    inputs_line = ", ".join(
        f"{escape(name)} <code>{escape(value)}</code>" for name, value in inputs.sources)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{TITLE}</h1>
<p class="meta">From {inputs_line}. Amounts in {escape(currency or "the reporting currency")}.</p>
<nav><ul>{nav}</ul></nav>
</header>
{body}
<script>{JS}</script>
</body>
</html>
"""


# -- sections --------------------------------------------------------------------------------

def _overview(inputs: ReportInputs, currency: str) -> str:
    findings = inputs.alerts.findings
    parts: list[str] = []
    severities: dict[str, int] = defaultdict(int)
    for finding in findings:
        severities[finding.severity or "unknown"] += 1
    by_severity = ", ".join(f"{severities[s]:,} {escape(s)}"
                            for s in sorted(severities, key=lambda s: -SEVERITY_RANK.get(s, 0)))
    at_risk = sum(f.at_risk for f in findings)
    parts.append(f"<p>{len(findings):,} findings" + (f" ({by_severity})" if findings else "")
                 + f"; commission at risk summed over findings {_money_text(at_risk, currency)}"
                 " (a deal flagged by several rules counts once per rule).</p>")
    if inputs.alerts.skipped:
        lines = ", ".join(str(n) for n, _ in inputs.alerts.skipped[:20])
        more = " ..." if len(inputs.alerts.skipped) > 20 else ""
        parts.append(f'<p class="note">{len(inputs.alerts.skipped):,} line(s) of the alerts '
                     f"file are not alerts and were skipped (lines {lines}{more}).</p>")
    summary = inputs.summary.value
    if summary is None:
        parts.append(_unavailable("run summary", inputs.summary.note))
        return "\n".join(parts)
    if summary.events is not None:
        rows = [(escape(k), _num(v)) for k, v in summary.events.items()]
        parts.append("<h3>Events</h3>" + _simple_table(("outcome", "events"), rows, (False, True)))
    else:
        parts.append(_unavailable("event counts", "the summary has no \"events\""))
    if summary.paid_total is not None:
        parts.append(f"<p>Commission paid: <strong>{_money_text(summary.paid_total, currency)}"
                     "</strong> (processed deals, duplicates excluded).</p>")
    if summary.paid_rows:
        periods, series = _pivot((r.quarter, r.plan_id or "(no plan)", r.amount)
                                 for r in summary.paid_rows)
        chart = charts.stacked_bars("paid-plan", "Commission paid per quarter, by plan",
                                    periods, series, currency)
        parts.append(_figure(chart, "Sum of commission.amount of processed deals, by the "
                             "quarter of closed_at."))
    for note in summary.notes:
        parts.append(f'<p class="note">{escape(note)}.</p>')
    return "\n".join(parts)


def _money(inputs: ReportInputs, currency: str) -> str:
    findings = inputs.alerts.findings
    summary = inputs.summary.value
    parts: list[str] = []
    parts.append(_class_totals(summary, inputs.summary.note, currency))
    parts.append(_rule_totals(summary, findings, currency))

    if summary is not None and summary.money_rows is not None:
        periods, series = _pivot((r.quarter, r.money_class, r.amount) for r in summary.money_rows)
        series = _class_order(series)
        caption = ("From the run summary: each deal counted once per class (its largest amount "
                   "in that class), by quarter.")
        team_rows = [(r.quarter, r.team or NO_TEAM, r.amount) for r in summary.money_rows]
        team_caption = ("From the run summary: each deal counted once per class, summed over "
                        "the classes, by quarter.")
    else:
        periods, series = _pivot((f.period, cls, amount) for f in findings if f.period
                                 for cls, amount in f.money().items())
        series = _class_order(series)
        caption = ("Summed over findings (no run summary): a deal flagged by several rules "
                   "counts once per rule. Quarter: the aggregate's period, or that of the "
                   "finding's event time.")
        team_rows = [(f.period, f.team_or_group or NO_TEAM, f.at_risk) for f in findings
                     if f.period and f.at_risk > 0]
        team_caption = ("Summed over findings: a deal flagged by several rules counts once per "
                        "rule. Findings about a rep or a plan have no team.")
    parts.append(_chart_or_note("money-class", "Money at risk per quarter, by class",
                                periods, series, currency, caption))
    periods, series = _pivot((f.period, f.rule, f.at_risk) for f in findings
                             if f.period and f.at_risk > 0)
    parts.append(_chart_or_note(
        "money-rule", "Commission at risk per quarter, by rule", periods, series, currency,
        "Sum of at_risk of each rule's findings: a deal flagged by several rules counts once "
        "per rule. Quarter: the aggregate's period, or that of the finding's event time."))
    periods, series = _pivot(team_rows)
    parts.append(_chart_or_note("money-team", "Money at risk per quarter, by team", periods,
                                series, currency, team_caption))
    return "\n".join(parts)


def _class_totals(summary: Summary | None, note: str | None, currency: str) -> str:
    title = "<h3>Money by class (each deal counted once per class)</h3>"
    if summary is None:
        return title + _unavailable("de-duplicated totals by class", note)
    if summary.by_class is None:
        return title + _unavailable("de-duplicated totals by class",
                                    "the summary has no \"money.by_class\"")
    paid = summary.paid_total
    rows = []
    for cls in _ordered_classes(summary.by_class):
        amount = summary.by_class[cls]
        rows.append((escape(cls), _num(amount, 2), _share(amount, paid)))
    head = ("class", f"amount ({escape(currency)})", "share of commission paid")
    return (title + _simple_table(head, rows, (False, True, True))
            + '<p class="note">Classes may overlap: a deal can be both exposure (paid ahead) '
              "and unrecovered (its account left).</p>")


def _rule_totals(summary: Summary | None, findings: Sequence[Finding], currency: str) -> str:
    title = "<h3>Money by rule (per-rule sums: may double count)</h3>"
    rows: list[tuple[str, str, float, int | None]]
    if summary is not None and summary.by_rule is not None:
        rows = [(r.rule, r.money_class, r.amount, r.findings) for r in summary.by_rule]
        source = "From the run summary."
    else:
        sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for finding in findings:
            for cls, amount in finding.money().items():
                sums[finding.rule, cls][0] += amount
                sums[finding.rule, cls][1] += 1  # the findings with money in that class
        rows = [(rule, cls, total, int(count)) for (rule, cls), (total, count)
                in sorted(sums.items())]
        source = "Summed over the findings (no run summary)."
    if not rows:
        return title + '<p class="note">No finding puts money at risk.</p>'
    paid = summary.paid_total if summary is not None else None
    table_rows = [(escape(rule), escape(cls), _num(amount, 2), _share(amount, paid),
                   "" if count is None else _num(count))
                  for rule, cls, amount, count in rows]
    head = ("rule", "class", f"amount ({escape(currency)})", "share of commission paid",
            "findings")
    return (title + _simple_table(head, table_rows, (False, False, True, True, True),
                                  sortable=True)
            + f'<p class="note">{source} A deal flagged by several rules counts in each of '
              "them, so these do not add up to the totals by class.</p>")


def _retention(inputs: ReportInputs) -> str:
    summary = inputs.summary.value
    if summary is None:
        return _unavailable("commission retention", inputs.summary.note)
    if summary.retention_rows is None:
        return _unavailable("commission retention", "the summary has no \"retention\"")
    months = summary.retention_months
    parts = [f"<p>Share of a quarter's commission paid on deals whose account had no full churn "
             f"within {months if months is not None else 'N'} months of the close. Filled "
             "points are settled; hollow points are live estimates over what is known so far."
             "</p>"]
    for group_by in ("plan_id", "team"):
        rows = [r for r in summary.retention_rows if r.group_by == group_by]
        name = GROUP_NAMES[group_by]
        if not rows:
            parts.append(_unavailable(f"retention per {name}",
                                      f"the summary has no rows by {group_by}"))
            continue
        target = summary.retention_targets.get(group_by)
        parts.append(_figure(_retention_chart(group_by, rows, target),
                             f"Commission retention per {name} and quarter of closed_at"
                             + (f"; dashed line: the target, {target:.0%}." if target is not None
                                else "; no target given.")))
    parts.append(_retention_table(summary.retention_rows))
    return "\n".join(parts)


def _retention_chart(group_by: str, rows: Sequence[RetentionRow],
                     target: float | None) -> charts.Chart:
    periods = sorted({r.period for r in rows})
    lines = []
    for group in sorted({r.group for r in rows}):
        mine = sorted((r for r in rows if r.group == group), key=lambda r: r.period)
        lines.append(charts.Line(group, [r.period for r in mine], [r.share for r in mine],
                                 [r.status != "settled" for r in mine]))
    name = GROUP_NAMES[group_by]
    return charts.share_lines(f"retention-{name}", f"Commission retention per {name}",
                              periods, lines, target)


def _retention_table(rows: Sequence[RetentionRow]) -> str:
    body = [(escape(r.group_by), escape(r.group), escape(r.period), escape(r.status),
             _num(r.paid, 2), _num(r.retained, 2), _share(r.share, 1.0))
            for r in sorted(rows, key=lambda r: (r.group_by, r.group, r.period))]
    head = ("by", "group", "quarter", "status", "paid", "retained", "share")
    return ("<details><summary>Retention figures</summary>"
            + _simple_table(head, body, (False, False, False, False, True, True, True),
                            sortable=True)
            + "</details>")


def _plan_audit(inputs: ReportInputs) -> str:
    plans: PlanAudit | None = inputs.plans.value
    if plans is None:
        return _unavailable("the plan audit", inputs.plans.note)
    parts = [f"<p>What each plan registered in <code>{escape(plans.source)}</code> rewards "
             "before any deal is closed (as <code>auditor plans audit</code>).</p>"]
    counts: dict[str, int] = defaultdict(int)
    for finding in plans.findings:
        counts[finding.plan_id] += 1
    parts.append("<ul>" + "".join(
        f"<li><strong>{escape(p)}</strong>: "
        + (f"{counts[p]} finding(s)" if counts[p] else "clean") + "</li>"
        for p in plans.plan_ids) + "</ul>")
    if plans.findings:
        rows = [(escape(f.plan_id), _severity(f.severity), escape(f.rule), escape(f.summary))
                for f in plans.findings]
        parts.append(_simple_table(("plan", "severity", "finding", "summary"), rows,
                                   (False, False, False, False), sortable=True))
    return "\n".join(parts)


def _whatif(inputs: ReportInputs) -> str:
    whatif: WhatIf | None = inputs.whatif.value
    if whatif is None:
        return _unavailable("a plan what-if", inputs.whatif.note)
    currency = whatif.currency or _currency(inputs)
    parts = [f"<p>Each historical deal of the plan paid again under the candidate terms. "
             f"Amounts in {escape(currency)}.</p>"]
    if not whatif.plans:
        parts.append('<p class="note">The what-if has no plans.</p>')
    for plan in whatif.plans:
        parts.append(f"<h3>Plan {escape(plan.plan_id)}</h3>")
        if plan.changes:
            parts.append("<ul>" + "".join(
                f"<li><code>{escape(name)}</code>: {_json_text(old)} &rarr; {_json_text(new)}"
                "</li>" for name, old, new in plan.changes) + "</ul>")
        else:
            parts.append('<p class="note">No changes to the plan.</p>')
        if plan.totals:
            rows = [(escape(k), _num(v, 2) if isinstance(v, int | float)
                     and not isinstance(v, bool) else _json_text(v))
                    for k, v in plan.totals.items()]
            parts.append(_simple_table(("total", "value"), rows, (False, True)))
        if plan.rows:
            head = ("team", "quarter", *(f.replace("_", " ") for f in WHATIF_FIELDS))
            body = [(escape(r.team), escape(r.quarter),
                     *(_num(r.figures[f], 0 if f in ("deals", "churned_deals") else 2)
                       for f in WHATIF_FIELDS)) for r in plan.rows]
            numeric = (False, False, *(True for _ in WHATIF_FIELDS))
            parts.append('<div class="scroll">' + _simple_table(head, body, numeric,
                                                                 sortable=True) + "</div>")
    for note in whatif.notes:
        parts.append(f'<p class="note">{escape(note)}.</p>')
    return "\n".join(parts)


FINDING_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("severity", True), ("rule", False), ("kind", False), ("period", False),
    ("event time", False), ("team", False), ("plan", False), ("rep", False),
    ("account", False), ("deal", False), ("group", False), ("class", False),
    ("at risk", True), ("value", True), ("threshold", True), ("summary", False),
    ("evidence", False))


def _findings(findings: Sequence[Finding], currency: str) -> str:
    if not findings:
        return '<p class="note">No findings.</p>'
    ordered = sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), -f.at_risk,
                                              f.event_time or "", f.alert_id))
    shown = ordered[:MAX_FINDING_ROWS]
    intro = (f"<p>{len(findings):,} findings, most severe and largest amount first. Click a "
             "column's header to sort by it, again to reverse.")
    if len(shown) < len(findings):
        intro += (f" Only the first {len(shown):,} are listed here; "
                  "<code>auditor findings export</code> writes them all as CSV.")
    intro += "</p>"
    search = ('<p><label>Filter: <input type="search" id="findings-filter" '
              'placeholder="words that a row contains"></label> '
              f'<span class="muted">showing <span id="findings-shown">{len(shown)}</span> of '
              f"{len(shown)}</span></p>")
    num_attrs = ' data-type="num" class="num"'
    head = "".join(
        f'<th scope="col"{num_attrs if numeric else ""}>'
        f'<button type="button">{escape(name)}</button></th>'
        for name, numeric in FINDING_COLUMNS)
    rows = "\n".join(_finding_row(f, currency) for f in shown)
    return (intro + search + '<div class="scroll"><table class="sortable findings" '
            f'id="findings-table"><thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n'
            "</tbody></table></div>")


def _finding_row(f: Finding, currency: str) -> str:
    group = f"{f.group_by}={f.group}" if f.group is not None else ""
    if f.money_class is not None:
        money_class = f.money_class
    else:
        money_class = UNCLASSIFIED if f.at_risk > 0 else ""
    evidence = json.dumps(f.evidence, indent=1, sort_keys=True, ensure_ascii=False)
    cells = [
        f'<td data-sort="{SEVERITY_RANK.get(f.severity, 0)}">{_severity(f.severity)}</td>',
        _td(f.rule), _td(f.kind), _td(f.period), _td(f.event_time), _td(f.team),
        _td(f.plan_id), _td(f.rep_id), _td(f.account_id), _td(f.deal_id), _td(group),
        _td(money_class),
        f'<td class="num" data-sort="{f.at_risk!r}">{_num(f.at_risk, 2)}</td>',
        _num_td(f.value), _num_td(f.threshold),
        f'<td class="summary">{escape(f.summary)}</td>',
        f"<td><details><summary>evidence</summary><pre>alert_id {escape(f.alert_id)}\n"
        f"{escape(evidence)}</pre></details></td>",
    ]
    return f'<tr data-alert-id="{escape(f.alert_id)}">' + "".join(cells) + "</tr>"


# -- helpers ---------------------------------------------------------------------------------

def _currency(inputs: ReportInputs) -> str:
    summary = inputs.summary.value
    if summary is not None and summary.currency:
        return summary.currency
    for finding in inputs.alerts.findings:
        if finding.currency:
            return finding.currency
    return ""


def _pivot(rows: Iterable[tuple[str | None, str, float]]
           ) -> tuple[list[str], dict[str, list[float]]]:
    """(sorted periods, {series: amount per period}) from (period, series, amount) rows."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    periods: set[str] = set()
    for period, label, amount in rows:
        if period is None:
            continue
        periods.add(period)
        sums[label][period] += amount
    ordered = sorted(periods)
    return ordered, {label: [sums[label].get(p, 0.0) for p in ordered] for label in sorted(sums)}


def _ordered_classes(labels: Iterable[str]) -> list[str]:
    known = (*MONEY_CLASSES, UNCLASSIFIED)
    present = set(labels)
    return [c for c in known if c in present] + sorted(present - set(known))


def _class_order(series: Mapping[str, list[float]]) -> dict[str, list[float]]:
    return {c: series[c] for c in _ordered_classes(series)}


def _chart_or_note(name: str, title: str, periods: Sequence[str],
                   series: Mapping[str, Sequence[float]], currency: str, caption: str) -> str:
    if not periods or not any(any(v) for v in series.values()):
        return f"<h3>{escape(title)}</h3>" + _unavailable("this chart", "no money at risk")
    return _figure(charts.stacked_bars(name, title, periods, series, currency), caption)


def _figure(chart: charts.Chart, caption: str) -> str:
    return f"<figure>{chart.svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _unavailable(what: str, why: str | None) -> str:
    reason = f": {escape(why)}" if why else ""
    return f'<p class="unavailable">Not available: {escape(what)}{reason}.</p>'


def _simple_table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool],
                  sortable: bool = False) -> str:
    def th(name: str, num: bool) -> str:
        attrs = ' data-type="num" class="num"' if num else ""
        label = f'<button type="button">{name}</button>' if sortable else name
        return f'<th scope="col"{attrs}>{label}</th>'

    header = "".join(th(name, num) for name, num in zip(head, numeric, strict=True))
    body = "\n".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>"
                         for c, num in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows)
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{header}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _td(value: str | None) -> str:
    return f"<td>{escape(value)}</td>" if value else "<td></td>"


def _num_td(value: float | None) -> str:
    if value is None:
        return '<td class="num"></td>'
    return f'<td class="num" data-sort="{value!r}">{value:g}</td>'


def _num(value: float | None, decimals: int = 0) -> str:
    return "" if value is None else f"{value:,.{decimals}f}"


def _share(amount: float | None, whole: float | None) -> str:
    if amount is None or not whole:
        return ""
    return f"{amount / whole:.1%}"


def _money_text(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {escape(currency)}".rstrip()


def _severity(severity: str) -> str:
    cls = severity if severity in SEVERITY_RANK else "unknown"
    return f'<span class="sev sev-{cls}">{escape(severity)}</span>'


def _json_text(value: Any) -> str:
    return f"<code>{escape(json.dumps(value, ensure_ascii=False))}</code>"
