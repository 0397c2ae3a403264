"""The dashboard's SQL, run as Grafana would run it, against PostgreSQL holding a replay's
findings.

Grafana cannot run here, so this test does what it does with a query of the PostgreSQL data
source: the dashboard's variables are interpolated the way Grafana's front end does
(`${name:regex}`: a value regex-escaped, several as `(a|b)`, "All" as the variable's allValue
`.*` unescaped; a variable without a format as quoted SQL literals, `'a','b'`), then the
`$__timeFilter(column)` macro is expanded the way its back end does (`column BETWEEN '<from>'
AND '<to>'`, RFC 3339 in UTC). Every SQL query of the generated dashboard JSON (the findings
table, the Quarter variable) is run against a throwaway PostgreSQL whose `findings` table
holds the alerts of `auditor replay` on a simulated stream, created and loaded by `auditor
findings load` (the sink's migrations are the source of truth for the schema). Each query
must return rows, sorted by money, and each filter must return exactly the findings an
independent reading of the alerts file says it should.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from dashboard_queries import iter_panels, load_dashboard
from e2e_helpers import auditor

from tests.support import postgres

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is needed: pip install -e '.[test]'")

FINDINGS_UID = "findings"
FINDINGS_TABLE = "Findings behind the money, largest amount first"
VARIABLES = ("team", "plan", "rule", "class", "quarter")
MONEY_CLASSES = ("unrecovered", "recoverable", "exposure", "overpaid")
# A team with regex and SQL-regex metacharacters, added to the replay's alerts: a selected
# value must match itself only (Grafana escapes it), not as a pattern.
ODD_TEAM = "emea.dach+(2)"
LOOKALIKE_TEAM = "emeaXdach+(2)"


# --- Grafana's interpolation -------------------------------------------------------------------

# Grafana's variable syntax: $name, [[name:format]], ${name.field:format}.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_MACRO = re.compile(r"\$__(\w+)\(([^)]*)\)")
ALL = ".*"  # the allValue of every variable of the dashboard


def regex_escape(value: str) -> str:
    """Grafana's escapeRegex (the `regex` format)."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def quote_literal(value: str) -> str:
    """The PostgreSQL data source's quoteLiteral."""
    return "'" + value.replace("'", "''") + "'"


def interpolate(sql: str, selected: Mapping[str, Sequence[str]]) -> str:
    """The front end's step: the dashboard's variables replaced. A variable missing from
    `selected` is "All"; an empty list is one empty value (a link's `var-team=`)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name.startswith("__"):
            return match.group(0)  # a macro: the back end's
        assert name in VARIABLES, f"the SQL uses ${name}, not a variable of the dashboard"
        assert match.group(5) is None, f"${{{name}.{match.group(5)}}} is not supported here"
        if name not in selected:
            return ALL  # a custom all value is not formatted (but for text and percentencode)
        values = list(selected[name]) or [""]
        if fmt == "regex":
            escaped = [regex_escape(v) for v in values]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        if fmt is None:  # the SQL data sources' own formatting of a multi-value variable
            return ",".join(quote_literal(v) for v in values)
        raise AssertionError(f"format {fmt!r} of ${name}: teach this test how Grafana does it")

    return _VARIABLE.sub(replace, sql)


def expand_macros(sql: str, time_from: datetime, time_to: datetime) -> str:
    """The back end's step: Grafana's PostgreSQL macros."""

    def rfc3339(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def replace(match: re.Match[str]) -> str:
        name, argument = match.group(1), match.group(2).strip()
        if name == "timeFilter":
            return f"{argument} BETWEEN '{rfc3339(time_from)}' AND '{rfc3339(time_to)}'"
        if name == "timeFrom":
            return f"'{rfc3339(time_from)}'"
        if name == "timeTo":
            return f"'{rfc3339(time_to)}'"
        raise AssertionError(f"macro $__{name}: teach this test how Grafana expands it")

    return _MACRO.sub(replace, sql)


def as_grafana_runs_it(sql: str, selected: Mapping[str, Sequence[str]],
                       time_from: datetime, time_to: datetime) -> str:
    text = expand_macros(interpolate(sql, selected), time_from, time_to)
    assert not re.search(r"\$\{|\$__|\[\[|\$[A-Za-z_]", text), text
    return text


def test_interpolation_is_grafanas() -> None:
    sql = "x ~ '^(${team:regex})$' AND y IN ($plan) AND $__timeFilter(first_seen)"
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC)
    assert as_grafana_runs_it(sql, {}, start, end) == (
        "x ~ '^(.*)$' AND y IN (.*) AND first_seen BETWEEN '2026-01-01T00:00:00Z' AND "
        "'2026-01-08T00:00:00Z'")
    assert interpolate(sql, {"team": ["a.b"], "plan": ["p'1", "p2"]}).startswith(
        "x ~ '^(a\\.b)$' AND y IN ('p''1','p2')")
    assert interpolate("${team:regex}", {"team": ["a", "b/c"]}) == "(a|b\\/c)"
    assert interpolate("${team:regex}", {"team": []}) == ""


# --- the data: a replay's findings in PostgreSQL -----------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What the filters need to know of one alert, read from the alerts file, not the table."""

    alert_id: str
    team: str  # the deal's team, else a by-team aggregate's group; "" when none
    team_is_group: bool  # a by-team aggregate's
    plan: str
    rule: str
    classes: frozenset[str]  # money_class ("" when none) and every class it puts money in
    quarter: str
    at_risk: Decimal
    evidence: dict[str, Any]


