"""The "Commission vs retention" Grafana dashboard, as code.

Run from anywhere (paths are relative to this file):

    python deploy/grafana/dashboard.py           # rewrites dashboards/commission-vs-retention.json
    python deploy/grafana/dashboard.py --check   # exits 1 if the committed JSON is stale

Needs grafanalib (the package's optional "deploy" extra). Commit the script and the JSON
together: Grafana provisioning reads the JSON, tests/deploy checks the two agree.

Every metric query is PromQL over the metrics the auditor exports. The only Grafana syntax
inside expressions is the dashboard's variables, `$team`, `$plan`, `$rule` and `$class` (always
as `label=~"$name"`, "All" being `.*`), and `$__range` (the length of the dashboard's time
range); panels_text.py and tests/deploy expand them the way Grafana does, so the same strings
run against Prometheus's HTTP API in tests.

One panel is SQL: the findings table ("Findings behind the money"), on the PostgreSQL findings
store (table `findings`, written by the auditor's findings sink) through the data source of uid
`findings` (provisioning/datasources/findings.yml). Its only Grafana syntax is
`${name:regex}` for the same variables and `quarter` (matched as `column ~ '^(...)$'`, "All"
being `.*`), and the `$__timeFilter(first_seen)` macro; tests/e2e/test_dashboard_sql.py expands
them as Grafana does and runs the query against PostgreSQL. Every money panel has a data link
to that table, carrying the labels of the value clicked as the variables.

Money is shown as totals, not as increase() over a short window. The counters restart at 0 when
a worker restarts, and a replay of history (a backfill) lands all of its findings at one
instant, so "what the last 24h added" reads 0 the day after a backfill. A total is
`sum by (...) (max_over_time(counter[$__range]))`: per worker, the largest value its counter
reached in the time range, then summed over the workers. A finished
`auditor replay --metrics-port N` is a static exporter, and totals still mean something there.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from grafanalib.core import (
    REFRESH_ON_TIME_RANGE_CHANGE,
    SORT_ALPHA_DESC,
    BarChart,
    Dashboard,
    GridPos,
    RowPanel,
    Stat,
    Table,
    TableSortByField,
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
# The PostgreSQL findings store, by the fixed uid of provisioning/datasources/findings.yml.
FINDINGS_DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "findings"}
# The findings table's panel id, fixed: the money panels' data links open it (viewPanel).
FINDINGS_PANEL_ID = 100
FINDINGS_TITLE = "Findings behind the money, largest amount first"
# Rows the findings table shows at most (the largest amounts: the query sorts before the limit).
FINDINGS_LIMIT = 1000

# Live-aggregate thresholds of the default rule pack (rules/). They are only drawn here; the
# worker decides breaches itself (auditor_aggregate_breached). Keep in step with the rule files.
NEW_LOGO_PAYOUT_SHARE_MAX = 0.85
RENEWAL_RATE_GAP_MIN = 0.3

# The daily limit of the CompAuditorCommissionAtRiskGrowing alert in prometheus/alerts.yml.
AT_RISK_PER_DAY_LIMIT = 10000.0

# The reporting currency of rules/currency.yaml (`reporting_currency`): every amount the auditor
# exports is in it. Keep in step with the rule files (tests/deploy checks).
REPORTING_CURRENCY = "USD"
# Currencies Grafana has a unit for; any other is shown as the ISO code before the amount.
GRAFANA_CURRENCY_UNITS = frozenset(
    {"USD", "GBP", "EUR", "JPY", "RUB", "UAH", "BRL", "DKK", "ISK", "NOK", "SEK", "CZK", "CHF",
     "PLN", "ZAR", "INR", "KRW", "IDR", "PHP", "VND", "TRY", "MYR", "XPF", "BGN", "PYG", "UYU",
     "ILS"}
)

SEVERITY_COLOURS = {"critical": "red", "warning": "orange", "info": "blue"}
# The money classes (DESIGN.md, alert contract: `money_class`).
CLASS_COLOURS = {
    "unrecovered": "red",
    "recoverable": "yellow",
    "exposure": "orange",
    "overpaid": "purple",
}

# Dashboard variables. Every panel on a metric with the label filters by it (tests/deploy
# checks), as `label=~"$name"`; "All" is `.*`, which also matches an empty label (findings
# without a team). Values come from the metrics themselves, so a new team, plan or rule appears
# without editing the dashboard.
VARIABLES = (
    # (name, label shown, query for the values)
    ("team", "Team", "label_values(auditor_commission_paid_total, team)"),
    ("plan", "Plan", "label_values(auditor_commission_paid_total, plan_id)"),
    ("rule", "Rule", "label_values(auditor_alerts_total, rule)"),
    ("class", "Money class", "label_values(auditor_commission_flagged_total, class)"),
)
TEAM = 'team=~"$team"'
PLAN = 'plan_id=~"$plan"'
RULE = 'rule=~"$rule"'
CLASS = 'class=~"$class"'

# How every money total of this dashboard is read: see the module docstring.
TOTALS_NOTE = (
    " Totals over the dashboard's time range: per worker the largest value its counter reached "
    "(max_over_time), summed over the workers. So a worker restart (its counters start again "
    "at 0) does not drop the figure, and a replay of history, which lands all its findings at "
    "one instant, still shows in full days later; increase() over the last 24h would read 0. "
    "After a restart, what the worker counts anew shows once it passes the total it had "
    "reached; the exact figures are the findings on the audit.alerts topic."
)


def money_unit(currency: str = REPORTING_CURRENCY) -> str:
    """Grafana's unit for amounts in `currency`: its currency unit, or the code as a prefix."""
    return f"currency{currency}" if currency in GRAFANA_CURRENCY_UNITS else f"currency:{currency} "


