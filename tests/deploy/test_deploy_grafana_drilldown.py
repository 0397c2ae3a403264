"""Grafana drill-down: the findings table (SQL on the PostgreSQL findings store), its data
source and Quarter variable, and the data links from every money panel to it.

tests/e2e/test_dashboard_sql.py runs the SQL against PostgreSQL; these tests read the files.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dashboard_queries import iter_panels, load_dashboard
from deploy_helpers import (
    DEPLOY,
    GRAFANA_DIR,
    MONEY_COUNTERS,
    VARIABLE_LABELS,
    load_yaml,
    metric_names,
    selectors,
)

FINDINGS_TABLE = "Findings behind the money, largest amount first"
FINDINGS_UID = "findings"
# The variables the findings table filters by: the metric panels' four and the quarter.
TABLE_VARIABLES = ("team", "plan", "rule", "class", "quarter")
# The findings table's columns (the sink's migrations are the source of truth).
FINDINGS_COLUMNS = frozenset(
    {"alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk", "money_class",
     "currency", "deal_id", "account_id", "rep_id", "team", "plan_id", "group_by", "group",
     "period", "value", "threshold", "evidence", "labels", "runbook", "quarter", "unrecovered",
     "recoverable", "exposure", "overpaid", "source", "first_seen", "updated_at"}
)
_ENV = re.compile(r"^\$\{?([A-Z][A-Z0-9_]*)\}?$")


def _panels() -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in iter_panels(load_dashboard())}


def _findings_panel() -> dict[str, Any]:
    return _panels()[FINDINGS_TABLE]


def _sql() -> str:
    (target,) = _findings_panel()["targets"]
    return str(target["rawSql"])


def _money_panels() -> list[dict[str, Any]]:
    return [
        p for p in iter_panels(load_dashboard())
        if any(metric_names(t.get("expr", "")) & MONEY_COUNTERS for t in p["targets"])
    ]


# --- the data source ---------------------------------------------------------------------------


def test_findings_datasource_is_provisioned_with_credentials_from_the_environment() -> None:
    data = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "findings.yml")
    assert data["apiVersion"] == 1
    (source,) = data["datasources"]
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["uid"] == FINDINGS_UID
    assert source["isDefault"] is False, "Prometheus stays the default data source"
    assert source["editable"] is False
    # Nothing secret in the file: every connection setting is an environment variable.
    settings = {
        "url": source["url"],
        "user": source["user"],
        "database": source["jsonData"]["database"],
        "sslmode": source["jsonData"]["sslmode"],
        "password": source["secureJsonData"]["password"],
    }
    names = {}
    for key, value in settings.items():
        match = _ENV.match(str(value))
        assert match, f"{key}: {value!r} is not an environment variable"
        names[key] = match.group(1)
    assert "password" not in source.get("jsonData", {})
    # ... which the compose stack's Grafana is given (with defaults).
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    environment = compose["services"]["grafana"]["environment"]
    for key, name in names.items():
        assert name in environment, f"docker-compose.yml: grafana has no {name} ({key})"
    # The provisioned folder is the one mounted.
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in (
        compose["services"]["grafana"]["volumes"])


def test_every_sql_query_uses_the_provisioned_findings_datasource() -> None:
    dashboard = load_dashboard()
    sql_panels = [p for p in iter_panels(dashboard)
                  if any("rawSql" in t for t in p["targets"])]
    assert [p["title"] for p in sql_panels] == [FINDINGS_TABLE]
    for panel in sql_panels:
        assert panel["datasource"]["uid"] == FINDINGS_UID
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["rawQuery"] is True and target["format"] == "table"
            assert target["editorMode"] == "code"
            assert "expr" not in target
    quarter = {v["name"]: v for v in dashboard["templating"]["list"]}["quarter"]
    assert quarter["datasource"]["uid"] == FINDINGS_UID


# --- the findings table ------------------------------------------------------------------------


def test_findings_table_is_filtered_by_the_variables_and_the_time_range() -> None:
    sql = _sql()
    for name in TABLE_VARIABLES:
        # A whole-value regex match, as the metric panels' label=~"$name": "All" is `.*`.
        assert re.search(rf"~ '\^\(\$\{{{name}:regex\}}\)\$'", sql), name
    # Only these variables, only in the regex format, and one macro.
    assert sorted(set(re.findall(r"\$\{(\w+):regex\}", sql))) == sorted(TABLE_VARIABLES)
    assert not re.findall(r"\$(?!\{\w+:regex\}|__timeFilter\()", sql.replace(")$'", ")'"))
    assert sql.count("$__timeFilter(first_seen)") == 1
    # Team and plan as the metrics count them: a by-team or by-plan aggregate's group.
    assert "CASE WHEN group_by = 'team' THEN \"group\" END" in sql
    assert "CASE WHEN group_by = 'plan_id' THEN \"group\" END" in sql


def test_findings_table_is_sorted_by_money() -> None:
    panel = _findings_panel()
    assert re.search(r"ORDER BY at_risk DESC NULLS LAST\b", _sql())
    assert panel["options"]["sortBy"] == [{"displayName": "at risk", "desc": True}]


def _identifiers(sql: str) -> set[str]:
    """The lower-case identifiers of `sql` (keywords are upper case), without string
    literals, aliases, Grafana's syntax, functions and the alias of the class list."""
    text = re.sub(r"'(?:[^']|'')*'", "''", sql)
    text = re.sub(r"\$\{[^}]*\}|\$__\w+", "", text)
    text = re.sub(r'\bAS\s+(?:"[^"]*"|\w+(?:\(\w+\))?)', "", text)
    text = re.sub(r"\bflagged\.\w+|\bFROM findings\b", "", text)
    text = text.replace('"group"', "group")
    tokens = set(re.findall(r"\b[a-z_][a-z_0-9]*\b", text))
    return tokens - {"coalesce", "unnest", "text"}


