"""The report page: self-contained, escaped, deterministic, and charts that can sit together."""

from __future__ import annotations

import re

import pytest

from auditor.findings.read import parse_alerts
from auditor.report import charts, html
from auditor.report.data import Part, ReportInputs, parse_summary


def inputs_of(*lines: str, summary: dict[str, object] | None = None) -> ReportInputs:
    inputs = ReportInputs("alerts.jsonl", parse_alerts(lines))
    if summary is not None:
        inputs.summary = Part(parse_summary(summary))
    else:
        inputs.summary = Part(note="no summary given (--summary)")
    return inputs


DEAL = ('{"alert_id": "%s", "rule": "%s", "kind": "deal", "severity": "%s", '
        '"event_time": "%s", "summary": "%s", "at_risk": %s, "money_class": %s, '
        '"currency": "USD", "team": "%s", "evidence": {}}')


def deal_line(n: int, rule: str = "tcv-paid-upfront", severity: str = "warning",
              when: str = "2026-01-05T00:00:00Z", summary: str = "s", at_risk: float = 10.0,
              money_class: str = '"exposure"', team: str = "t1") -> str:
    return DEAL % (f"id{n}", rule, severity, when, summary, at_risk, money_class, team)


def test_only_alerts_give_the_charts_from_findings_and_notes_for_the_rest() -> None:
    page = html.render(inputs_of(deal_line(1), deal_line(2, "early-churn-unrecovered",
                                                         "critical", "2026-05-01T00:00:00Z",
                                                         money_class="null")))
    assert set(re.findall(r'data-chart="([^"]+)"', page)) == {"money-class", "money-rule",
                                                               "money-team"}
    assert "Not available: commission retention: no summary given (--summary)" in page
    assert "Not available: a plan what-if" in page and "Not available: the plan audit" in page
    # The older alert without a class is counted as unclassified.
    assert ">unclassified<" in page


def test_no_two_elements_share_an_id_and_every_reference_resolves() -> None:
    summary = {"commission_paid": {"total": 100.0, "rows": [
        {"plan_id": "p", "team": "t", "quarter": "2026-Q1", "amount": 100.0}]},
        "retention": {"months": 12, "targets": {"plan_id": 0.8}, "rows": [
            {"group_by": "plan_id", "group": "p", "period": "2026-Q1", "status": "settled",
             "paid": 100.0, "retained": 70.0, "share": 0.7}]}}
    page = html.render(inputs_of(deal_line(1), deal_line(2, when="2026-04-02T00:00:00Z"),
                                 summary=summary))
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', page))
    assert refs <= set(ids) | {"overview", "money", "retention", "plans", "whatif",
                                "findings"}
    assert "Not available: retention per team: the summary has no rows by team" in page


def test_the_page_is_escaped_and_deterministic() -> None:
    hostile = deal_line(1, summary="<img src=x onerror=alert(1)> &amp;", team="<b>t</b>")
    first = html.render(inputs_of(hostile))
    assert "<img src=x" not in first and "&lt;img src=x onerror=alert(1)&gt;" in first
    assert "<b>t</b>" not in first
    assert html.render(inputs_of(hostile)) == first


def test_findings_are_listed_most_severe_first_up_to_a_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [deal_line(n, at_risk=float(n)) for n in range(5)]
    lines.append(deal_line(9, "early-churn-unrecovered", "critical", at_risk=1.0))
    monkeypatch.setattr(html, "MAX_FINDING_ROWS", 3)
    page = html.render(inputs_of(*lines))
    assert re.findall(r'data-alert-id="([^"]+)"', page) == ["id9", "id4", "id3"]
    assert "Only the first 3 are listed here" in page


def test_a_chart_is_an_inline_svg_with_its_own_ids() -> None:
    chart = charts.stacked_bars("c1", 'Title & "quotes"', ["2026-Q1"], {"a": [1.0]}, "USD")
    head = chart.svg[:chart.svg.index(">")]
    assert chart.svg.startswith("<svg ") and "viewBox=" in head
    assert ' width="' not in head and ' height="' not in head
    assert 'aria-label="Title &amp; &quot;quotes&quot;"' in head
    assert all(i.startswith("c1-") for i in re.findall(r'\bid="([^"]+)"', chart.svg))
    again = charts.stacked_bars("c1", 'Title & "quotes"', ["2026-Q1"], {"a": [1.0]}, "USD")
    assert again.svg == chart.svg

