"""Grafana: the generated dashboard is current, its queries stick to the metric contract."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_queries import (
    DASHBOARD_JSON,
    WORKER_ONLY_METRICS,
    iter_panels,
    load_dashboard,
    panel_queries,
    panels_text,
    raw_panel_queries,
)
from deploy_helpers import (
    CONTRACT_LABELS,
    CONTRACT_METRICS,
    DASHBOARD_VARIABLES,
    DEFAULT_RULE_IDS,
    GRAFANA_DIR,
    METRIC_VARIABLES,
    MONEY_COUNTERS,
    REPO,
    VARIABLE_LABELS,
    assert_promtool_ok,
    label_names,
    load_script,
    load_yaml,
    metric_names,
    rule_ids,
    selectors,
)

PAID = "Commission paid"
FLAGGED = "Commission flagged by class"
SHARE = "Flagged share of commission paid, by class"
FLAGGED_BY_TEAM = "Commission flagged per team, by class"
PER_RULE = "Commission at risk per rule and team (per-rule figures, may overlap)"
LAST_24H = "Commission flagged in the last 24h, per class and team"
RETENTION_PER_PLAN = "Commission retention per plan, by quarter closed"
RETENTION_PER_TEAM = "Commission retention per team, by quarter closed"
# The one money panel that is a window rather than a total: the view of the
# CompAuditorCommissionAtRiskGrowing alert (increase over 1d).
MONEY_WINDOW_PANELS = {LAST_24H}
# The one SQL panel, on the PostgreSQL findings store (test_deploy_grafana_drilldown.py and
# tests/e2e/test_dashboard_sql.py test it); every other panel is PromQL on Prometheus.
FINDINGS_TABLE = "Findings behind the money, largest amount first"
# The variable of that panel only (the metrics have no quarter label).
SQL_ONLY_VARIABLES = {"quarter"}


def prometheus_panels() -> list[dict[str, Any]]:
    return [p for p in iter_panels(load_dashboard()) if p["title"] != FINDINGS_TABLE]

EXPECTED_TITLES = {
    PAID,
    FLAGGED,
    SHARE,
    FLAGGED_BY_TEAM,
    PER_RULE,
    LAST_24H,
    RETENTION_PER_PLAN,
    RETENTION_PER_TEAM,
    "Findings over time by severity",
    "New-logo payout share per team",
    "Renewal-rate gap per plan",
    "Rep early-churn findings",
    "Throughput by outcome",
    "Consumer lag",
    "Dead letters by reason",
    "Rules loaded / reload success",
    "Processing latency p99",
    FINDINGS_TABLE,
}


def _dashboard_module():  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("grafanalib") is None:
        pytest.fail(
            "grafanalib is not installed: pip install '.[deploy]' (the dashboard is generated "
            "from deploy/grafana/dashboard.py)",
            pytrace=False,
        )
    return load_script(GRAFANA_DIR / "dashboard.py", "comp_auditor_deploy_dashboard")


def test_committed_dashboard_matches_generator() -> None:
    module = _dashboard_module()
    committed = DASHBOARD_JSON.read_text(encoding="utf-8")
    assert committed == module.render(), (
        "commission-vs-retention.json is stale: run python deploy/grafana/dashboard.py"
    )
    assert module.OUTPUT == DASHBOARD_JSON


def test_dashboard_identity() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] == "Commission vs retention"
    assert dashboard["uid"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert "Pipeline health" in rows


def test_expected_panels_exist() -> None:
    titles = [panel["title"] for panel in iter_panels(load_dashboard())]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    assert set(titles) >= EXPECTED_TITLES, EXPECTED_TITLES - set(titles)


def test_every_panel_queries_contract_metrics_only() -> None:
    expand = panels_text().expand
    for panel in prometheus_panels():
        assert panel["datasource"]["type"] == "prometheus", panel["title"]
        exprs = [t.get("expr", "") for t in panel.get("targets", [])]
        assert any(metric_names(e) for e in exprs), f"{panel['title']}: no query on a metric"
        for expr in exprs:
            names = metric_names(expr)
            assert names <= CONTRACT_METRICS, f"{panel['title']}: {names - CONTRACT_METRICS}"
            labels = label_names(expr)
            assert labels <= CONTRACT_LABELS, f"{panel['title']}: {labels - CONTRACT_LABELS}"
            assert rule_ids(expr) <= DEFAULT_RULE_IDS, f"{panel['title']}: {expr}"
            # Only the dashboard's own variables and $__range: once expanded, plain PromQL,
            # runnable against Prometheus's API as it is.
            used = set(re.findall(r"\$(\w+)", expr))
            assert used <= DASHBOARD_VARIABLES | {"__range"}, f"{panel['title']}: {used}"
            assert "$" not in expand(expr), f"{panel['title']}: {expr!r}"


def _templating() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in load_dashboard()["templating"]["list"]}


def test_variables_for_team_plan_rule_and_class() -> None:
    variables = _templating()
    assert set(variables) == {"datasource"} | DASHBOARD_VARIABLES | SQL_ONLY_VARIABLES
    for name, label in VARIABLE_LABELS.items():
        variable = variables[name]
        assert variable["type"] == "query", name
        # Several values at once, and "All" by default, as a regex that also matches an empty
        # label (findings without a team).
        assert variable["multi"] is True and variable["includeAll"] is True, name
        assert variable["allValue"] == ".*", name
        assert variable["current"]["value"] == ["$__all"], name
        assert variable["datasource"]["uid"] == "${datasource}", name
        metric, query_label = re.fullmatch(r"label_values\((\w+), (\w+)\)",
                                           variable["query"]).groups()
        assert metric in CONTRACT_METRICS and query_label == label, name


def _selected_by_variable(matchers: dict[str, tuple[str, str]], label: str, name: str) -> bool:
    """The selector filters `label` by the variable `name`, or pins it to one value."""
    op, value = matchers.get(label, ("", ""))
    return (op, value) == ("=~", f"${name}") or op == "="


def test_every_relevant_panel_uses_the_variables() -> None:
    checked = 0
    for title, expr in raw_panel_queries():
        for metric, matchers in selectors(expr):
            for name in sorted(METRIC_VARIABLES.get(metric, ())):
                label = VARIABLE_LABELS[name]
                assert _selected_by_variable(matchers, label, name), (
                    f"{title}: {metric} not filtered by ${name} ({label})")
                checked += 1
            if metric in {"auditor_aggregate_value", "auditor_commission_retention_ratio"}:
                # group holds a team or a plan, as group_by says.
                group_by = matchers["group_by"][1]
                name = {"team": "team", "plan_id": "plan"}[group_by]
                assert matchers["group"] == ("=~", f"${name}"), f"{title}: {expr}"
                checked += 1
    assert checked >= 15


def test_reporting_currency_is_the_rule_files() -> None:
    module = _dashboard_module()
    currency = load_yaml(REPO / "rules" / "currency.yaml").get("reporting_currency", "USD")
    assert currency == module.REPORTING_CURRENCY, (
        "the reporting currency changed in rules/currency.yaml: set REPORTING_CURRENCY in "
        "deploy/grafana/dashboard.py and regenerate the dashboard")
    assert module.money_unit("USD") == "currencyUSD"
    assert module.money_unit("CAD") == "currency:CAD "


def test_money_is_shown_in_the_reporting_currency() -> None:
    module = _dashboard_module()
    unit_of = panels_text().unit_of
    checked = 0
    for panel in prometheus_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            if not metric_names(expr) & MONEY_COUNTERS:
                continue
            unit = unit_of(panel, target["refId"])
            if " / " in expr:  # a share of commission paid
                assert unit == "percentunit", panel["title"]
            else:
                assert unit == module.MONEY, (panel["title"], unit)
            assert unit != "short", panel["title"]
            checked += 1
    assert checked >= 7


def test_money_totals_survive_restarts_and_backfills() -> None:
    # A replay of history lands all its findings at one instant, and a restarted worker's
    # counters start at 0: totals are the largest value of each worker's counter over the
    # dashboard's range, never increase() over a short window (but for the alert's own view).
    for panel in prometheus_panels():
        money = [t["expr"] for t in panel["targets"] if metric_names(t["expr"]) & MONEY_COUNTERS]
        if not money:
            continue
        if panel["title"] in MONEY_WINDOW_PANELS:
            assert "increase(" in money[0] and "CompAuditorCommissionAtRiskGrowing" in (
                panel["description"]), panel["title"]
            assert "reads 0" in panel["description"], panel["title"]
            continue
        for expr in money:
            assert not re.search(r"\b(rate|irate|increase|delta)\(", expr), (panel["title"], expr)
            for metric in metric_names(expr) & MONEY_COUNTERS:
                assert re.search(rf"max_over_time\({metric}\{{[^}}]*\}}\[\$__range\]\)",
                                 expr), (panel["title"], expr)
        # The choice is explained where finance reads it.
        description = panel["description"]
        for word in ("restart", "replay of history", "max_over_time", "increase()"):
            assert word in description, (panel["title"], word)


def test_money_by_class_beside_the_per_rule_view() -> None:
    panels = {p["title"]: p for p in iter_panels(load_dashboard())}
    flagged = panels[FLAGGED]["targets"][0]["expr"]
    assert "auditor_commission_flagged_total" in flagged and "by (class, currency)" in flagged
    assert "once per class" in panels[FLAGGED]["description"]
    share = panels[SHARE]["targets"][0]["expr"]
    numerator, denominator = share.split(" / ")
    assert "auditor_commission_flagged_total" in numerator
    assert "auditor_commission_paid_total" in denominator
    # The per-rule figures say that they overlap, and point at the de-duplicated totals.
    per_rule = panels[PER_RULE]
    assert "auditor_commission_at_risk_total" in per_rule["targets"][0]["expr"]
    assert "class" in per_rule["targets"][0]["expr"]
    assert "per-rule" in per_rule["title"] and "overlap" in per_rule["title"]
    assert FLAGGED in per_rule["description"]
    # Beside each other: the class totals and the per-rule table are in the same row.
    assert panels[FLAGGED_BY_TEAM]["gridPos"]["y"] == per_rule["gridPos"]["y"]


@pytest.mark.parametrize(("title", "group_by"), [(RETENTION_PER_PLAN, "plan_id"),
                                                 (RETENTION_PER_TEAM, "team")])
def test_retention_panels_draw_the_target_as_a_line(title: str, group_by: str) -> None:
    panel = {p["title"]: p for p in iter_panels(load_dashboard())}[title]
    targets = {t["refId"]: t for t in panel["targets"]}
    (ratio,) = [t for t in targets.values() if "auditor_commission_retention_ratio" in t["expr"]]
    (goal,) = [t for t in targets.values() if "auditor_commission_retention_target" in t["expr"]]
    assert f'group_by="{group_by}"' in ratio["expr"] and f'group_by="{group_by}"' in goal["expr"]
    # Settled quarters and live estimates, the live ones labelled so.
    assert 'status="settled"' in ratio["expr"] and 'status="live"' in ratio["expr"]
    assert ratio["instant"] and ratio["format"] == "table"
    # Quarters on the x axis, one bar per plan or team.
    transformations = {t["id"]: t["options"] for t in panel["transformations"]}
    assert transformations["groupingToMatrix"]["rowField"] == "period"
    assert transformations["groupingToMatrix"]["columnField"] == "group"
    # The target query becomes the threshold, drawn as a line.
    config = transformations["configFromData"]
    assert config["configRefId"] == goal["refId"]
    assert {m["handlerKey"] for m in config["mappings"]} == {"threshold1"}
    ids = [t["id"] for t in panel["transformations"]]
    assert ids.index("configFromData") < ids.index("groupingToMatrix"), (
        "groupingToMatrix only takes a single frame: the target must leave the data first")
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed"}
    assert defaults["unit"] == "percentunit"
    assert "settled" in panel["description"] and "live" in panel["description"]


def test_panels_text_expands_variables_as_grafana_does() -> None:
    module = panels_text()
    expr = 'sum(max_over_time(x{team=~"$team",plan_id=~"$plan"}[$__range]))'
    assert module.expand(expr) == 'sum(max_over_time(x{team=~".*",plan_id=~".*"}[7d]))'
    assert module.expand(expr, {"team": ["emea"], "plan": ["a.b", "c"]}, "30d") == (
        'sum(max_over_time(x{team=~"emea",plan_id=~"(a\\\\.b|c)"}[30d]))')
    assert module.format_value(1234.5, "currencyUSD") == "1,234.50 USD"
    assert module.format_value(12.0, "currency:CAD ") == "12.00 CAD"
    assert module.format_value(0.625, "percentunit") == "62.5%"
    assert module.format_value(3.0, "short") == "3.00"


@pytest.mark.prometheus
def test_every_panel_query_parses(tmp_path: Path) -> None:
    # promtool parses each query as a recording rule: a PromQL syntax error fails here rather
    # than as an empty panel.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(panel_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    assert_promtool_ok("check", "rules", str(path), cwd=tmp_path)


def test_panel_queries_helper() -> None:
    raw = raw_panel_queries()
    expected = [
        (panel["title"], target["expr"])
        for panel in prometheus_panels()
        for target in panel["targets"]
    ]
    assert raw == expected
    queries = panel_queries()
    expand = panels_text().expand
    assert queries == [(title, expand(expr, time_range="7d")) for title, expr in raw]
    assert all(isinstance(t, str) and isinstance(e, str) and e for t, e in queries)
    assert not any("$" in e for _, e in queries)
    titles = {title for title, _ in queries}
    assert titles >= EXPECTED_TITLES - {FINDINGS_TABLE}


def test_only_the_consumer_lag_panel_is_worker_only() -> None:
    # An end-to-end test against `auditor replay` can expect data from every other panel.
    worker_only = {
        title
        for title, expr in panel_queries()
        if metric_names(expr) and metric_names(expr) <= WORKER_ONLY_METRICS
    }
    assert worker_only == {"Consumer lag"}


def test_aggregate_panels_draw_their_thresholds() -> None:
    panels = {p["title"]: p for p in iter_panels(load_dashboard())}
    for title, value in (
        ("New-logo payout share per team", 0.85),
        ("Renewal-rate gap per plan", 0.3),
    ):
        defaults = panels[title]["fieldConfig"]["defaults"]
        steps = [step["value"] for step in defaults["thresholds"]["steps"]]
        assert value in steps, title
        assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", title


def test_datasource_provisioning() -> None:
    # The PostgreSQL findings data source, beside it: test_deploy_grafana_drilldown.py.
    data = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    assert data["apiVersion"] == 1
    (source,) = data["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    data = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    compose = load_yaml(GRAFANA_DIR.parent / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