def test_findings_table_shows_money_class_amounts_and_evidence() -> None:
    sql = _sql()
    selected = sql.split("FROM findings", 1)[0]
    for expression in ('at_risk AS "at risk"', 'money_class AS "money class"', "unrecovered",
                       "recoverable", "exposure", "overpaid", "currency", "summary",
                       "evidence::text AS evidence", "rule", "quarter"):
        assert expression in selected, expression
    # Columns of the findings table only (the schema the sink creates).
    used = _identifiers(sql)
    assert used <= FINDINGS_COLUMNS, used - FINDINGS_COLUMNS
    assert {"at_risk", "money_class", "evidence", "first_seen", "quarter"} <= used
    # Amounts in the reporting currency, the evidence readable as JSON.
    overrides = {o["matcher"]["options"]: o["properties"]
                 for o in _findings_panel()["fieldConfig"]["overrides"]}
    for column in ("at risk", "unrecovered", "recoverable", "exposure", "overpaid"):
        assert {"id": "unit", "value": "currencyUSD"} in overrides[column], column
    assert {"id": "custom.cellOptions", "value": {"type": "json-view"}} in overrides["evidence"]


def test_quarter_variable_lists_the_quarters_of_the_findings() -> None:
    variable = {v["name"]: v for v in load_dashboard()["templating"]["list"]}["quarter"]
    assert variable["type"] == "query"
    assert variable["multi"] is True and variable["includeAll"] is True
    assert variable["allValue"] == ".*"
    assert variable["current"]["value"] == ["$__all"]
    assert re.fullmatch(r"SELECT DISTINCT quarter FROM findings .*ORDER BY quarter DESC",
                        variable["query"])


# --- data links --------------------------------------------------------------------------------


