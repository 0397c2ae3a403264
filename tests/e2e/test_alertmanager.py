"""Alerts that reach a person: a real Prometheus evaluates deploy/prometheus/alerts.yml against a
served `auditor replay --metrics-port 0` of a simulated stream and sends what fires to a real
Alertmanager running deploy/alertmanager/alertmanager.yml, whose webhook receivers point at the
example receiver (deploy/alertmanager/webhook_receiver.py) run by this test in a thread.

Checked: the finance alerts reach the finance receivers (critical ones the finance-critical
one) with the amount and the team in their summaries and an absolute runbook_url built from the
Prometheus's runbook_base_url external label; a platform alert reaches the platform receiver;
and while the pipeline is broken (CompAuditorNoEvents), Alertmanager holds back the finance
alerts of the same deployment (same `stack` label) and not those of another one.

What the test changes in its copies (the shipped files are not touched):
- alerts.yml: every `for:` (5m to 30m) becomes `for: 0s`, as in test_prometheus_scrape.py: the
  expressions and annotations are under test here, the debounce durations are covered by
  `promtool test rules` (tests/deploy). Except CompAuditorWorkerDown's: scrapes every second
  time out after a second, and one slow scrape on a loaded machine must not count as a worker
  down (it would page the platform and inhibit the finance alerts). CompAuditorNoEvents is
  left out at first: a served replay is a finished stream, so "no events for 6h" is true from
  the first evaluation and would inhibit every finance alert before their routing could be
  seen. The test puts it back (Prometheus reload) to break the pipeline on purpose.
- alertmanager.yml: the webhook URLs point at the test's receiver, one path per receiver as
  shipped; the email integrations are dropped (no mail relay here: the email template is
  rendered by amtool in tests/deploy); group_wait and group_interval (minutes, shipped) become
  1s and 2s so that notifications go out within seconds. Routes, group_by, matchers,
  inhibit rules and templates are the shipped ones.

Every wait has a deadline; nothing asserts how long anything took.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from e2e_helpers import AUDITOR, ROOT, free_port, serving_replay, stop, wait_for

from auditor.rules.loader import default_rules_dir

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(PROMETHEUS is None, reason="the `prometheus` binary (Debian package "
                       "prometheus) is not on PATH; `make test` installs it"),
    pytest.mark.skipif(ALERTMANAGER is None, reason="the `prometheus-alertmanager` binary "
                       "(Debian package prometheus-alertmanager) is not on PATH; `make test` "
                       "installs it"),
]

DEPLOY = ROOT / "deploy"
DEADLINE = 90.0
# The stream of test_prometheus_scrape.py: critical findings of every critical rule, a breached
# aggregate of the current quarter and settled quarters below the retention target.
SIM_ARGS = ("--accounts", "3000", "--months", "24", "--seed", "8")
NO_EVENTS = "CompAuditorNoEvents"
# Keeps its shipped `for:` (see the module docstring).
WORKER_DOWN = "CompAuditorWorkerDown"
STACK = "comp-auditor-e2e"
RUNBOOK_BASE = "https://runbooks.test.example/comp-auditor/deploy/README.md"
MONEY = re.compile(r"\d+(\.\d+)?[kMGT]? USD")


# --- the webhook receiver ----------------------------------------------------------------------


@dataclass
class Notification:
    path: str
    body: dict[str, Any]


@dataclass
class Receiver:
    url: str
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _got: list[Notification] = field(default_factory=list)

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._got.append(Notification(path, body))

    def notifications(self, path: str | None = None) -> list[Notification]:
        with self._lock:
            return [n for n in self._got if path is None or n.path == path]

    def alerts(self, path: str, status: str = "firing") -> list[dict[str, Any]]:
        return [a for n in self.notifications(path) for a in n.body["alerts"]
                if a["status"] == status]


def _load_example_receiver() -> ModuleType:
    path = DEPLOY / "alertmanager" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("comp_auditor_webhook_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The example webhook receiver of deploy/alertmanager/, recording instead of printing."""
    module = _load_example_receiver()
    recorder = Receiver(url="")
    server = module.serve_in_thread("127.0.0.1", 0, recorder.record)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


