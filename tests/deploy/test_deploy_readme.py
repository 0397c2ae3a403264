"""deploy/README.md: every runbook link of the alerts lands on a heading."""

from __future__ import annotations

import re

from deploy_helpers import README, alert_rules, markdown_anchors


def test_every_runbook_anchor_is_a_heading() -> None:
    anchors = markdown_anchors(README)
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path.endswith('/deploy/README.md" }}'), url  # the fallback address is the README
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in deploy/README.md"


def test_every_alert_has_its_own_runbook_section() -> None:
    text = README.read_text(encoding="utf-8")
    for rule in alert_rules():
        assert re.search(rf"^###\s+{rule['alert']}\s*$", text, re.M), rule["alert"]


def test_internal_links_resolve() -> None:
    anchors = markdown_anchors(README)
    text = README.read_text(encoding="utf-8")
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in anchors, anchor


def test_readme_explains_regeneration() -> None:
    text = README.read_text(encoding="utf-8")
    for command in (
        "python deploy/grafana/dashboard.py",
        "python deploy/kubernetes/gen_prometheusrule.py",
        "python deploy/kubernetes/gen_rules_configmap.py",
        "docker compose -f deploy/docker-compose.yml up",
        "kubectl apply -k deploy/kubernetes",
    ):
        assert command in text, command