def _link_params(panel: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(path, [(name, value)]) of the panel's one data link; `${x:queryparam}` as (x, '*')."""
    links = panel["fieldConfig"]["defaults"].get("links")
    assert links, f"{panel['title']}: no data link to the findings table"
    (link,) = links
    url = link["url"]
    path, _, query = url.partition("?")
    params = []
    for part in query.split("&"):
        kept = re.fullmatch(r"\$\{(\w+):queryparam\}", part)
        if kept:
            params.append((f"var-{kept.group(1)}", "*"))
        elif part == "${__url_time_range}":
            params.append((part, ""))
        else:
            name, _, value = part.partition("=")
            params.append((name, value))
    return path, params


def _outer_by(expr: str) -> set[str]:
    """The labels the outermost aggregation of a query keeps (`sum by (a, b) (...)`)."""
    match = re.match(r"\s*\w+ by \(([^)]*)\)", expr)
    return {label.strip() for label in match.group(1).split(",")} if match else set()


def test_every_money_panel_links_to_the_findings_table() -> None:
    dashboard = load_dashboard()
    table_id = _findings_panel()["id"]
    money_panels = _money_panels()
    assert len(money_panels) >= 7
    for panel in money_panels:
        title = panel["title"]
        path, params = _link_params(panel)
        # The same dashboard, the findings table on its own, the same time range.
        assert urlsplit(path).path.startswith(f"/d/{dashboard['uid']}/"), (title, path)
        assert ("viewPanel", str(table_id)) in params, title
        assert ("${__url_time_range}", "") in params, title
        names = [name for name, _ in params if name.startswith("var-")]
        assert sorted(names) == sorted(f"var-{v}" for v in TABLE_VARIABLES), (title, names)


def test_links_carry_the_labels_of_the_value_clicked() -> None:
    checked = 0
    for panel in _money_panels():
        title = panel["title"]
        _, params = _link_params(panel)
        values = dict(params)
        exprs = [t["expr"] for t in panel["targets"]
                 if metric_names(t["expr"]) & MONEY_COUNTERS]
        kept = set.union(*(_outer_by(e) for e in exprs))
        pinned: dict[str, str] = {}
        for expr in exprs:
            for _, matchers in selectors(expr):
                pinned.update({label: value for label, (op, value) in matchers.items()
                               if op == "="})
        for name in TABLE_VARIABLES:
            label = VARIABLE_LABELS.get(name)
            value = values[f"var-{name}"]
            if label in kept:
                # The series' label, or the table row's column: what was clicked.
                assert re.fullmatch(
                    rf"\$\{{__field\.labels\.{label}\}}|\$\{{__data\.fields\.{label}\}}"
                    r"|\$\{__data\.fields\[0\]\}|\$\{__field\.name\}", value), (title, name, value)
                checked += 1
            elif label in pinned:
                assert value == pinned[label], (title, name, value)
                checked += 1
            else:
                # A label the value does not have: the dashboard's selection goes along.
                assert value == "*", (title, name, value)
    assert checked >= 10


def test_links_name_the_fields_their_panels_have() -> None:
    panels = _panels()
    # The per-rule table: the row's columns after the organize transformation.
    per_rule = panels["Commission at risk per rule and team (per-rule figures, may overlap)"]
    _, params = _link_params(per_rule)
    organize = per_rule["transformations"][0]["options"]
    for name, column in (("rule", "rule"), ("class", "class"), ("team", "team")):
        assert (f"var-{name}", f"${{__data.fields.{column}}}") in params
        assert column in organize["indexByName"]
    # The bar chart: rows are teams (field 0 after groupingToMatrix), fields are classes.
    by_team = panels["Commission flagged per team, by class"]
    _, params = _link_params(by_team)
    matrix = by_team["transformations"][0]
    assert matrix["id"] == "groupingToMatrix"
    assert matrix["options"]["rowField"] == "team" and matrix["options"]["columnField"] == "class"
    assert ("var-team", "${__data.fields[0]}") in params
    assert ("var-class", "${__field.name}") in params


def test_links_are_urls_once_grafana_fills_them_in() -> None:
    # With placeholders replaced by sample values, each link is a URL of this dashboard whose
    # query string sets each variable of the findings table.
    for panel in _money_panels():
        url = panel["fieldConfig"]["defaults"]["links"][0]["url"]
        url = url.replace("${__url_time_range}", "from=now-7d&to=now")
        url = re.sub(r"\$\{(\w+):queryparam\}", r"var-\1=All", url)
        url = re.sub(r"\$\{__[^}]+\}", "na-midmarket", url)
        assert "$" not in url, url
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        assert set(query) == {"viewPanel", "from", "to"} | {f"var-{v}" for v in TABLE_VARIABLES}


def test_only_money_panels_and_the_table_itself_have_no_stray_links() -> None:
    money = {p["title"] for p in _money_panels()}
    for panel in iter_panels(load_dashboard()):
        links = panel.get("fieldConfig", {}).get("defaults", {}).get("links")
        if panel["title"] not in money:
            assert not links, f"{panel['title']}: a data link on a panel that is not money"