def quarter_of(alert: dict[str, Any]) -> str:
    if alert.get("period"):
        return str(alert["period"])
    if not alert.get("event_time"):
        return ""
    when = datetime.fromisoformat(alert["event_time"]).astimezone(UTC)
    return f"{when.year}-Q{(when.month - 1) // 3 + 1}"


def to_finding(alert: dict[str, Any]) -> Finding:
    def group_if(by: str) -> str:
        return str(alert["group"]) if alert.get("group_by") == by and alert.get("group") else ""

    money = (alert.get("evidence") or {}).get("money") or {}
    classes = {alert.get("money_class") or ""}
    classes |= {c for c in MONEY_CLASSES if float(money.get(c) or 0) > 0}
    return Finding(
        alert_id=alert["alert_id"],
        team=alert.get("team") or group_if("team"),
        team_is_group=not alert.get("team") and bool(group_if("team")),
        plan=alert.get("plan_id") or group_if("plan_id"),
        rule=alert["rule"],
        classes=frozenset(classes),
        quarter=quarter_of(alert),
        at_risk=Decimal(str(alert["at_risk"])).quantize(Decimal("0.01")),
        evidence=alert.get("evidence") or {},
    )


@dataclass
class Store:
    dsn: str
    findings: dict[str, Finding]
    loaded_from: datetime  # just before the load: first_seen of every row is after it
    loaded_to: datetime


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    why_not = postgres.available()
    if why_not:
        pytest.skip(why_not)
    work = tmp_path_factory.mktemp("dashboard-sql")
    events, alerts = work / "events.jsonl", work / "alerts.jsonl"
    done = auditor("simulate", "--accounts", "600", "--months", "15", "--seed", "11",
                   "--out", str(events))
    assert done.returncode == 0, done.stderr.decode()
    done = auditor("replay", str(events), "--alerts-out", str(alerts), "--quiet")
    assert done.returncode == 0, done.stderr.decode()
    lines = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]
    # Two findings of teams whose names are patterns of each other.
    for number, team in enumerate((ODD_TEAM, LOOKALIKE_TEAM)):
        extra = dict(next(a for a in lines if a.get("team")))
        extra.update(alert_id=f"test-odd-team-{number}", team=team, at_risk=1.0 + number)
        lines.append(extra)
    # A finding whose deals fall in two classes (its class is the larger one's).
    mixed = dict(next(a for a in lines if a.get("money_class") == "unrecovered"))
    mixed.update(alert_id="test-mixed-classes", at_risk=300.0, money_class="unrecovered",
                 evidence={**mixed["evidence"],
                           "money": {"unrecovered": 200.0, "recoverable": 100.0}})
    lines.append(mixed)
    alerts.write_text("".join(json.dumps(a) + "\n" for a in lines))

    with postgres.cluster() as server, postgres.database(server) as dsn:
        started = datetime.now(UTC) - timedelta(seconds=1)
        # `auditor findings load` creates the table with the sink's migrations, then loads.
        done = auditor("findings", "load", "--dsn", dsn, str(alerts))
        assert done.returncode == 0, done.stderr.decode()
        with psycopg.connect(dsn) as conn:
            (count,) = conn.execute("SELECT count(*) FROM findings").fetchone() or (0,)
            (rejected,) = conn.execute(
                "SELECT count(*) FROM findings_rejected").fetchone() or (0,)
        assert (count, rejected) == (len(lines), 0)
        yield Store(dsn, {a["alert_id"]: to_finding(a) for a in lines}, started,
                    datetime.now(UTC) + timedelta(seconds=1))


