"""A real Prometheus scrapes `auditor replay --metrics-port 0` serving a simulated stream: every
dashboard panel's query has data, and the finance alerts that stream must raise are firing.

The Prometheus is Debian's package (`make test` installs it through
scripts/install-system-deps.sh), started by the test on a free loopback port with its own
configuration and TSDB in a temporary folder, scraping and evaluating every second. It loads a
copy of deploy/prometheus/alerts.yml in which every `for:` duration (5m to 30m in the shipped
file) is rewritten to `for: 0s`: the alerts' expressions are what is under test here, their
debounce durations are covered by `promtool test rules` (tests/deploy). The shipped file is not
touched.

A served replay is a static exporter: it finishes its input, then serves the final counts until
stopped. Prometheus therefore only ever sees its counters at their final values, which decides
what the rate()/increase() queries and alerts can show (see the comments in the tests).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_queries import WORKER_ONLY_METRICS, panel_queries
from e2e_helpers import AUDITOR, ROOT, free_port, serving_replay, stop, wait_for
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from auditor.events.deadletter import REASONS
from auditor.rules.loader import default_rules_dir

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(PROMETHEUS is None, reason="the `prometheus` binary (Debian package "
                       "prometheus) is not on PATH; `make test` installs it"),
]

DEADLINE = 60.0
# Its current quarter (2026-Q4) breaches renewal-rate-gap for plan hunter-2026 (that plan pays
# nothing on renewals), and it has critical findings of every critical rule: the fixture checks
# both in the metrics before any alert is looked at.
SIM_ARGS = ("--accounts", "3000", "--months", "24", "--seed", "8")
BAD_LINES = (b"{not json", b"[1]")
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\s*\(")
METRIC_NAMES = re.compile(r"\bauditor_[a-z_]+")

FINANCE_ALERTS = {"CompAuditorCriticalRetentionFinding", "CompAuditorAggregateThresholdBreached",
                  "CompAuditorCommissionRetentionBelowTarget"}
# Fires on any finished replay: see test_the_finance_alerts_of_this_stream_fire.
NO_EVENTS = "CompAuditorNoEvents"


@dataclass
class Exporter:
    target: str  # host:port
    samples: list[Sample]  # what it serves, parsed once (it does not change any more)

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def series(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    """`auditor replay --metrics-port 0 --metrics-host 127.0.0.1 -q` on a simulated stream with
    two bad lines, on a copy of the default rules (so an edit of rules/ in the working tree
    during the test cannot trigger a reload)."""
    tmp = tmp_path_factory.mktemp("exporter")
    rules = tmp / "rules"
    shutil.copytree(default_rules_dir(), rules)
    events = tmp / "events.jsonl"
    subprocess.run([AUDITOR, "simulate", *SIM_ARGS, "--out", str(events)], check=True,
                   capture_output=True, timeout=300)
    with open(events, "ab") as f:
        f.write(b"\n".join(BAD_LINES) + b"\n")
    with serving_replay(events, rules, tmp / "replay.stderr", DEADLINE) as target:
        with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as response:
            text = response.read().decode()
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
        yield Exporter(target, samples)


def _start_prometheus(tmp: Path, config: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on a free loopback port; a port taken between choosing and binding it is
    chosen again."""
    for attempt in range(3):
        address = f"127.0.0.1:{free_port()}"
        log = tmp / f"prometheus-{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={config}",
                 f"--storage.tsdb.path={tmp / f'data-{attempt}'}",
                 f"--web.listen-address={address}"],
                stdout=out, stderr=subprocess.STDOUT)
        url = f"http://{address}"
        try:
            wait_for(lambda url=url: _ready(url), "Prometheus ready", DEADLINE, proc, log)
            return proc, url
        except AssertionError:
            stop(proc)
            if "address already in use" not in log.read_text(errors="replace"):
                raise
    raise AssertionError("no free port for Prometheus after three attempts")


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
        return response.status == 200


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Prometheus that has scraped the exporter a few times."""
    tmp = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"  # see the module docstring
    (tmp / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "alerts.yml")],
        "scrape_configs": [{
            # The job name alerts.yml matches (up{job="comp-auditor"}).
            "job_name": "comp-auditor",
            "static_configs": [{"targets": [exporter.target]}],
        }],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc, url = _start_prometheus(tmp, tmp / "prometheus.yml")
    try:
        # rate() and increase() need two samples in their window: wait for three scrapes.
        wait_for(lambda: _query(url, 'count_over_time(up{job="comp-auditor"}[5m]) >= 3'),
                 "three scrapes of the exporter", DEADLINE, proc)
        yield url
    finally:
        stop(proc)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "vector", (expr, body)
    return body["data"]["result"]  # type: ignore[no-any-return]


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def _alerts(url: str) -> list[dict[str, Any]]:
    return _get(f"{url}/api/v1/alerts")["data"]["alerts"]  # type: ignore[no-any-return]


def test_the_exporter_is_scraped_and_healthy(prometheus, exporter):
    targets = _get(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
    [target] = [t for t in targets if t["labels"]["job"] == "comp-auditor"]
    assert target["health"] == "up", target
    assert target["labels"]["instance"] == exporter.target
    assert _values(_query(prometheus, 'up{job="comp-auditor"}')) == [1.0]


def test_every_dashboard_panel_has_data(prometheus, exporter):
    queries = panel_queries()
    assert len(queries) > 10
    checked = {"worker-only": 0, "range": 0, "instant": 0}
    for title, expr in queries:
        names = set(METRIC_NAMES.findall(expr))
        where = f"panel {title!r}: {expr}"
        if names & WORKER_ONLY_METRICS:
            # Consumer lag exists only in `auditor worker`: the served replay must not invent
            # it, so the panel is empty here by design.
            assert not {n for n in exporter.names() if n in WORKER_ONLY_METRICS}, where
            assert _query(prometheus, expr) == [], where
            checked["worker-only"] += 1
        elif RANGE_FUNCTIONS.search(expr):
            # A static exporter's counters never move while Prometheus watches: rate() and
            # increase() are 0 for every series (histogram_quantile over rates is NaN, a
            # quantile of nothing). The panel still has its series, and the counters under
            # it have real, non-zero values: both are checked.
            result = wait_for(lambda expr=expr: _query(prometheus, expr), where, DEADLINE)
            assert all(v == 0 or math.isnan(v) for v in _values(result)), (where, result)
            for name in names:
                assert _values(_query(prometheus, f"sum({name}) > 0")), (where, name)
            checked["range"] += 1
        else:
            result = wait_for(lambda expr=expr: _query(prometheus, expr), where, DEADLINE)
            assert all(math.isfinite(v) for v in _values(result)), (where, result)
            checked["instant"] += 1
    assert all(checked.values()), checked


def test_panels_show_what_the_exporter_serves(prometheus, exporter):
    by_severity: dict[str, float] = {}
    for s in exporter.series("auditor_alerts_total"):
        by_severity[s.labels["severity"]] = by_severity.get(s.labels["severity"], 0) + s.value
    result = _query(prometheus, "sum by (severity) (auditor_alerts_total)")
    assert {r["metric"]["severity"]: float(r["value"][1]) for r in result} == by_severity
    result = _query(prometheus, "sum by (reason) (auditor_deadletters_total)")
    dead = {r["metric"]["reason"]: float(r["value"][1]) for r in result}
    assert {reason: n for reason, n in dead.items() if n} == {"bad_json": 1.0, "not_object": 1.0}
    assert set(dead) == set(REASONS)  # the others at 0, so increase() sees their first


def test_money_panels_show_the_totals_the_exporter_serves(prometheus, exporter):
    # The money panels' own queries (variables at "All"): their restart-proof totals are, on
    # one exporter that has not restarted, exactly what it serves.
    queries = dict(panel_queries())

    def served(name: str, label: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for s in exporter.series(name):
            totals[s.labels[label]] = totals.get(s.labels[label], 0) + s.value
        return totals

    def shown(title: str, label: str) -> dict[str, float]:
        result = wait_for(lambda: _query(prometheus, queries[title]), title, DEADLINE)
        return {r["metric"][label]: float(r["value"][1]) for r in result}

    paid = served("auditor_commission_paid_total", "currency")
    assert paid and all(v > 0 for v in paid.values())
    assert shown("Commission paid", "currency") == pytest.approx(paid)
    flagged = served("auditor_commission_flagged_total", "class")
    assert shown("Commission flagged by class", "class") == pytest.approx(flagged)
    (total_paid,) = paid.values()
    assert shown("Flagged share of commission paid, by class", "class") == pytest.approx(
        {money_class: amount / total_paid for money_class, amount in flagged.items()})


def test_the_finance_alerts_of_this_stream_fire(prometheus, exporter):
    # What the stream must raise, read from the metrics the replay serves.
    critical = {(s.labels["rule"], s.labels["team"])
                for s in exporter.series("auditor_last_alert_timestamp_seconds")
                if s.labels["severity"] == "critical"}
    assert {rule for rule, _ in critical} == {
        "early-churn-unrecovered", "churn-and-resell", "rep-early-churn-rate"}
    breached = {(s.labels["rule"], s.labels["group_by"], s.labels["group"])
                for s in exporter.series("auditor_aggregate_breached") if s.value == 1.0}
    assert breached, f"{SIM_ARGS}: the stream's current quarter no longer breaches an aggregate"

    def firing() -> dict[str, list[dict[str, str]]] | None:
        by_name: dict[str, list[dict[str, str]]] = {}
        for alert in _alerts(prometheus):
            if alert["state"] == "firing":
                by_name.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return by_name if FINANCE_ALERTS | {NO_EVENTS} <= set(by_name) else None

    by_name = wait_for(firing, "the finance alerts firing", DEADLINE)
    # One critical-finding alert per (rule, team) with a critical finding (team "" = none:
    # Prometheus drops an empty label), and one breach alert per breached group: no more.
    assert {(labels["rule"], labels.get("team", ""))
            for labels in by_name["CompAuditorCriticalRetentionFinding"]} == critical
    assert {(labels["rule"], labels["group_by"], labels["group"])
            for labels in by_name["CompAuditorAggregateThresholdBreached"]} == breached
    # One retention alert per settled quarter of a plan or team below its target.
    targets = {s.labels["group_by"]: s.value
               for s in exporter.series("auditor_commission_retention_target")}
    below = {(s.labels["group_by"], s.labels["group"], s.labels["period"])
             for s in exporter.series("auditor_commission_retention_ratio")
             if s.labels["status"] == "settled" and s.value < targets[s.labels["group_by"]]}
    assert below, f"{SIM_ARGS}: no settled quarter below the retention target"
    assert {(labels["group_by"], labels["group"], labels["period"])
            for labels in by_name["CompAuditorCommissionRetentionBelowTarget"]} == below
    for name in FINANCE_ALERTS:
        assert all(labels["audience"] == "finance" for labels in by_name[name]), name

    # CompAuditorCommissionAtRiskGrowing (increase over 1d > 10000) cannot fire on a static
    # exporter: Prometheus first sees the counter at its final value, so the increase is 0
    # although the replay's findings put far more at risk. That is the scrape model, not a
    # bug: a worker's counters grow while scraped. The counter itself is checked instead.
    assert "CompAuditorCommissionAtRiskGrowing" not in by_name
    at_risk = _values(_query(prometheus, "sum(auditor_commission_at_risk_total)"))
    assert at_risk and at_risk[0] > 10000

    # Platform alerts: the exporter is up, has its rules, no reload failed, it has no consumer
    # lag, and 2 dead letters of thousands of events are far under the share limit.
    for quiet in ("CompAuditorWorkerDown", "CompAuditorNoRulesLoaded",
                  "CompAuditorRulesReloadFailing", "CompAuditorConsumerLagGrowing",
                  "CompAuditorDeadLetterRateHigh"):
        assert quiet not in by_name, by_name.get(quiet)
    # CompAuditorNoEvents fires, and rightly so: a finished replay processes no more events,
    # and the alert (rate over 6h == 0) cannot tell that from a stalled worker. Its reason
    # holds: the counters are non-zero but do not move.
    assert _values(_query(prometheus, "sum(auditor_events_total)"))[0] > 0
    assert _values(_query(prometheus, "sum(rate(auditor_events_total[6h]))")) == [0.0]
    assert set(by_name) == FINANCE_ALERTS | {NO_EVENTS}, set(by_name)


def test_the_text_rendering_of_the_dashboard_shows_each_panel(prometheus):
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "grafana" / "panels_text.py"),
         "--prometheus", prometheus], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for title, _ in panel_queries():
        assert f"{title}:" in done.stdout
    assert "rule=early-churn-unrecovered" in done.stdout
