"""docker-compose.yml and the Dockerfile: they parse and agree with the rest of deploy/."""

from __future__ import annotations

import re
import shlex
from typing import Any

from deploy_helpers import (
    DEPLOY,
    LIVENESS_PATH,
    METRICS_PATH,
    PROMETHEUS_DIR,
    READINESS_PATH,
    SCRAPE_JOB,
    WEB_PORT,
    load_yaml,
    load_yaml_all,
)

SERVICES = {"kafka", "worker-1", "worker-2", "producer", "prometheus", "grafana",
            "alertmanager", "webhook-receiver", "postgres", "findings-sink"}
WORKERS = ("worker-1", "worker-2")


def _compose() -> dict[str, Any]:
    (doc,) = load_yaml_all(DEPLOY / "docker-compose.yml")
    return doc


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_compose_services() -> None:
    compose = _compose()
    assert set(compose["services"]) == SERVICES
    for volume in compose.get("volumes", {}):
        assert isinstance(volume, str)


def test_kafka_runs_in_kraft_mode() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert "ZOOKEEPER" not in " ".join(env).upper()
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_workers() -> None:
    services = _compose()["services"]
    for name in WORKERS:
        worker = services[name]
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
        env = worker["environment"]
        assert env["AUDITOR_BROKER"] == "kafka://kafka:9092"
        assert int(env["AUDITOR_WEB_PORT"]) == WEB_PORT
        mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
        assert env["AUDITOR_DATA_DIR"] in mounts, f"{name}: table state not on a volume"
        assert mounts[env["AUDITOR_RULES"]] == "../rules"
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    data_volumes = [
        {v.split(":")[0] for v in services[name]["volumes"]} - {"../rules"} for name in WORKERS
    ]
    assert data_volumes[0].isdisjoint(data_volumes[1]), "each worker needs its own table state"


def test_prometheus_scrapes_every_worker_service() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == SCRAPE_JOB]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:{WEB_PORT}" for name in WORKERS}


def test_prometheus_and_grafana_mount_the_deploy_files() -> None:
    services = _compose()["services"]
    prometheus = services["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = services["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume


def test_producer_is_a_one_shot_simulate_and_produce() -> None:
    producer = _compose()["services"]["producer"]
    assert producer["restart"] == "no"
    command = " ".join(producer["command"])
    assert "auditor simulate" in command
    assert "auditor produce" in command and "--broker kafka://kafka:9092" in command
    assert set(producer["depends_on"]) == set(WORKERS)


def test_dockerfile_basics() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", str(WEB_PORT)) in instructions
    cmd = [args for word, args in instructions if word == "CMD"][-1]
    assert cmd == '["auditor", "worker"]'
    assert any(word == "RUN" and "pip install" in args for word, args in instructions)


def test_dockerfile_healthcheck_probes_the_liveness_endpoint() -> None:
    (healthcheck,) = [args for word, args in _dockerfile_instructions() if word == "HEALTHCHECK"]
    paths = set(re.findall(r"/[a-z]+z\b|/metrics\b", healthcheck))
    assert paths, healthcheck
    # Only endpoints the worker serves; liveness, so a recovering worker is not restarted.
    assert paths <= {LIVENESS_PATH, READINESS_PATH, METRICS_PATH}
    assert paths == {LIVENESS_PATH}
    assert "AUDITOR_WEB_PORT" in healthcheck and str(WEB_PORT) in healthcheck
    assert "CMD" in shlex.split(healthcheck.replace('"', " "))


def test_dockerfile_copies_what_exists() -> None:
    repo = DEPLOY.parent
    for word, args in _dockerfile_instructions():
        if word == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                # README.md is read by the package build (pyproject's readme).
                assert (repo / source).exists() or source == "README.md", source
