"""The findings sink's deployment: compose's postgres and findings-sink services, and the
Kubernetes Deployment, agree with the sink's settings and with Grafana's findings data source."""

from __future__ import annotations

from typing import Any

from deploy_helpers import DEPLOY, KUBERNETES_DIR, load_yaml_all
from psycopg.conninfo import conninfo_to_dict


def _compose() -> dict[str, Any]:
    (doc,) = load_yaml_all(DEPLOY / "docker-compose.yml")
    return doc


def _deployment() -> dict[str, Any]:
    (doc,) = load_yaml_all(KUBERNETES_DIR / "findings-sink.yaml")
    return doc


def test_compose_sink_writes_to_the_stacks_postgres() -> None:
    services = _compose()["services"]
    sink, postgres = services["findings-sink"], services["postgres"]
    assert sink["command"] == ["auditor", "sink", "postgres"]
    assert sink["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = sink["environment"]
    dsn = conninfo_to_dict(env["AUDITOR_FINDINGS_DSN"])
    assert "password" not in dsn, "the password goes in PGPASSWORD, not in the DSN"
    assert (dsn["host"], str(dsn["port"]), dsn["dbname"], dsn["user"]) == (
        "postgres", "5432", postgres["environment"]["POSTGRES_DB"],
        postgres["environment"]["POSTGRES_USER"])
    assert env["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
    assert env["AUDITOR_BROKER"] == services["worker-1"]["environment"]["AUDITOR_BROKER"]
    assert env["AUDITOR_SINK_GROUP_ID"] != services["worker-1"]["environment"]["AUDITOR_GROUP_ID"]
    assert sink["healthcheck"] == {"disable": True}  # no web port to probe
    assert "postgres-data" in _compose()["volumes"]


def test_compose_grafana_reads_the_database_the_sink_writes() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]["environment"]
    postgres = compose["services"]["postgres"]
    assert grafana["FINDINGS_DB_HOST"].endswith("postgres:5432}")
    assert grafana["FINDINGS_DB_NAME"].endswith(f"-{postgres['environment']['POSTGRES_DB']}}}")
    (config,) = postgres["configs"]
    assert config["target"].startswith("/docker-entrypoint-initdb.d/")
    script = compose["configs"][config["source"]]["content"]
    assert "CREATE ROLE grafana_reader" in script
    assert "GRANT SELECT ON TABLES TO grafana_reader" in script
    assert grafana["FINDINGS_DB_USER"].endswith("-grafana_reader}")


def test_kubernetes_deployment_runs_the_sink_with_its_dsn_from_a_secret() -> None:
    deployment = _deployment()
    assert deployment["kind"] == "Deployment"
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"][
        "labels"].items()
    assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "findings-sink"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["auditor", "sink", "postgres"]
    env = {item["name"]: item for item in container["env"]}
    assert "secretKeyRef" in env["AUDITOR_FINDINGS_DSN"]["valueFrom"]
    assert env["AUDITOR_SINK_GROUP_ID"]["value"] != "comp-auditor"  # not the workers' group
    (sts,) = load_yaml_all(KUBERNETES_DIR / "statefulset.yaml")
    (worker,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == worker["image"]
    security = spec["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
