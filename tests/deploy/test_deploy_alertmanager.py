"""Alertmanager: amtool accepts the shipped configuration, each alert of alerts.yml reaches the
receiver it is meant for, inhibition and grouping use labels the alerts carry, the finance email
says the amount, team, class and runbook, and the compose and Kubernetes copies fit together."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import (
    ALERTMANAGER_DIR,
    CONTRACT_LABELS,
    DEPLOY,
    KUBERNETES_ALERTMANAGER_DIR,
    KUBERNETES_DIR,
    PROMETHEUS_DIR,
    alert_rules,
    amtool,
    assert_amtool_ok,
    load_script,
    load_yaml,
    load_yaml_all,
)

CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
TEMPLATES = ALERTMANAGER_DIR / "templates"
FINANCE_RECEIVERS = {"finance", "finance-critical"}
PLATFORM_RECEIVERS = {"platform", "platform-page"}
# Alerts that mean the audit of a deployment is not running properly: they hold back the
# finance alerts of the same deployment.
PIPELINE_BROKEN = {"CompAuditorWorkerDown", "CompAuditorNoEvents", "CompAuditorNoRulesLoaded"}
RUNBOOK_URL = re.compile(
    r'^\{\{ or \$externalLabels\.runbook_base_url "(https://[^"\s]+)" \}\}#([a-z0-9-]+)$'
)
MONEY_ALERTS = {"CompAuditorCriticalRetentionFinding", "CompAuditorCommissionAtRiskGrowing"}


def _config() -> dict[str, Any]:
    return load_yaml(CONFIG)  # type: ignore[no-any-return]


def _external_labels() -> dict[str, str]:
    return load_yaml(PROMETHEUS_DIR / "prometheus.yml")["global"]["external_labels"]  # type: ignore[no-any-return]


def _alerts_by_group() -> dict[str, list[dict[str, Any]]]:
    data = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return {group["name"]: group["rules"] for group in data["groups"]}


def _routes_test(labels: dict[str, str], config: Path = CONFIG) -> str:
    args = [f"{key}={value}" for key, value in labels.items()]
    out = assert_amtool_ok("config", "routes", "test", f"--config.file={config}", *args)
    return out.strip()


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    """Every route of the tree, the root first."""
    found = [route]
    for child in route.get("routes", []):
        found.extend(_routes(child))
    return found


# --- amtool ------------------------------------------------------------------------------------


@pytest.mark.prometheus
def test_amtool_check_config() -> None:
    out = assert_amtool_ok("check-config", str(CONFIG))
    assert "SUCCESS" in out
    # The email template is found: templates/*.tmpl relative to the config file.
    assert "1 templates" in out or re.search(r"\b[1-9]\d* templates", out), out


ROUTING_CASES = [
    # (labels, receiver)
    ({"alertname": "CompAuditorCommissionAtRiskGrowing", "audience": "finance",
      "severity": "warning", "class": "recoverable", "team": "emea"}, "finance"),
    ({"alertname": "CompAuditorCriticalRetentionFinding", "audience": "finance",
      "severity": "critical", "rule": "churn-and-resell", "team": "emea"}, "finance-critical"),
    ({"alertname": "CompAuditorAggregateThresholdBreached", "audience": "finance",
      "severity": "info"}, "finance"),
    ({"alertname": "CompAuditorNoEvents", "audience": "platform", "severity": "warning"},
     "platform"),
    ({"alertname": "CompAuditorWorkerDown", "audience": "platform", "severity": "critical",
      "instance": "worker-1:6066"}, "platform-page"),
    # An alert without an audience is a mistake in the rules: the platform hears of it.
    ({"alertname": "SomethingElse", "severity": "critical"}, "platform"),
    # A finance alert is never paged to the platform on-call, whatever its severity.
    ({"alertname": "X", "audience": "finance", "severity": "critical", "instance": "w"},
     "finance-critical"),
]


@pytest.mark.prometheus
@pytest.mark.parametrize(("labels", "receiver"), ROUTING_CASES,
                         ids=[f"{c[0].get('audience', 'none')}-{c[0]['severity']}-{c[1]}"
                              for c in ROUTING_CASES])
def test_amtool_routes(labels: dict[str, str], receiver: str) -> None:
    assert _routes_test(labels) == receiver
    # --verify.receivers makes amtool itself fail on a mismatch.
    args = [f"{key}={value}" for key, value in labels.items()]
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}",
                    f"--verify.receivers={receiver}", *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_reaches_its_audience(rule: dict[str, Any]) -> None:
    """The labels an alert of alerts.yml really has (with the external labels of prometheus.yml)
    reach the receiver of its audience and severity."""
    labels = {"alertname": rule["alert"], **rule["labels"], **_external_labels()}
    audience, severity = rule["labels"]["audience"], rule["labels"]["severity"]
    expected = {
        ("finance", "critical"): "finance-critical",
        ("platform", "critical"): "platform-page",
    }.get((audience, severity), audience)
    assert _routes_test(labels) == expected


# --- the configuration itself ------------------------------------------------------------------


def test_every_alert_has_a_routed_audience() -> None:
    groups = _alerts_by_group()
    for name, audience in (("comp-auditor-finance", "finance"),
                           ("comp-auditor-operations", "platform")):
        for rule in groups[name]:
            assert rule["labels"]["audience"] == audience, rule["alert"]
    routed = {m for route in _routes(_config()["route"]) for m in route.get("matchers", [])}
    assert {'audience="finance"', 'audience="platform"'} <= routed


def test_grouping() -> None:
    root = _config()["route"]
    by_audience = {tuple(route["matchers"]): route for route in root["routes"]}
    finance = by_audience[('audience="finance"',)]
    platform = by_audience[('audience="platform"',)]
    assert {"alertname", "rule", "team"} <= set(finance["group_by"])
    assert {"alertname", "instance"} <= set(platform["group_by"])
    known = CONTRACT_LABELS | {"alertname", "severity", "audience"} | set(_external_labels())
    for route in _routes(root):
        assert set(route.get("group_by", [])) <= known, route.get("group_by")
        assert "..." not in route.get("group_by", []), "one notification per alert is too many"
    # Findings are not pages: finance waits longer and is reminded less often than the on-call.
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def duration(text: str) -> int:
        return sum(int(n) * seconds[u] for n, u in re.findall(r"(\d+)([smhd])", text))

    assert duration(finance["group_wait"]) >= duration(platform["group_wait"])
    assert duration(finance["repeat_interval"]) >= duration(platform["repeat_interval"])
    for route in _routes(root):
        if "group_interval" in route and "repeat_interval" in route:
            assert duration(route["repeat_interval"]) >= duration(route["group_interval"])


def test_inhibition_holds_back_finance_while_the_pipeline_is_broken() -> None:
    rules = _config()["inhibit_rules"]
    alerts = {rule["alert"]: rule for rule in alert_rules()}
    finance_rules = [r for r in rules if r["target_matchers"] == ['audience="finance"']]
    assert len(finance_rules) == 1, rules
    (rule,) = finance_rules
    (names,) = [m for m in rule["source_matchers"] if m.startswith("alertname=~")]
    sources = set(names.split("=~", 1)[1].strip('"').split("|"))
    assert sources == PIPELINE_BROKEN
    assert sources <= set(alerts), "inhibition by alerts that do not exist"
    assert all(alerts[name]["labels"]["audience"] == "platform" for name in sources)
    assert 'audience="platform"' in rule["source_matchers"]
    # Only from the same deployment: the external label that names it.
    assert rule["equal"] == ["stack"]
    assert "stack" in _external_labels()
    for inhibit in rules:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            for name in re.findall(r"\bCompAuditor\w+", matcher):
                assert name in alerts, matcher


def test_receivers_are_used_and_defined() -> None:
    config = _config()
    defined = {receiver["name"] for receiver in config["receivers"]}
    used = {route["receiver"] for route in _routes(config["route"]) if "receiver" in route}
    assert defined == used == FINANCE_RECEIVERS | PLATFORM_RECEIVERS
    by_name = {receiver["name"]: receiver for receiver in config["receivers"]}
    for name in FINANCE_RECEIVERS:
        (email,) = by_name[name]["email_configs"]
        assert "comp_auditor.finance.html" in email["html"]
        assert "comp_auditor.finance.text" in email["text"]
        assert "comp_auditor.finance.subject" in email["headers"]["Subject"]
    for name in defined:
        # One webhook per receiver, on its own path: the example receiver tells them apart.
        (webhook,) = by_name[name]["webhook_configs"]
        assert urllib.parse.urlsplit(webhook["url"]).path == f"/{name}"


def test_templates_used_are_defined() -> None:
    defined = set()
    for path in TEMPLATES.glob("*.tmpl"):
        defined |= set(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', path.read_text()))
    used = set(re.findall(r'template\s+"([^"]+)"', CONFIG.read_text()))
    assert used and used <= defined, used - defined
    assert _config()["templates"] == ["templates/*.tmpl"]


# --- alerts.yml: what a person reads -----------------------------------------------------------


def test_runbook_urls_are_absolute_with_a_base_url_setting() -> None:
    defaults = set()
    for rule in alert_rules():
        match = RUNBOOK_URL.match(rule["annotations"]["runbook_url"])
        assert match, f"{rule['alert']}: runbook_url {rule['annotations']['runbook_url']!r}"
        defaults.add(match.group(1))
        assert match.group(2) == rule["alert"].lower()
    assert len(defaults) == 1, f"one fallback address for every alert: {defaults}"
    base = _external_labels()["runbook_base_url"]
    assert re.fullmatch(r"https://\S+", base), base
    assert "#" not in base


def test_finance_summaries_say_the_amount_and_the_team() -> None:
    for rule in _alerts_by_group()["comp-auditor-finance"]:
        summary = rule["annotations"]["summary"]
        name = rule["alert"]
        # The team (or the plan or team of a per-group alert), and a number formatted for people.
        assert "$labels.team" in summary or "$labels.group" in summary, name
        assert re.search(r"\|\s*(humanize\w*|printf)", summary), name
        if name in MONEY_ALERTS:
            assert "currency" in summary, f"{name}: an amount without its currency"


# --- the email ---------------------------------------------------------------------------------


def _promtool_expected(alertname: str) -> list[dict[str, Any]]:
    """The alerts a promtool test case of alerts_test.yml expects, labels and annotations."""
    for case in load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["alertname"] == alertname and check.get("exp_alerts"):
                return check["exp_alerts"]  # type: ignore[no-any-return]
    raise AssertionError(alertname)


def _render(template: str, data: Path) -> str:
    return assert_amtool_ok(
        "template", "render", f"--template.glob={TEMPLATES}/*.tmpl",
        f"--template.text={{{{ template \"{template}\" . }}}}", f"--template.data={data}")


@pytest.mark.prometheus
def test_finance_email_says_amount_team_class_and_runbook(tmp_path: Path) -> None:
    # The annotations promtool checks for the at-risk alert, as Alertmanager would get them.
    (expected,) = _promtool_expected("CompAuditorCommissionAtRiskGrowing")[:1]
    labels = {"alertname": "CompAuditorCommissionAtRiskGrowing", **expected["exp_labels"],
              "stack": "comp-auditor-compose"}
    annotations = expected["exp_annotations"]
    data = {
        "receiver": "finance", "status": "firing",
        "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                    "startsAt": "2026-03-02T09:30:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": "1"}],
        "groupLabels": {"alertname": labels["alertname"], "team": labels["team"],
                        "stack": "comp-auditor-compose"},
        "commonLabels": labels, "commonAnnotations": annotations,
        "externalURL": "http://localhost:9093",
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    amount = re.search(r"\d[\d.]*k? USD", annotations["summary"])
    assert amount, annotations["summary"]
    subject = _render("comp_auditor.finance.subject", tmp_path / "data.json")
    assert amount.group(0) in subject and labels["team"] in subject, subject
    for kind in ("text", "html"):
        body = _render(f"comp_auditor.finance.{kind}", tmp_path / "data.json")
        assert amount.group(0) in body, body
        assert "17268.00 USD" in body, body  # the exact amount, from the description
        assert labels["team"] in body and labels["class"] in body, body
        assert annotations["runbook_url"].startswith("https://")
        if kind == "html":
            assert f'href="{annotations["runbook_url"]}"' in body, body
        else:
            assert f"Runbook:  {annotations['runbook_url']}" in body, body


# --- compose -----------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    (doc,) = load_yaml_all(DEPLOY / "docker-compose.yml")
    return doc  # type: ignore[no-any-return]


def test_compose_runs_alertmanager_and_prometheus_sends_to_it() -> None:
    services = _compose()["services"]
    alertmanager = services["alertmanager"]
    assert alertmanager["image"].startswith("prom/alertmanager:v")
    assert "./alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert "alertmanager" in services["prometheus"]["depends_on"]
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    targets = [t for am in config["alerting"]["alertmanagers"]
               for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    assert any(p.endswith(":9093") for p in alertmanager["ports"])


def test_compose_webhook_urls_reach_the_example_receiver() -> None:
    services = _compose()["services"]
    receiver = services["webhook-receiver"]
    command = receiver["command"]
    port = command[command.index("--port") + 1]
    assert "./alertmanager/webhook_receiver.py:/app/webhook_receiver.py:ro" in receiver["volumes"]
    for item in _config()["receivers"]:
        for webhook in item.get("webhook_configs", []):
            url = urllib.parse.urlsplit(webhook["url"])
            assert url.hostname in services, webhook["url"]
            assert str(url.port) == port, webhook["url"]


# --- the example webhook receiver --------------------------------------------------------------


def test_example_webhook_receiver_records_and_describes() -> None:
    module = load_script(ALERTMANAGER_DIR / "webhook_receiver.py", "comp_auditor_webhook_rx")
    got: list[tuple[str, dict[str, Any]]] = []
    server = module.serve_in_thread("127.0.0.1", 0, lambda path, body: got.append((path, body)))
    try:
        port = server.server_address[1]
        (expected,) = _promtool_expected("CompAuditorCommissionAtRiskGrowing")[:1]
        body = {"receiver": "finance", "status": "firing",
                "alerts": [{"status": "firing",
                            "labels": {"alertname": "CompAuditorCommissionAtRiskGrowing",
                                       **expected["exp_labels"]},
                            "annotations": expected["exp_annotations"]}]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/finance", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert got == [("/finance", body)]
        text = module.describe("/finance", body)
        assert expected["exp_annotations"]["summary"] in text
        assert expected["exp_annotations"]["runbook_url"] in text
        assert "team=emea class=unrecovered" in text
    finally:
        server.shutdown()
        server.server_close()


# --- Kubernetes --------------------------------------------------------------------------------


def _k8s(name: str) -> list[dict[str, Any]]:
    return load_yaml_all(KUBERNETES_ALERTMANAGER_DIR / name)


def test_kubernetes_configmap_matches_generator() -> None:
    module = load_script(KUBERNETES_DIR / "gen_alertmanager_configmap.py",
                         "comp_auditor_gen_am_configmap")
    committed = (KUBERNETES_ALERTMANAGER_DIR / "alertmanager-configmap.yaml").read_text()
    assert committed == module.render(), (
        "alertmanager-configmap.yaml is stale: run "
        "python deploy/kubernetes/gen_alertmanager_configmap.py"
    )


def test_kubernetes_manifests_fit_together() -> None:
    found = {p.name: [d["kind"] for d in load_yaml_all(p)]
             for p in KUBERNETES_ALERTMANAGER_DIR.glob("*.yaml")}
    assert found == {"alertmanager-configmap.yaml": ["ConfigMap"], "service.yaml": ["Service"],
                     "statefulset.yaml": ["StatefulSet"], "kustomization.yaml": ["Kustomization"]}
    (kustomization,) = _k8s("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(set(found) - {"kustomization.yaml"})
    (sts,) = _k8s("statefulset.yaml")
    (service,) = _k8s("service.yaml")
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for selector in (sts["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert all(labels.get(k) == v for k, v in selector.items())
    # Not selected by the workers' Services and PodDisruptionBudget.
    assert labels["app.kubernetes.io/component"] == "alertmanager"
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in args
    assert "--cluster.listen-address=" in args and sts["spec"]["replicas"] == 1
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["web"] == 9093 and service["spec"]["ports"][0]["targetPort"] == "web"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.prometheus
def test_kubernetes_config_as_mounted_passes_amtool(tmp_path: Path) -> None:
    """Lays the ConfigMap out as the StatefulSet mounts it (every key, by its items) and checks
    that Alertmanager's config and templates are where alertmanager.yml looks for them."""
    (configmap,) = _k8s("alertmanager-configmap.yaml")
    (sts,) = _k8s("statefulset.yaml")
    pod = sts["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"]
                 if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]]
    items = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    assert set(items) == set(configmap["data"]), "every key of the ConfigMap must be mounted"
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    config_arg = next(a for a in container["args"] if a.startswith("--config.file="))
    root = tmp_path / mount["mountPath"].strip("/")
    for key, path in items.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(configmap["data"][key])
    config = tmp_path / config_arg.split("=", 1)[1].strip("/")
    assert config.is_file()
    out = assert_amtool_ok("check-config", str(config), cwd=tmp_path)
    assert re.search(r"\b[1-9]\d* templates", out), out
    for name, path in items.items():
        if name.endswith(".tmpl"):
            assert path == f"templates/{name}"