MONEY = money_unit()


def target(
    ref_id: str, expr: str, legend: str = "", instant: bool = False, table: bool = False
) -> Target:
    return Target(
        expr=expr,
        legendFormat=legend,
        refId=ref_id,
        datasource=DATASOURCE,
        instant=instant,
        format="table" if table else "time_series",
    )


def total(metric: str, matchers: str, by: str) -> str:
    """The restart- and backfill-proof total of a counter (module docstring)."""
    return f"sum by ({by}) (max_over_time({metric}{{{matchers}}}[$__range]))"


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


# --- drill-down: the findings table and the data links to it -------------------------------

# The variables a data link to the findings table sets, in the order of its URL.
DRILL_DOWN_VARIABLES = ("team", "plan", "rule", "class", "quarter")
# The dashboard's URL path (Grafana's slug of the title follows the uid).
DASHBOARD_PATH = f"/d/{UID}/commission-vs-retention"


def label_of_value(label: str) -> str:
    """In a data link: the label `label` of the series the value clicked belongs to."""
    return f"${{__field.labels.{label}}}"


def column_of_row(column: str) -> str:
    """In a data link: the value of column `column` in the table row clicked."""
    return f"${{__data.fields.{column}}}"


def drill_down(sources: dict[str, str] | None = None,
               extra: dict[str, object] | None = None) -> dict[str, object]:
    """extraJson giving every value of a panel a data link to the findings table, filtered as
    the value clicked is.

    `sources` says what a variable is set to: a label of the value clicked
    (`label_of_value`), a column of the row clicked (`column_of_row`) or a fixed value. The
    variables not given keep the dashboard's selection: `${name:queryparam}` is
    `var-name=a&var-name=b`, or `var-name=All`. The time range goes along, so the table lists
    the findings recorded in the same range. `extra` is merged in (other fieldConfig).
    """
    sources = sources or {}
    unknown = set(sources) - set(DRILL_DOWN_VARIABLES)
    if unknown:
        raise ValueError(f"not a variable of the findings table: {sorted(unknown)}")
    params = [f"viewPanel={FINDINGS_PANEL_ID}", "${__url_time_range}"]
    for name in DRILL_DOWN_VARIABLES:
        params.append(f"var-{name}={sources[name]}" if name in sources
                      else f"${{{name}:queryparam}}")
    link = {
        "title": "Findings behind this figure",
        "url": f"{DASHBOARD_PATH}?" + "&".join(params),
        "targetBlank": False,
    }
    merged: dict[str, Any] = copy.deepcopy(extra or {})
    merged.setdefault("fieldConfig", {}).setdefault("defaults", {})["links"] = [link]
    return merged


