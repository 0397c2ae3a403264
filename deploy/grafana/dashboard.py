"""The "Commission vs retention" Grafana dashboard, as code.

Run from anywhere (paths are relative to this file):

    python deploy/grafana/dashboard.py           # rewrites dashboards/commission-vs-retention.json
    python deploy/grafana/dashboard.py --check   # exits 1 if the committed JSON is stale

Needs grafanalib (the package's optional "deploy" extra). Commit the script and the JSON
together: Grafana provisioning reads the JSON, tests/deploy checks the two agree.

Every query is plain PromQL over the metrics the auditor exports (no Grafana variables or
$__rate_interval inside expressions), so the same strings can be run against Prometheus's
HTTP API in tests. Counters are mostly shown as totals rather than rates: a finished
`auditor replay --metrics-port N` is a static exporter, and totals still mean something there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafanalib.core import (
    Dashboard,
    GridPos,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "commission-vs-retention.json"

UID = "comp-auditor-commission-retention"
TITLE = "Commission vs retention"

# A data-source variable rather than a fixed uid, so the dashboard also works in a Grafana
# whose Prometheus data source was provisioned under another name (e.g. on Kubernetes).
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Live-aggregate thresholds of the default rule pack (rules/). They are only drawn here; the
# worker decides breaches itself (auditor_aggregate_breached). Keep in step with the rule files.
NEW_LOGO_PAYOUT_SHARE_MAX = 0.85
RENEWAL_RATE_GAP_MIN = 0.3

# The daily limit of the CompAuditorCommissionAtRiskGrowing alert in prometheus/alerts.yml.
AT_RISK_PER_DAY_LIMIT = 10000.0

SEVERITY_COLOURS = {"critical": "red", "warning": "orange", "info": "blue"}


def target(ref_id: str, expr: str, legend: str = "") -> Target:
    return Target(
        expr=expr,
        legendFormat=legend,
        refId=ref_id,
        datasource=DATASOURCE,
    )


def pos(x: int, y: int, w: int, h: int) -> GridPos:
    return GridPos(h=h, w=w, x=x, y=y)


def row(title: str, y: int) -> RowPanel:
    return RowPanel(title=title, gridPos=pos(0, y, 24, 1))


def colour_by_name(colours: dict[str, str]) -> list[dict[str, object]]:
    """Field overrides that give each named series a fixed colour."""
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
        }
        for name, colour in colours.items()
    ]


def ref_override(ref_id: str, properties: list[dict[str, object]]) -> dict[str, object]:
    return {"matcher": {"id": "byFrameRefID", "options": ref_id}, "properties": properties}


def findings_panels(y: int) -> list[object]:
    return [
        row("Findings", y),
        TimeSeries(
            title="Commission at risk by rule and team",
            description=(
                "Commission that the findings put at risk, since each worker started, by rule and "
                "sales team (no team: findings that have none, such as the rep-level aggregate). "
                "In the reporting currency."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "sum by (rule, team, currency) (auditor_commission_at_risk_total)",
                    "{{rule}} / {{team}} ({{currency}})",
                ),
            ],
            unit="short",
            valueDecimals=2,
            legendDisplayMode="table",
            legendPlacement="right",
            legendCalcs=["lastNotNull"],
            gridPos=pos(0, y + 1, 12, 8),
        ),
        TimeSeries(
            title="Commission put at risk in the last 24h, per team",
            description=(
                "Amount the findings of the trailing 24 hours put at risk, per sales team. The "
                "line is the daily limit of the CompAuditorCommissionAtRiskGrowing alert. Reads 0 "
                "once nothing new is found (as from a finished replay)."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "sum by (team, currency) (increase(auditor_commission_at_risk_total[1d]))",
                    "{{team}} ({{currency}})",
                ),
            ],
            unit="short",
            valueDecimals=2,
            thresholds=[
                {"color": "transparent", "value": None},
                {"color": "red", "value": AT_RISK_PER_DAY_LIMIT},
            ],
            thresholdsStyleMode="dashed",
            gridPos=pos(12, y + 1, 12, 8),
        ),
        TimeSeries(
            title="Findings over time by severity",
            description=(
                "Findings (alerts on the audit.alerts topic) since each worker started, by "
                "severity. The slope is the rate of new findings."
            ),
            dataSource=DATASOURCE,
            targets=[
                target("A", "sum by (severity) (auditor_alerts_total)", "{{severity}}"),
            ],
            unit="short",
            overrides=colour_by_name(SEVERITY_COLOURS),
            gridPos=pos(0, y + 9, 16, 8),
        ),
        Stat(
            title="Rep early-churn findings",
            description=(
                "Findings of rep-early-churn-rate (reps whose new-logo and expansion deals churn "
                "within 90 days) and the upfront commission they put at risk. Per-rep detail is "
                "in the alerts on the audit.alerts topic, never in metric labels."
            ),
            dataSource=DATASOURCE,
            targets=[
                # "or on() vector(0)": no series yet means no finding yet: 0, not "no data".
                target(
                    "A",
                    'sum(auditor_alerts_total{rule="rep-early-churn-rate"}) or on() vector(0)',
                    "findings",
                ),
                target(
                    "B",
                    'sum(auditor_commission_at_risk_total{rule="rep-early-churn-rate"})'
                    " or on() vector(0)",
                    "commission at risk",
                ),
            ],
            reduceCalc="lastNotNull",
            graphMode="none",
            colorMode="value",
            color={"mode": "thresholds"},
            textMode="value_and_name",
            noValue="No data",
            thresholds=[
                {"color": "green", "value": None},
                {"color": "red", "value": 1},
            ],
            overrides=[ref_override("B", [{"id": "decimals", "value": 2}])],
            gridPos=pos(16, y + 9, 8, 8),
        ),
    ]


def alignment_panels(y: int) -> list[object]:
    return [
        row("Plan alignment (live value of the current quarter)", y),
        TimeSeries(
            title="New-logo payout share per team",
            description=(
                "new-logo-payout-share: share of each team's commission paid on new logos this "
                f"quarter. Above {NEW_LOGO_PAYOUT_SHARE_MAX} (red) the plan pays for hunting, "
                "not for keeping; evaluated once a team has 5 deals in the quarter."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    'max by (group) (auditor_aggregate_value{rule="new-logo-payout-share",'
                    'group_by="team"})',
                    "{{group}}",
                ),
            ],
            unit="percentunit",
            valueMin=0,
            valueMax=1,
            thresholds=[
                {"color": "transparent", "value": None},
                {"color": "red", "value": NEW_LOGO_PAYOUT_SHARE_MAX},
            ],
            thresholdsStyleMode="line+area",
            gridPos=pos(0, y + 1, 12, 8),
        ),
        TimeSeries(
            title="Renewal-rate gap per plan",
            description=(
                "renewal-rate-gap: commission rate on renewals divided by the rate on new logos, "
                f"per plan, this quarter. 1 pays both alike; below {RENEWAL_RATE_GAP_MIN} (red) "
                "renewals are barely rewarded. Evaluated once a plan has 3 renewals and 3 new "
                "logos in the quarter."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    'max by (group) (auditor_aggregate_value{rule="renewal-rate-gap",'
                    'group_by="plan_id"})',
                    "{{group}}",
                ),
            ],
            unit="none",
            valueDecimals=2,
            valueMin=0,
            thresholds=[
                {"color": "red", "value": None},
                {"color": "transparent", "value": RENEWAL_RATE_GAP_MIN},
            ],
            thresholdsStyleMode="line+area",
            gridPos=pos(12, y + 1, 12, 8),
        ),
    ]


def pipeline_panels(y: int) -> list[object]:
    return [
        row("Pipeline health", y),
        TimeSeries(
            title="Throughput by outcome",
            description=(
                "Events per second by outcome (processed, late, duplicate, invalid). A rate by "
                "nature: flat at 0 once the input stops, as after a finished replay."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "sum by (outcome) (rate(auditor_events_total[5m]))",
                    "{{outcome}}",
                ),
            ],
            unit="short",
            axisLabel="events/s",
            gridPos=pos(0, y + 1, 8, 8),
        ),
        TimeSeries(
            title="Consumer lag",
            description=(
                "Messages the workers are behind, per topic and partition. Exported by "
                "`auditor worker` only: empty for a replay."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "max by (topic, partition) (auditor_consumer_lag)",
                    "{{topic}}/{{partition}}",
                ),
            ],
            unit="short",
            gridPos=pos(8, y + 1, 8, 8),
        ),
        TimeSeries(
            title="Dead letters by reason",
            description=(
                "Inputs sent to the dead-letter output since each worker started, by reason "
                "(bad_json, schema, unsupported_currency, ...). A step means a producer sent "
                "something the contract does not allow."
            ),
            dataSource=DATASOURCE,
            targets=[
                target("A", "sum by (reason) (auditor_deadletters_total)", "{{reason}}"),
                target("B", "sum(auditor_deadletters_total) or on() vector(0)", "all reasons"),
            ],
            unit="short",
            gridPos=pos(16, y + 1, 8, 8),
        ),
        Stat(
            title="Rules loaded / reload success",
            description=(
                "Per worker: rules loaded, whether the last reload succeeded, and how long ago "
                "the rules were last (re)loaded."
            ),
            dataSource=DATASOURCE,
            targets=[
                target("A", "max by (instance) (auditor_rules_loaded)", "rules {{instance}}"),
                target(
                    "B",
                    "min by (instance) (auditor_rules_reload_success)",
                    "reload {{instance}}",
                ),
                target(
                    "C",
                    "time() - max by (instance) (auditor_rules_last_reload_timestamp_seconds)",
                    "since reload {{instance}}",
                ),
            ],
            reduceCalc="lastNotNull",
            graphMode="none",
            colorMode="value",
            color={"mode": "thresholds"},
            textMode="value_and_name",
            noValue="No data",
            thresholds=[
                {"color": "red", "value": None},
                {"color": "green", "value": 1},
            ],
            overrides=[
                ref_override(
                    "B",
                    [
                        {
                            "id": "mappings",
                            "value": [
                                {
                                    "type": "value",
                                    "options": {
                                        "0": {"text": "FAILED", "color": "red", "index": 0},
                                        "1": {"text": "OK", "color": "green", "index": 1},
                                    },
                                }
                            ],
                        }
                    ],
                ),
                ref_override(
                    "C",
                    [
                        {"id": "unit", "value": "s"},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}},
                    ],
                ),
            ],
            gridPos=pos(0, y + 9, 8, 8),
        ),
        TimeSeries(
            title="Processing latency p99",
            description=(
                "99th percentile of the time to process one event. A: over the last 5 minutes "
                "(a rate, so no value once the input stops); B: since the worker started."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(auditor_event_processing_seconds_bucket[5m])))",
                    "p99, last 5m",
                ),
                target(
                    "B",
                    "histogram_quantile(0.99, sum by (le) "
                    "(auditor_event_processing_seconds_bucket))",
                    "p99 since start",
                ),
            ],
            unit="s",
            gridPos=pos(8, y + 9, 8, 8),
        ),
        TimeSeries(
            title="Event lag p50 / p99",
            description=(
                "How old events are when processed (now - event time), since the worker started. "
                "Large for replays of history; for a live stream it is the delay of the CRM feed."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "histogram_quantile(0.5, sum by (le) (auditor_event_lag_seconds_bucket))",
                    "p50",
                ),
                target(
                    "B",
                    "histogram_quantile(0.99, sum by (le) (auditor_event_lag_seconds_bucket))",
                    "p99",
                ),
            ],
            unit="s",
            gridPos=pos(16, y + 9, 8, 8),
        ),
    ]


def build() -> Dashboard:
    return Dashboard(
        title=TITLE,
        uid=UID,
        description=(
            "What comp-auditor finds: commission paid on business that did not stay, plans that "
            "pay for new logos over renewals, and whether the audit pipeline itself is healthy."
        ),
        tags=["comp-auditor", "finance"],
        editable=False,
        graphTooltip=1,
        refresh="1m",
        schemaVersion=39,
        time=Time("now-7d", "now"),
        timezone="utc",
        templating=Templating(
            list=[
                Template(
                    name="datasource",
                    label="Data source",
                    query="prometheus",
                    type="datasource",
                ),
            ]
        ),
        panels=[*findings_panels(0), *alignment_panels(17), *pipeline_panels(26)],
    ).auto_panel_ids()


def render() -> str:
    """The dashboard JSON exactly as committed (sorted keys, trailing newline)."""
    from grafanalib._gen import DashboardEncoder

    data = build().to_json_data()
    return json.dumps(data, cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed JSON differs, write nothing"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(
                f"{OUTPUT.name} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr
            )
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
