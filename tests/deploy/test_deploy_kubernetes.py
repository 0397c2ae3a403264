"""Kubernetes manifests: they parse, fit together, and the generated ones are current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import (
    KUBERNETES_DIR,
    LIVENESS_PATH,
    PROMETHEUS_DIR,
    READINESS_PATH,
    REPO,
    SCRAPE_JOB,
    WEB_PORT,
    assert_promtool_ok,
    load_script,
    load_yaml,
    load_yaml_all,
)

EXPECTED_KINDS = {
    "statefulset.yaml": ["StatefulSet"],
    "service.yaml": ["Service", "Service"],
    "servicemonitor.yaml": ["ServiceMonitor"],
    "prometheusrule.yaml": ["PrometheusRule"],
    "rules-configmap.yaml": ["ConfigMap"],
    "poddisruptionbudget.yaml": ["PodDisruptionBudget"],
    "kustomization.yaml": ["Kustomization"],
    "findings-sink.yaml": ["Deployment"],
}


def _docs(name: str) -> list[dict[str, Any]]:
    return load_yaml_all(KUBERNETES_DIR / name)


def _one(name: str) -> dict[str, Any]:
    (doc,) = _docs(name)
    return doc


def _services() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in _docs("service.yaml")}


def _container() -> dict[str, Any]:
    (container,) = _one("statefulset.yaml")["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("path", sorted(KUBERNETES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_parses(path: Path) -> None:
    docs = load_yaml_all(path)
    assert docs, path.name
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path.name


def test_expected_kinds() -> None:
    found = {p.name: [d["kind"] for d in load_yaml_all(p)] for p in KUBERNETES_DIR.glob("*.yaml")}
    assert found == EXPECTED_KINDS


def test_kustomization_lists_every_manifest() -> None:
    resources = _one("kustomization.yaml")["resources"]
    manifests = {name for name in EXPECTED_KINDS if name != "kustomization.yaml"}
    assert sorted(resources) == sorted(manifests)


def test_statefulset_keeps_table_state_on_a_claim() -> None:
    sts = _one("statefulset.yaml")
    spec = sts["spec"]
    container = _container()
    env = _env(container)
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["AUDITOR_DATA_DIR"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["replicas"] >= 2
    assert int(env["AUDITOR_WEB_PORT"]) == WEB_PORT
    assert env["AUDITOR_BROKER"].startswith("kafka://")
    for key in (
        "AUDITOR_RULES",
        "AUDITOR_GROUP_ID",
        "AUDITOR_TOPIC_PARTITIONS",
        "AUDITOR_REPLICATION_FACTOR",
    ):
        assert env[key], key
    assert spec["replicas"] <= int(env["AUDITOR_TOPIC_PARTITIONS"])


def test_statefulset_probes_and_port() -> None:
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == WEB_PORT
    for probe, path in (
        ("livenessProbe", LIVENESS_PATH),
        ("readinessProbe", READINESS_PATH),
        ("startupProbe", LIVENESS_PATH),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in ("http", WEB_PORT), probe


def test_statefulset_runs_as_the_image_user() -> None:
    pod = _one("statefulset.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert f"USER {pod['securityContext']['runAsUser']}" in dockerfile


def test_rules_configmap_is_mounted_at_auditor_rules() -> None:
    pod = _one("statefulset.yaml")["spec"]["template"]["spec"]
    container = _container()
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = _one("rules-configmap.yaml")["metadata"]["name"]
    (rules_volume,) = [
        n for n, v in volumes.items() if v.get("configMap", {}).get("name") == configmap
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == rules_volume]
    assert mount["mountPath"] == _env(container)["AUDITOR_RULES"]
    assert "subPath" not in mount, "subPath mounts never see ConfigMap updates"


def test_services_select_the_workers() -> None:
    sts = _one("statefulset.yaml")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert _matches(sts["spec"]["selector"]["matchLabels"], pod_labels)
    services = _services()
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    metrics = [s for name, s in services.items() if name != sts["spec"]["serviceName"]]
    assert len(metrics) == 1
    for service in services.values():
        assert _matches(service["spec"]["selector"], pod_labels), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["port"] == WEB_PORT
            assert port["targetPort"] in ("http", WEB_PORT)


def test_servicemonitor_scrapes_the_metrics_service_as_the_contract_job() -> None:
    monitor = _one("servicemonitor.yaml")
    services = _services()
    selected = [
        s
        for s in services.values()
        if _matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert len(selected) == 1, "the ServiceMonitor must select exactly the metrics Service"
    (service,) = selected
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint.get("path", "/metrics") == "/metrics"
    # Prometheus's job label is the value of the jobLabel label on the Service.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert job == SCRAPE_JOB


def test_pdb_selects_the_workers() -> None:
    pdb = _one("poddisruptionbudget.yaml")
    pod_labels = _one("statefulset.yaml")["spec"]["template"]["metadata"]["labels"]
    assert _matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)


def test_committed_prometheusrule_matches_generator() -> None:
    module = load_script(KUBERNETES_DIR / "gen_prometheusrule.py", "comp_auditor_gen_promrule")
    committed = (KUBERNETES_DIR / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == module.render(), (
        "prometheusrule.yaml is stale: run python deploy/kubernetes/gen_prometheusrule.py"
    )


def test_prometheusrule_carries_the_same_groups_as_alerts_yml() -> None:
    rule = _one("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]


@pytest.mark.prometheus
def test_prometheusrule_spec_passes_promtool(tmp_path: Path) -> None:
    spec = _one("prometheusrule.yaml")["spec"]
    rules_file = tmp_path / "prometheusrule-spec.yml"
    rules_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    assert_promtool_ok("check", "rules", str(rules_file), cwd=tmp_path)


def test_committed_rules_configmap_matches_generator() -> None:
    module = load_script(KUBERNETES_DIR / "gen_rules_configmap.py", "comp_auditor_gen_rules_cm")
    committed = (KUBERNETES_DIR / "rules-configmap.yaml").read_text(encoding="utf-8")
    assert committed == module.render(), (
        "rules-configmap.yaml is stale (rules/ changed): run "
        "python deploy/kubernetes/gen_rules_configmap.py"
    )


def test_rules_configmap_holds_the_rule_files() -> None:
    data = _one("rules-configmap.yaml").get("data") or {}
    on_disk = sorted(p.name for p in (REPO / "rules").glob("*") if p.suffix in {".yaml", ".yml"})
    assert sorted(data) == on_disk
    for name, text in data.items():
        yaml.safe_load(text)  # every rule file is YAML
        assert text == (REPO / "rules" / name).read_text(encoding="utf-8")