# A finding's team and plan as the metrics count them (the alert contract's `metric_team`):
# the deal's, else the group of a by-team (by-plan) aggregate.
FINDING_TEAM = "coalesce(team, CASE WHEN group_by = 'team' THEN \"group\" END)"
FINDING_PLAN = "coalesce(plan_id, CASE WHEN group_by = 'plan_id' THEN \"group\" END)"


def matches(column: str, variable: str) -> str:
    """SQL: `column` is one of the values selected in `variable`, as Prometheus's
    `label=~"$variable"` is: the whole value matches, "All" (`.*`) also matches none.

    Grafana's regex format escapes regex characters but not `'`: the values are team, plan,
    rule and class ids and quarters, none of which has one."""
    return f"coalesce({column}, '') ~ '^(${{{variable}:regex}})$'"


def findings_sql() -> str:
    """The findings table's query (PostgreSQL; schema: the sink's migrations)."""
    return f"""SELECT
  at_risk AS "at risk",
  money_class AS "money class",
  unrecovered,
  recoverable,
  exposure,
  overpaid,
  currency,
  rule,
  severity,
  {FINDING_TEAM} AS team,
  {FINDING_PLAN} AS plan,
  quarter,
  event_time AS "event time",
  rep_id AS rep,
  account_id AS account,
  deal_id AS deal,
  summary,
  evidence::text AS evidence,
  runbook,
  first_seen AS "first seen",
  alert_id AS "alert id"
FROM findings
WHERE $__timeFilter(first_seen)
  AND {matches(FINDING_TEAM, "team")}
  AND {matches(FINDING_PLAN, "plan")}
  AND {matches("rule", "rule")}
  AND EXISTS (
    SELECT 1
    FROM unnest(ARRAY[
      coalesce(money_class, ''),
      CASE WHEN unrecovered > 0 THEN 'unrecovered' END,
      CASE WHEN recoverable > 0 THEN 'recoverable' END,
      CASE WHEN exposure > 0 THEN 'exposure' END,
      CASE WHEN overpaid > 0 THEN 'overpaid' END
    ]) AS flagged(class)
    WHERE {matches("flagged.class", "class")}
  )
  AND {matches("quarter", "quarter")}
ORDER BY at_risk DESC NULLS LAST, event_time DESC NULLS LAST, alert_id
LIMIT {FINDINGS_LIMIT}"""


# The quarter variable's values: the quarters of the findings stored, newest first.
QUARTERS_SQL = (
    "SELECT DISTINCT quarter FROM findings WHERE quarter IS NOT NULL ORDER BY quarter DESC"
)


def sql_target(ref_id: str, sql: str) -> dict[str, object]:
    """A raw-SQL query on the findings store, as Grafana's PostgreSQL editor saves it."""
    return {
        "datasource": FINDINGS_DATASOURCE,
        "editorMode": "code",
        "format": "table",
        "rawQuery": True,
        "rawSql": sql,
        "refId": ref_id,
    }


def by_name(name: str, properties: list[dict[str, object]]) -> dict[str, object]:
    return {"matcher": {"id": "byName", "options": name}, "properties": properties}