# --- processes ---------------------------------------------------------------------------------


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


def _start(tmp: Path, name: str, argv: list[str], ready_path: str
           ) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Starts a server on a free loopback port (`{address}` in argv); a port taken between
    choosing and binding it is chosen again."""
    for attempt in range(3):
        address = f"127.0.0.1:{free_port()}"
        log = tmp / f"{name}-{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([a.replace("{address}", address).replace("{n}", str(attempt))
                                     for a in argv], stdout=out, stderr=subprocess.STDOUT)
        url = f"http://{address}"
        try:
            wait_for(lambda url=url: _ok(url + ready_path), f"{name} ready", DEADLINE, proc, log)
            return proc, url, log
        except AssertionError:
            stop(proc)
            if "address already in use" not in log.read_text(errors="replace"):
                raise
    raise AssertionError(f"no free port for {name} after three attempts")


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of `auditor replay --metrics-port 0` serving a simulated stream, on a copy of
    the default rules (an edit of rules/ during the test cannot trigger a reload)."""
    tmp = tmp_path_factory.mktemp("exporter")
    rules = tmp / "rules"
    shutil.copytree(default_rules_dir(), rules)
    events = tmp / "events.jsonl"
    subprocess.run([AUDITOR, "simulate", *SIM_ARGS, "--out", str(events)], check=True,
                   capture_output=True, timeout=300)
    with serving_replay(events, rules, tmp / "replay.stderr", DEADLINE) as target:
        yield target


