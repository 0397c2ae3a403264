"""Grafana: the generated dashboard is current, its queries stick to the metric contract."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from dashboard_queries import (
    DASHBOARD_JSON,
    WORKER_ONLY_METRICS,
    iter_panels,
    load_dashboard,
    panel_queries,
)
from deploy_helpers import (
    CONTRACT_LABELS,
    CONTRACT_METRICS,
    DEFAULT_RULE_IDS,
    GRAFANA_DIR,
    assert_promtool_ok,
    label_names,
    load_script,
    load_yaml,
    metric_names,
    rule_ids,
)

EXPECTED_TITLES = {
    "Commission at risk by rule and team",
    "Findings over time by severity",
    "New-logo payout share per team",
    "Renewal-rate gap per plan",
    "Rep early-churn findings",
    "Throughput by outcome",
    "Consumer lag",
    "Dead letters by reason",
    "Rules loaded / reload success",
    "Processing latency p99",
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
    for panel in iter_panels(load_dashboard()):
        exprs = [t.get("expr", "") for t in panel.get("targets", [])]
        assert any(metric_names(e) for e in exprs), f"{panel['title']}: no query on a metric"
        for expr in exprs:
            names = metric_names(expr)
            assert names <= CONTRACT_METRICS, f"{panel['title']}: {names - CONTRACT_METRICS}"
            labels = label_names(expr)
            assert labels <= CONTRACT_LABELS, f"{panel['title']}: {labels - CONTRACT_LABELS}"
            assert rule_ids(expr) <= DEFAULT_RULE_IDS, f"{panel['title']}: {expr}"
            # Plain PromQL: runnable against Prometheus's API as it is.
            assert "$" not in expr, f"{panel['title']}: Grafana variable in {expr!r}"


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
    queries = panel_queries()
    expected = [
        (panel["title"], target["expr"])
        for panel in iter_panels(load_dashboard())
        for target in panel["targets"]
    ]
    assert queries == expected
    assert all(isinstance(t, str) and isinstance(e, str) and e for t, e in queries)
    titles = {title for title, _ in queries}
    assert titles >= EXPECTED_TITLES


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
