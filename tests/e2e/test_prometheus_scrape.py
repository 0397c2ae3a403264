"""A real Prometheus scrapes `auditor replay --metrics-port` serving a simulated stream: every
dashboard panel's query returns data, and the finance alerts that stream must raise are firing.

The Prometheus is Debian's package (`make test` installs it), started on a free loopback port
with the shipped alert rules. In the copy of deploy/prometheus/alerts.yml it loads, every `for:`
is set to 0s: the rules' expressions are what is under test here, their debounce durations are
covered by `promtool test rules` (tests/deploy).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard_queries import WORKER_ONLY_METRICS, panel_queries
from tests.support.tansu import free_port

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
AUDITOR = str(Path(sys.executable).with_name("auditor"))
PROMETHEUS = shutil.which("prometheus")
DEADLINE = 90.0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(predicate, what: str, timeout: float = DEADLINE):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def exporter(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """`auditor replay --metrics-port 0` serving a simulated stream (with a few bad lines):
    ("host:port", the metrics text it serves)."""
    tmp = tmp_path_factory.mktemp("exporter")
    events = tmp / "events.jsonl"
    subprocess.run([AUDITOR, "simulate", "--accounts", "3000", "--months", "24", "--seed", "8",
                    "--out", str(events)], check=True, capture_output=True)
    with open(events, "ab") as f:
        f.write(b"{not json\n[1]\n")
    log = tmp / "replay.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([AUDITOR, "replay", str(events), "-q", "--metrics-port", "0"],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        match = _wait(lambda: re.search(r"serving metrics on http://(\S+)/metrics",
                                        log.read_text()), "the replay serving its metrics")
        target = match.group(1)
        text = urllib.request.urlopen(f"http://{target}/metrics", timeout=10).read().decode()
        yield target, text
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is not installed (make test installs it)")
    tmp = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    (tmp / "alerts.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "alerts.yml")],
        "scrape_configs": [{"job_name": "comp-auditor",
                            "static_configs": [{"targets": [exporter[0]]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address={address}"],
            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{address}"
    try:
        _wait(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=5).status == 200,
              "Prometheus ready")
        # Rates need two samples in their window: wait for a few scrapes of the target.
        _wait(lambda: _query(url, 'count_over_time(up{job="comp-auditor"}[1m]) >= 3'),
              "three scrapes of the exporter")
        yield url
    finally:
        _stop(proc)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def test_every_dashboard_panel_has_data(prometheus):
    queries = panel_queries()
    assert len(queries) > 10
    empty = []
    for title, expr in queries:
        if any(metric in expr for metric in WORKER_ONLY_METRICS):
            # Consumer lag exists only in the worker; the exporter must not invent it.
            assert _query(prometheus, expr) == [], title
            continue
        try:
            _wait(lambda expr=expr: _query(prometheus, expr), title, timeout=30)
        except AssertionError:
            empty.append(f"{title}: {expr}")
    assert empty == []


def test_the_finance_alerts_of_this_stream_fire(prometheus, exporter):
    metrics = exporter[1]
    assert re.search(r'^auditor_alerts_total\{[^}]*severity="critical"', metrics, re.M)
    breached = re.findall(r'^auditor_aggregate_breached\{([^}]*)\} 1\.0$', metrics, re.M)
    assert breached, "this stream's current quarter breaches a team or plan threshold"

    def firing() -> dict[str, list[dict[str, str]]] | None:
        alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        by_name: dict[str, list[dict[str, str]]] = {}
        for alert in alerts:
            if alert["state"] == "firing":
                by_name.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        wanted = {"CompAuditorCriticalRetentionFinding", "CompAuditorAggregateThresholdBreached"}
        return by_name if wanted <= set(by_name) else None

    by_name = _wait(firing, "the finance alerts firing")
    critical_rules = {labels["rule"] for labels in by_name["CompAuditorCriticalRetentionFinding"]}
    assert critical_rules <= {"early-churn-unrecovered", "churn-and-resell",
                              "rep-early-churn-rate"}
    assert len(by_name["CompAuditorAggregateThresholdBreached"]) == len(breached)
    assert all(labels["audience"] == "finance" for name in by_name
               if name in ("CompAuditorCriticalRetentionFinding",
                           "CompAuditorAggregateThresholdBreached")
               for labels in by_name[name])
    # The exporter is up and has rules loaded: the platform alerts about that stay quiet.
    for quiet in ("CompAuditorWorkerDown", "CompAuditorNoRulesLoaded",
                  "CompAuditorRulesReloadFailing"):
        assert quiet not in by_name


def test_the_text_rendering_of_the_dashboard_shows_each_panel(prometheus):
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "grafana" / "panels_text.py"),
                           "--prometheus", prometheus], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for title, _ in panel_queries():
        assert f"{title}:" in done.stdout
    assert "rule=early-churn-unrecovered" in done.stdout