# --- the dashboard's SQL -----------------------------------------------------------------------


def dashboard_sql() -> dict[str, str]:
    """Every SQL query of the dashboard JSON: panel targets and query variables on the
    findings data source, by where they are."""
    dashboard = load_dashboard()
    found = {}
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            if "rawSql" in target:
                assert target["datasource"]["uid"] == FINDINGS_UID, panel["title"]
                found[f"panel {panel['title']!r} {target['refId']}"] = target["rawSql"]
    for variable in dashboard["templating"]["list"]:
        if (variable.get("datasource") or {}).get("uid") == FINDINGS_UID:
            found[f"variable {variable['name']!r}"] = variable["query"]
    return found


def table_sql() -> str:
    (sql,) = [q for where, q in dashboard_sql().items() if where.startswith(
        f"panel {FINDINGS_TABLE!r}")]
    return sql


def run(store: Store, sql: str, selected: Mapping[str, Sequence[str]] | None = None,
        time_from: datetime | None = None,
        time_to: datetime | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    text = as_grafana_runs_it(sql, selected or {}, time_from or store.loaded_from - timedelta(
        days=7), time_to or store.loaded_to)
    with psycopg.connect(store.dsn) as conn, conn.cursor() as cur:
        cur.execute(text.encode())
        assert cur.description is not None
        return [c.name for c in cur.description], cur.fetchall()


def table(store: Store, **selected: Sequence[str]) -> list[dict[str, Any]]:
    columns, rows = run(store, table_sql(), selected)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def expected(store: Store, **selected: Sequence[str]) -> set[str]:
    """The alert ids a filter should give, from the alerts file."""

    def keeps(values: Sequence[str] | None, have: set[str]) -> bool:
        return values is None or bool(set(values or [""]) & have)

    return {
        f.alert_id for f in store.findings.values()
        if keeps(selected.get("team"), {f.team}) and keeps(selected.get("plan"), {f.plan})
        and keeps(selected.get("rule"), {f.rule}) and keeps(selected.get("class"), set(f.classes))
        and keeps(selected.get("quarter"), {f.quarter})
    }


def assert_sorted_by_money(rows: list[dict[str, Any]]) -> None:
    amounts = [row["at risk"] for row in rows]
    assert amounts == sorted(amounts, reverse=True), amounts[:20]


def values_of(store: Store, attribute: str) -> list[str]:
    return sorted({getattr(f, attribute) for f in store.findings.values()} - {""})


# --- the tests ---------------------------------------------------------------------------------


def test_the_dashboard_has_its_sql_queries() -> None:
    queries = dashboard_sql()
    assert any(where.startswith("panel ") for where in queries), queries
    assert "variable 'quarter'" in queries


def test_every_sql_query_returns_rows(store: Store) -> None:
    for where, sql in dashboard_sql().items():
        columns, rows = run(store, sql)
        assert rows, f"{where}: no rows\n{sql}"
        if "at risk" in columns:
            assert_sorted_by_money([dict(zip(columns, r, strict=True)) for r in rows])


def test_all_selected_lists_every_finding_largest_amount_first(store: Store) -> None:
    rows = table(store)
    assert {r["alert id"] for r in rows} == set(store.findings)
    assert_sorted_by_money(rows)
    assert rows[0]["at risk"] == max(f.at_risk for f in store.findings.values())
    # The money class and the amounts by class, and the evidence as JSON text.
    by_id = {r["alert id"]: r for r in rows}
    classes = {r["money class"] for r in rows}
    assert {"unrecovered", "exposure"} <= classes and None in classes
    for alert_id, finding in store.findings.items():
        row = by_id[alert_id]
        assert row["at risk"] == finding.at_risk
        assert json.loads(row["evidence"]) == finding.evidence
        for money_class in MONEY_CLASSES:
            amount = Decimal(str(finding.evidence.get("money", {}).get(money_class, 0)))
            assert row[money_class] == amount.quantize(Decimal("0.01")), (alert_id, money_class)


def test_the_table_has_every_column_its_overrides_name(store: Store) -> None:
    panel = {p["title"]: p for p in iter_panels(load_dashboard())}[FINDINGS_TABLE]
    columns, _ = run(store, table_sql())
    for override in panel["fieldConfig"]["overrides"]:
        assert override["matcher"]["options"] in columns, override["matcher"]
    assert panel["options"]["sortBy"][0]["displayName"] in columns


def test_a_team_filter_returns_only_that_teams_findings(store: Store) -> None:
    teams = values_of(store, "team")
    assert len(teams) >= 3
    for team in teams:
        rows = table(store, team=[team])
        assert rows, team
        assert {r["team"] for r in rows} == {team}
        assert {r["alert id"] for r in rows} == expected(store, team=[team]), team
        assert_sorted_by_money(rows)
    # Several teams: either.
    rows = table(store, team=teams[:2])
    assert {r["alert id"] for r in rows} == expected(store, team=teams[:2])
    assert {r["team"] for r in rows} == set(teams[:2])


def test_a_by_team_aggregate_counts_for_its_team(store: Store) -> None:
    # As on the metric panels (the team label of a by-team aggregate is its group).
    aggregates = [f for f in store.findings.values() if f.team_is_group]
    assert aggregates, "the replay has no by-team aggregate finding"
    for finding in aggregates:
        rows = {r["alert id"]: r for r in table(store, team=[finding.team])}
        assert rows[finding.alert_id]["team"] == finding.team


def test_no_team_is_a_value_of_its_own(store: Store) -> None:
    # A data link from a series without a team sends var-team= (empty): the findings with none.
    rows = table(store, team=[])
    assert rows
    assert {r["team"] for r in rows} == {None}
    assert {r["alert id"] for r in rows} == expected(store, team=[])


def test_selected_values_are_matched_literally(store: Store) -> None:
    rows = table(store, team=[ODD_TEAM])
    assert [r["alert id"] for r in rows] == ["test-odd-team-0"]
    rows = table(store, team=[LOOKALIKE_TEAM])
    assert [r["alert id"] for r in rows] == ["test-odd-team-1"]
    assert table(store, team=["emea"]) == []  # whole values only, as label=~"emea" is


@pytest.mark.parametrize("variable", ["plan", "rule", "quarter"])
def test_each_filter_returns_what_it_selects(store: Store, variable: str) -> None:
    attribute = {"plan": "plan", "rule": "rule", "quarter": "quarter"}[variable]
    column = {"plan": "plan", "rule": "rule", "quarter": "quarter"}[variable]
    values = values_of(store, attribute)
    assert len(values) >= 2, variable
    for value in values:
        rows = table(store, **{variable: [value]})
        assert rows, (variable, value)
        assert {r[column] for r in rows} == {value}
        assert {r["alert id"] for r in rows} == expected(store, **{variable: [value]})
        assert_sorted_by_money(rows)
    pair = values[-2:]
    rows = table(store, **{variable: pair})
    assert {r["alert id"] for r in rows} == expected(store, **{variable: pair})


def test_a_class_filter_returns_the_findings_with_money_in_it(store: Store) -> None:
    for money_class in MONEY_CLASSES:
        rows = table(store, **{"class": [money_class]})
        want = expected(store, **{"class": [money_class]})
        assert {r["alert id"] for r in rows} == want, money_class
        for row in rows:
            assert row["money class"] == money_class or row[money_class] > 0, row
    # A finding whose deals fall in two classes is under both.
    mixed = [f for f in store.findings.values() if len(f.classes - {""}) > 1]
    assert mixed
    for finding in mixed:
        for money_class in finding.classes:
            ids = {r["alert id"] for r in table(store, **{"class": [money_class]})}
            assert finding.alert_id in ids


def test_filters_combine(store: Store) -> None:
    busiest = max(values_of(store, "team"),
                  key=lambda t: len(expected(store, team=[t])))
    quarters = sorted({f.quarter for f in store.findings.values() if f.team == busiest})
    selected = {"team": [busiest], "class": ["unrecovered", "exposure"],
                "quarter": quarters[-2:]}
    rows = table(store, **selected)
    assert rows
    assert {r["alert id"] for r in rows} == expected(store, **selected)
    assert {r["team"] for r in rows} == {busiest}
    assert {r["quarter"] for r in rows} <= set(quarters[-2:])
    assert_sorted_by_money(rows)


def test_the_time_range_selects_when_findings_were_recorded(store: Store) -> None:
    # Findings of last year's events, recorded now: in a range that includes now.
    assert table(store)
    a_week_before = store.loaded_from - timedelta(days=7)
    _, rows = run(store, table_sql(), {}, a_week_before - timedelta(days=7), a_week_before)
    assert rows == []


def test_the_quarter_variable_lists_the_findings_quarters_newest_first(store: Store) -> None:
    _, rows = run(store, dashboard_sql()["variable 'quarter'"])
    quarters = [r[0] for r in rows]
    assert quarters == sorted(values_of(store, "quarter"), reverse=True)
    for quarter in quarters:
        assert re.fullmatch(r"\d{4}-Q[1-4]", quarter), quarter