def drill_down_panels(y: int) -> list[object]:
    money_columns = ("at risk", "unrecovered", "recoverable", "exposure", "overpaid")
    return [
        row("Findings behind the money", y),
        Table(
            id=FINDINGS_PANEL_ID,
            title=FINDINGS_TITLE,
            description=(
                "Each finding from the findings store (PostgreSQL), the largest amount at risk "
                "first: its money class and the amount in each class, rule, team, plan, the "
                "deal, account and rep it is about, the sentence finance reads and its "
                "evidence (JSON). Team and plan are the deal's, or the group of a by-team or "
                "by-plan aggregate, as on the metric panels. Filtered by the variables at the "
                "top: Team, Plan, Rule, Money class (a finding is in a class when it is its "
                "class or it puts money in it), and Quarter, the quarter the finding is about "
                "(an aggregate's period, else the UTC quarter of its event time). The time "
                "range selects when the auditor first recorded the finding, as the metric "
                "panels count findings when the workers make them: a replay of last year's "
                f"events shows in the range it ran in. At most {FINDINGS_LIMIT} rows. Every "
                "money panel above links here (click a value: 'Findings behind this "
                "figure'), with its team, plan, rule and class as the filters."
            ),
            dataSource=FINDINGS_DATASOURCE,
            targets=[sql_target("A", findings_sql())],
            unit="",
            filterable=True,
            sortBy=[TableSortByField(displayName="at risk", desc=True)],
            overrides=[
                *(
                    by_name(column, [{"id": "unit", "value": MONEY},
                                     {"id": "decimals", "value": 2}])
                    for column in money_columns
                ),
                by_name("money class", [
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    {"id": "mappings", "value": [{
                        "type": "value",
                        "options": {
                            name: {"color": colour, "index": i}
                            for i, (name, colour) in enumerate(CLASS_COLOURS.items())
                        },
                    }]},
                ]),
                by_name("summary", [{"id": "custom.width", "value": 420},
                                    {"id": "custom.inspect", "value": True}]),
                by_name("evidence", [
                    {"id": "custom.cellOptions", "value": {"type": "json-view"}},
                    {"id": "custom.width", "value": 320},
                    {"id": "custom.inspect", "value": True},
                ]),
                by_name("runbook", [{"id": "custom.inspect", "value": True}]),
            ],
            gridPos=pos(0, y + 1, 24, 14),
        ),
    ]