@pytest.fixture(scope="module")
def alertmanager(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of an Alertmanager running a copy of the shipped configuration (see the
    module docstring for what the copy changes)."""
    tmp = tmp_path_factory.mktemp("alertmanager")
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    for item in config["receivers"]:
        item.pop("email_configs", None)
        for webhook in item["webhook_configs"]:
            path = urllib.parse.urlsplit(webhook["url"]).path
            webhook["url"] = receiver.url + path
    for route in _routes(config["route"]):
        for key, value in (("group_wait", "1s"), ("group_interval", "2s")):
            if key in route:
                route[key] = value
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(DEPLOY / "alertmanager" / "templates", tmp / "templates")
    proc, url, _ = _start(tmp, "alertmanager", [
        str(ALERTMANAGER), f"--config.file={tmp / 'alertmanager.yml'}",
        f"--storage.path={tmp / 'data-{n}'}", "--web.listen-address={address}",
        "--cluster.listen-address=", "--log.level=debug"], "/-/ready")
    try:
        yield url
    finally:
        stop(proc)


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    found = [route]
    for child in route.get("routes", []):
        found.extend(_routes(child))
    return found


@dataclass
class Prometheus:
    url: str
    rules_file: Path
    rules: dict[str, Any]  # the shipped rules with `for: 0s`

    def load_rules(self, *, with_no_events: bool) -> None:
        rules = json.loads(json.dumps(self.rules))
        for group in rules["groups"]:
            group["rules"] = [r for r in group["rules"]
                              if with_no_events or r.get("alert") != NO_EVENTS]
        self.rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def rule_names(self) -> set[str]:
        groups = _get(f"{self.url}/api/v1/rules")["data"]["groups"]
        return {rule["name"] for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def prometheus(exporter: str, alertmanager: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule and rule["alert"] != WORKER_DOWN:
                rule["for"] = "0s"  # see the module docstring
    server = Prometheus("", tmp / "alerts.yml", rules)
    server.load_rules(with_no_events=False)  # see the module docstring
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    # The shipped external labels (stack, runbook_base_url), with this test's own values: the
    # runbook links must come from the setting, and inhibition is per stack.
    external = {**shipped["global"]["external_labels"], "stack": STACK,
                "runbook_base_url": RUNBOOK_BASE}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "external_labels": external},
        "rule_files": [str(server.rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [urllib.parse.urlsplit(alertmanager).netloc]}]}]},
        "scrape_configs": [{
            "job_name": "comp-auditor",  # the job alerts.yml matches
            "static_configs": [{"targets": [exporter]}],
        }],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc, url, _ = _start(tmp, "prometheus", [
        str(PROMETHEUS), f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'data-{n}'}", "--web.listen-address={address}",
        "--web.enable-lifecycle",
        # Firing alerts are sent again every second, not every minute: a reload re-creates the
        # notifier's Alertmanager list, and an alert that fires just then would otherwise wait
        # a minute for its next send.
        "--rules.alert.resend-delay=1s"], "/-/ready")
    server.url = url
    try:
        yield server
    finally:
        stop(proc)


# --- helpers -----------------------------------------------------------------------------------


def _am_alerts(alertmanager: str) -> list[dict[str, Any]]:
    return _get(f"{alertmanager}/api/v2/alerts")  # type: ignore[no-any-return]


def _post_alert(alertmanager: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
    body = json.dumps([{"labels": labels, "annotations": annotations}]).encode()
    request = urllib.request.Request(f"{alertmanager}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _check_finance_alert(alert: dict[str, Any]) -> None:
    labels, annotations = alert["labels"], alert["annotations"]
    name = labels["alertname"]
    assert labels["audience"] == "finance", alert
    assert labels["stack"] == STACK, alert
    # An absolute runbook link, from the runbook_base_url setting, to the alert's section.
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}", alert
    summary = annotations["summary"]
    if labels.get("team"):
        assert f"for team {labels['team']}" in summary, alert
    if name == "CompAuditorCriticalRetentionFinding":
        # The amount the rule's findings put at risk, with the currency.
        assert re.search(rf": {MONEY.pattern} of commission at risk$", summary), summary
        assert re.search(r"Commission at risk in its findings.*\d+\.\d\d USD \w+",
                         annotations["description"]), annotations["description"]
    elif name == "CompAuditorCommissionRetentionBelowTarget":
        assert re.search(r" is \d+(\.\d+)?%, below target$", summary), summary
        assert labels["group"] in summary, summary
    elif name == "CompAuditorAggregateThresholdBreached":
        assert re.search(r": \d+\.\d\d$", summary), summary
        assert labels["group"] in summary, summary


# --- tests -------------------------------------------------------------------------------------


def test_finance_alerts_reach_finance_and_platform_alerts_reach_platform(
        prometheus: Prometheus, alertmanager: str, receiver: Receiver) -> None:
    assert NO_EVENTS not in prometheus.rule_names()

    # Critical findings (retention) go to finance-critical, the warnings to finance.
    critical = wait_for(lambda: receiver.alerts("/finance-critical"),
                        "CompAuditorCriticalRetentionFinding at the finance-critical receiver",
                        DEADLINE)
    warnings = wait_for(lambda: receiver.alerts("/finance"),
                        "a finance warning at the finance receiver", DEADLINE)
    assert {a["labels"]["alertname"] for a in critical} == {"CompAuditorCriticalRetentionFinding"}
    assert all(a["labels"]["severity"] == "critical" for a in critical)
    assert all(a["labels"]["severity"] == "warning" for a in warnings)
    names = {a["labels"]["alertname"] for a in warnings}
    assert names <= {"CompAuditorAggregateThresholdBreached",
                     "CompAuditorCommissionRetentionBelowTarget"}, names
    for alert in critical + warnings:
        _check_finance_alert(alert)
    assert any(a["labels"].get("team") for a in critical), "no critical finding with a team"

    # Grouped per alert, rule and team: each notification holds one (rule, team).
    for path in ("/finance-critical", "/finance"):
        for note in receiver.notifications(path):
            body = note.body
            assert body["receiver"] == path.strip("/"), body
            assert set(body["groupLabels"]) <= {"stack", "alertname", "rule", "team"}, body
            assert body["groupLabels"]["alertname"] and body["groupLabels"]["stack"] == STACK
            keys = {(a["labels"].get("rule"), a["labels"].get("team")) for a in body["alerts"]}
            assert len(keys) == 1, body

    # Nothing is wrong with the pipeline yet: the platform receivers have heard nothing.
    assert not receiver.notifications("/platform")
    assert not receiver.notifications("/platform-page")


def test_no_events_reaches_platform_and_inhibits_finance_of_the_same_stack(
        prometheus: Prometheus, alertmanager: str, receiver: Receiver) -> None:
    # The finance alerts are active in Alertmanager and not inhibited.
    def finance_active() -> list[dict[str, Any]] | None:
        finance = [a for a in _am_alerts(alertmanager) if a["labels"]["audience"] == "finance"]
        return finance if finance and all(
            a["status"]["state"] == "active" for a in finance) else None

    before = wait_for(finance_active, "finance alerts active in Alertmanager", DEADLINE)

    # Break the pipeline: the served replay counts no new events, so with
    # CompAuditorNoEvents back in the rules it fires (see the module docstring).
    prometheus.load_rules(with_no_events=True)
    prometheus.reload()
    wait_for(lambda: NO_EVENTS in prometheus.rule_names(), "the reloaded rules", DEADLINE)

    # A platform warning: the platform receiver gets it.
    (no_events, *_) = wait_for(
        lambda: [a for a in receiver.alerts("/platform")
                 if a["labels"]["alertname"] == NO_EVENTS],
        "CompAuditorNoEvents at the platform receiver", DEADLINE)
    assert no_events["labels"]["audience"] == "platform"
    assert no_events["labels"]["stack"] == STACK
    assert no_events["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#compauditornoevents"
    assert not any(a["labels"]["alertname"] == NO_EVENTS
                   for path in ("/finance", "/finance-critical", "/platform-page")
                   for a in receiver.alerts(path))

    # Every finance alert of this stack is now inhibited by it.
    def inhibited() -> tuple[list[dict[str, Any]], str] | None:
        alerts = _am_alerts(alertmanager)
        sources = [a for a in alerts if a["labels"]["alertname"] == NO_EVENTS]
        finance = [a for a in alerts if a["labels"]["audience"] == "finance"]
        if not sources or not finance:
            return None
        fingerprint = sources[0]["fingerprint"]
        if all(a["status"]["state"] == "suppressed"
               and fingerprint in (a["status"]["inhibitedBy"] or []) for a in finance):
            return finance, fingerprint
        return None

    finance, source = wait_for(inhibited, "finance alerts inhibited by CompAuditorNoEvents",
                               DEADLINE)
    assert {a["fingerprint"] for a in finance} >= {a["fingerprint"] for a in before}
    # The source itself is not held back.
    (state,) = [a["status"] for a in _am_alerts(alertmanager) if a["fingerprint"] == source]
    assert state["state"] == "active", state

    # A finance alert of another deployment (another `stack`) is not inhibited: it is sent.
    other = {"alertname": "CompAuditorCommissionAtRiskGrowing", "audience": "finance",
             "severity": "warning", "class": "recoverable", "team": "emea", "currency": "USD",
             "stack": "another-stack"}
    _post_alert(alertmanager, other, {"summary": "Recoverable commission grows fast for team "
                                                 "emea: 12k USD in 24h"})
    wait_for(lambda: [a for a in receiver.alerts("/finance")
                      if a["labels"].get("stack") == "another-stack"],
             "the other stack's finance alert at the finance receiver", DEADLINE)
    (posted,) = [a for a in _am_alerts(alertmanager) if a["labels"].get("stack") == "another-stack"]
    assert posted["status"]["state"] == "active", posted