def money_panels(y: int) -> list[object]:
    paid = total("auditor_commission_paid_total", f"{TEAM},{PLAN}", "currency")
    flagged = total("auditor_commission_flagged_total", f"{CLASS},{TEAM},{PLAN}", "class, currency")
    return [
        row(f"Money ({REPORTING_CURRENCY}, totals over the time range)", y),
        Stat(
            title="Commission paid",
            description=(
                "Commission paid on the deals processed (duplicates excluded), in the reporting "
                "currency, for the teams and plans selected." + TOTALS_NOTE
            ),
            dataSource=DATASOURCE,
            targets=[target("A", paid, "paid ({{currency}})", instant=True)],
            format=MONEY,
            decimals=2,
            reduceCalc="lastNotNull",
            graphMode="none",
            colorMode="value",
            color={"mode": "fixed", "fixedColor": "text"},
            textMode="value",
            noValue="No data",
            extraJson=drill_down(),
            gridPos=pos(0, y + 1, 6, 6),
        ),
        Stat(
            title="Commission flagged by class",
            description=(
                "Commission the findings flag, by money class, each deal counted once per class "
                "(at the largest amount any finding gives it), so these add up without double "
                "counting a deal that several rules flag. unrecovered: paid on revenue that "
                "left, no clawback reaches it; recoverable: paid on revenue that left inside a "
                "clawback window, finance can claw it back; exposure: paid ahead of revenue not "
                "yet earned; overpaid: paid at a rate the facts do not justify. A deal can be in "
                "two classes, so do not add the classes up." + TOTALS_NOTE
            ),
            dataSource=DATASOURCE,
            targets=[target("A", flagged, "{{class}}", instant=True)],
            format=MONEY,
            decimals=2,
            reduceCalc="lastNotNull",
            graphMode="none",
            colorMode="value",
            textMode="value_and_name",
            noValue="No data",
            overrides=colour_by_name(CLASS_COLOURS),
            extraJson=drill_down({"class": label_of_value("class")}),
            gridPos=pos(6, y + 1, 10, 6),
        ),
        Stat(
            title="Flagged share of commission paid, by class",
            description=(
                "Commission flagged in each class (each deal once per class) divided by the "
                "commission paid, for the same teams and plans. Shares of different classes can "
                "overlap: a deal can be in two." + TOTALS_NOTE
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    f"{flagged} / on (currency) group_left {paid}",
                    "{{class}}",
                    instant=True,
                ),
            ],
            format="percentunit",
            decimals=1,
            reduceCalc="lastNotNull",
            graphMode="none",
            colorMode="value",
            textMode="value_and_name",
            noValue="No data",
            overrides=colour_by_name(CLASS_COLOURS),
            extraJson=drill_down({"class": label_of_value("class")}),
            gridPos=pos(16, y + 1, 8, 6),
        ),
        BarChart(
            title="Commission flagged per team, by class",
            description=(
                "The de-duplicated totals by class (each deal once per class), per sales team. "
                "Bars of one team are side by side, not stacked: a deal can be in two "
                "classes." + TOTALS_NOTE
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    total(
                        "auditor_commission_flagged_total",
                        f"{CLASS},{TEAM},{PLAN}",
                        "team, class",
                    ),
                    instant=True,
                    table=True,
                ),
            ],
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {"columnField": "class", "rowField": "team", "valueField": "Value"},
                },
            ],
            xTickLabelRotation=-30,
            legendDisplayMode="list",
            thresholdSteps=[{"color": "transparent", "value": None}],
            overrides=colour_by_name(CLASS_COLOURS),
            # After groupingToMatrix, field 0 holds the team of the row ("team\\class") and
            # each other field is a class, named so.
            extraJson=drill_down(
                {"team": "${__data.fields[0]}", "class": "${__field.name}"},
                extra={"fieldConfig": {"defaults": {"unit": MONEY, "decimals": 0}}},
            ),
            gridPos=pos(0, y + 7, 12, 9),
        ),
        Table(
            title="Commission at risk per rule and team (per-rule figures, may overlap)",
            description=(
                "What each rule's findings put at risk, by rule, money class and team. These are "
                "per-rule figures: one deal flagged by two rules (an early churn of a discounted "
                "deal is both early-churn-unrecovered and discount-then-churn) is in both rows, "
                "so the rows may overlap and must not be added up; the de-duplicated totals are "
                "'Commission flagged by class'. No team: findings that have none, such as the "
                "rep-level aggregate." + TOTALS_NOTE
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    total(
                        "auditor_commission_at_risk_total",
                        f"{RULE},{CLASS},{TEAM}",
                        "rule, class, team, currency",
                    ),
                    instant=True,
                    table=True,
                ),
            ],
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {"rule": 0, "class": 1, "team": 2, "currency": 3},
                        "renameByName": {"Value": "at risk"},
                    },
                },
            ],
            unit=MONEY,
            sortBy=[TableSortByField(displayName="at risk", desc=True)],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "at risk"},
                    "properties": [{"id": "decimals", "value": 2}],
                }
            ],
            extraJson=drill_down({name: column_of_row(name) for name in ("rule", "class", "team")}),
            gridPos=pos(12, y + 7, 12, 9),
        ),
    ]


def findings_panels(y: int) -> list[object]:
    return [
        row("Findings", y),
        TimeSeries(
            title="Commission flagged in the last 24h, per class and team",
            description=(
                "What the findings of the trailing 24 hours flagged, per money class and team "
                "(each deal once per class): the view of the CompAuditorCommissionAtRiskGrowing "
                "alert, whose daily limit is the line. A window, not a total: it reads 0 once "
                "nothing new is found, as from a finished replay, and a replay of history shows "
                "here for one day only. The totals are in the Money row."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    "sum by (class, team, currency) (increase(auditor_commission_flagged_total"
                    f"{{{CLASS},{TEAM},{PLAN}}}[1d]))",
                    "{{class}} / {{team}} ({{currency}})",
                ),
            ],
            unit=MONEY,
            valueDecimals=2,
            thresholds=[
                {"color": "transparent", "value": None},
                {"color": "red", "value": AT_RISK_PER_DAY_LIMIT},
            ],
            thresholdsStyleMode="dashed",
            extraJson=drill_down({name: label_of_value(name) for name in ("class", "team")}),
            gridPos=pos(0, y + 1, 9, 8),
        ),
        TimeSeries(
            title="Findings over time by severity",
            description=(
                "Findings (alerts on the audit.alerts topic) since each worker started, by "
                "severity, for the rules and teams selected. The slope is the rate of new "
                "findings; a worker restart starts its count again at 0."
            ),
            dataSource=DATASOURCE,
            targets=[
                target(
                    "A",
                    f"sum by (severity) (auditor_alerts_total{{{RULE},{TEAM}}})",
                    "{{severity}}",
                ),
            ],
            unit="short",
            overrides=colour_by_name(SEVERITY_COLOURS),
            gridPos=pos(9, y + 1, 9, 8),
        ),
        Stat(
            title="Rep early-churn findings",
            description=(
                "Findings of rep-early-churn-rate (reps whose new-logo and expansion deals churn "
                "within 90 days) and the upfront commission they put at risk (money classes "
                "selected). The rule groups by rep, so its findings carry no team: they show "
                "with Team set to All. Per-rep detail is in the alerts on the audit.alerts "
                "topic, never in metric labels." + TOTALS_NOTE
            ),
            dataSource=DATASOURCE,
            targets=[
                # "or on() vector(0)": no series yet means no finding yet: 0, not "no data".
                target(
                    "A",
                    "sum(max_over_time(auditor_alerts_total"
                    f'{{rule="rep-early-churn-rate",{TEAM}}}[$__range])) or on() vector(0)',
                    "findings",
                    instant=True,
                ),
                target(
                    "B",
                    "sum(max_over_time(auditor_commission_at_risk_total"
                    f'{{rule="rep-early-churn-rate",{CLASS},{TEAM}}}[$__range]))'
                    " or on() vector(0)",
                    "commission at risk",
                    instant=True,
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
            overrides=[
                ref_override("B", [{"id": "unit", "value": MONEY}, {"id": "decimals", "value": 2}])
            ],
            extraJson=drill_down({"rule": "rep-early-churn-rate"}),
            gridPos=pos(18, y + 1, 6, 8),
        ),
    ]


def retention_panel(title: str, group_by: str, variable: str, x: int, y: int) -> BarChart:
    """Commission retention per group and quarter closed, the target as a line.

    One bar per group (plan or team) and quarter; a quarter still inside its 12 months is a
    live estimate and its label says so ("2026-Q3 live"). The target comes from the rule
    files through auditor_commission_retention_target: query B, turned into the panel's
    threshold by the "config from query results" transformation, drawn as a dashed line.
    """
    selector = f'auditor_commission_retention_ratio{{group_by="{group_by}",group=~"${variable}"'
    ratio = (
        f'max by (group, period) ({selector},status="settled"}})'
        " or "
        f'label_join(max by (group, period, status) ({selector},status="live"}}), '
        '"period", " ", "period", "status")'
    )
    noun = "plan" if group_by == "plan_id" else "team"
    return BarChart(
        title=title,
        description=(
            f"Of the commission paid on deals closed in each quarter, per {noun}, the share "
            "whose account had no full churn within 12 months of the close (partial churns do "
            "not count; an account sold again after churning still counts as lost). A quarter "
            "is settled once its 12 months (and the allowed lateness) have passed; until then "
            "its bar is a live estimate over what is known, labelled 'live'. The dashed line "
            "is the target of the rule files: below it, the auditor raises a finding, and "
            "CompAuditorCommissionRetentionBelowTarget fires for a settled quarter. A gauge, "
            "not a counter: it is the current figure whatever the time range."
        ),
        dataSource=DATASOURCE,
        targets=[
            target("A", ratio, instant=True, table=True),
            target(
                "B",
                f'max(auditor_commission_retention_target{{group_by="{group_by}"}})',
                "target",
                instant=True,
            ),
        ],
        transformations=[
            # B (the target) becomes threshold 1 of A's values and leaves the data, so the
            # matrix below is built from A alone (groupingToMatrix takes a single frame and
            # copies the value field's config, thresholds included, to each column).
            {
                "id": "configFromData",
                "options": {
                    "configRefId": "B",
                    "mappings": [
                        {"fieldName": "target", "handlerKey": "threshold1"},
                        {"fieldName": "Value", "handlerKey": "threshold1"},
                    ],
                    "applyTo": {"id": "byType", "options": "number"},
                },
            },
            {
                "id": "groupingToMatrix",
                "options": {"columnField": "group", "rowField": "period", "valueField": "Value"},
            },
            {"id": "sortBy", "options": {"sort": [{"field": "period\\group"}]}},
        ],
        xTickLabelRotation=-30,
        legendDisplayMode="list",
        thresholdSteps=[
            {"color": "red", "value": None},
            {"color": "green", "value": 1},
        ],
        extraJson={
            "fieldConfig": {
                "defaults": {
                    "unit": "percentunit",
                    "decimals": 1,
                    "min": 0,
                    "max": 1,
                    "custom": {"thresholdsStyle": {"mode": "dashed"}},
                }
            }
        },
        gridPos=pos(x, y, 12, 9),
    )


def retention_panels(y: int) -> list[object]:
    return [
        row("Commission retention (12 months after close)", y),
        retention_panel(
            "Commission retention per plan, by quarter closed", "plan_id", "plan", 0, y + 1
        ),
        retention_panel(
            "Commission retention per team, by quarter closed", "team", "team", 12, y + 1
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
                    'group_by="team",group=~"$team"})',
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
                    'group_by="plan_id",group=~"$plan"})',
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
            "What comp-auditor finds: commission paid and how much of it the findings flag, by "
            "money class; how much of each quarter's commission stayed with customers 12 months "
            "later; plans that pay for new logos over renewals; and whether the audit pipeline "
            "itself is healthy. Amounts in the reporting currency."
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
                *(label_variable(name, label, query) for name, label, query in VARIABLES),
                quarter_variable(),
            ]
        ),
        panels=[
            *money_panels(0),
            *drill_down_panels(16),
            *retention_panels(31),
            *findings_panels(41),
            *alignment_panels(50),
            *pipeline_panels(59),
        ],
    ).auto_panel_ids()


def label_variable(name: str, label: str, query: str) -> Template:
    """A multi-value variable over a label's values, "All" (`.*`) selected by default."""
    variable = Template(
        name=name,
        label=label,
        query=query,
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".*",
        refresh=REFRESH_ON_TIME_RANGE_CHANGE,
    )
    variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def quarter_variable() -> Template:
    """The quarters of the findings stored, newest first: filters the findings table only (the
    metrics have no quarter). Multi-value, "All" (`.*`) by default, like the others."""
    variable = Template(
        name="quarter",
        label="Quarter",
        query=QUARTERS_SQL,
        dataSource=FINDINGS_DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".*",
        refresh=REFRESH_ON_TIME_RANGE_CHANGE,
        sort=SORT_ALPHA_DESC,
    )
    variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


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
