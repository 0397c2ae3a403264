"""Shared helpers for the deploy/ tests: paths, the metric contract, promtool, PromQL names."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
KUBERNETES_DIR = DEPLOY / "kubernetes"
ALERTMANAGER_DIR = DEPLOY / "alertmanager"
KUBERNETES_ALERTMANAGER_DIR = KUBERNETES_DIR / "alertmanager"
README = DEPLOY / "README.md"

# The metric contract (DESIGN.md, "Metrics"): the only names alerts and panels may use.
CONTRACT_METRICS = frozenset(
    {
        "auditor_events_total",
        "auditor_deadletters_total",
        "auditor_alerts_total",
        "auditor_last_alert_timestamp_seconds",
        "auditor_commission_at_risk_total",
        # DESIGN.md rev 4, "Money": paid, flagged once per class, and commission retention.
        "auditor_commission_paid_total",
        "auditor_commission_flagged_total",
        "auditor_commission_retention_ratio",
        "auditor_commission_retention_target",
        "auditor_aggregate_value",
        "auditor_aggregate_breached",
        "auditor_rules_loaded",
        "auditor_rules_reload_success",
        "auditor_rules_last_reload_timestamp_seconds",
        "auditor_event_processing_seconds",
        "auditor_event_lag_seconds",
        "auditor_consumer_lag",
    }
)
HISTOGRAMS = frozenset({"auditor_event_processing_seconds", "auditor_event_lag_seconds"})
# Labels the metrics carry, plus what Prometheus adds (job, instance) and histogram buckets (le).
CONTRACT_LABELS = frozenset(
    {
        "event_type",
        "outcome",
        "reason",
        "rule",
        "severity",
        "team",
        "currency",
        "plan_id",
        "class",
        "group_by",
        "group",
        "period",
        "status",
        "topic",
        "partition",
        "le",
        "job",
        "instance",
    }
)
DEFAULT_RULE_IDS = frozenset(
    {
        "tcv-paid-upfront",
        "early-churn-unrecovered",
        "discount-then-churn",
        "churn-and-resell",
        "renewal-rate-gap",
        "new-logo-payout-share",
        "rep-early-churn-rate",
    }
)
SEVERITIES = frozenset({"info", "warning", "critical"})
# The money classes of the alert contract (DESIGN.md rev 4, `money_class`), the values of the
# `class` label.
MONEY_CLASSES = frozenset({"unrecovered", "recoverable", "exposure", "overpaid"})
# Counters of money: amounts in the reporting currency, exported at 0 from the start.
MONEY_COUNTERS = frozenset(
    {
        "auditor_commission_paid_total",
        "auditor_commission_flagged_total",
        "auditor_commission_at_risk_total",
    }
)
# Which labels of which metric a dashboard variable filters: every panel selecting the metric
# must filter the label by the variable (label=~"$variable"), or pin it (label="value").
VARIABLE_LABELS = {
    "team": "team",
    "plan": "plan_id",
    "rule": "rule",
    "class": "class",
}
METRIC_VARIABLES = {
    "auditor_commission_paid_total": {"team", "plan"},
    "auditor_commission_flagged_total": {"team", "plan", "class"},
    "auditor_commission_at_risk_total": {"team", "rule", "class"},
    "auditor_alerts_total": {"team", "rule"},
}
# Dashboard variables inside queries: these, and Grafana's $__range.
DASHBOARD_VARIABLES = frozenset(VARIABLE_LABELS)
SCRAPE_JOB = "comp-auditor"
WEB_PORT = 6066
# The worker's HTTP endpoints (the brief of the worker: liveness, readiness, metrics).
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"

PROMTOOL_MISSING = (
    "promtool not found on PATH: install Debian's prometheus package "
    "(apt-get install prometheus); it ships promtool and needs no running server"
)

AMTOOL_MISSING = (
    "amtool not found on PATH: install Debian's prometheus-alertmanager package "
    "(apt-get install prometheus-alertmanager); it ships amtool and needs no running server"
)


# --- files -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_yaml_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script of deploy/ by path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def alert_rules() -> list[dict[str, Any]]:
    data = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


# --- promtool ----------------------------------------------------------------------------------


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def assert_promtool_ok(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    result = promtool(*args, cwd=cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


# --- amtool ------------------------------------------------------------------------------------


def amtool(*args: str, cwd: Path = ALERTMANAGER_DIR) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    if exe is None:
        pytest.fail(AMTOOL_MISSING, pytrace=False)
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def assert_amtool_ok(*args: str, cwd: Path = ALERTMANAGER_DIR) -> str:
    result = amtool(*args, cwd=cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"amtool {' '.join(args)} failed:\n{output}"
    return result.stdout


# --- PromQL ------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")  # numbers, durations (5m), hex, exponents
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
    }
)


def _strip_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects, with histogram suffixes folded into the base name.

    Identifiers followed by "(" are functions or aggregations; label names inside {...} and
    grouping clauses, keywords, numbers and durations are not metric names.
    """
    text = _strip_strings(expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        name = match.group(0)
        if name.lower() in _KEYWORDS:
            continue
        if re.match(r"\s*\(", text[match.end() :]):
            continue  # function call or aggregation
        for suffix in ("_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix)
            if base != name and base in HISTOGRAMS:
                name = base
        names.add(name)
    return names


def label_names(expr: str) -> set[str]:
    """Label names used in selectors and in by/without/on/ignoring/group_x clauses."""
    text = _strip_strings(expr)
    labels: set[str] = set()
    for block in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(block))
    for _, inside in _GROUPING.findall(text):
        labels.update(part.strip() for part in inside.split(",") if part.strip())
    return labels


_SELECTOR = re.compile(r"\b([a-z_:][a-z0-9_:]*)\s*\{([^{}]*)\}")


def selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric, {label: (operator, value)}) for every `metric{...}` selector of `expr`."""
    found = []
    for name, block in _SELECTOR.findall(expr):
        matchers = {
            label: (op, value)
            for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', block)
        }
        found.append((name, matchers))
    return found


def rule_ids(expr: str) -> set[str]:
    """Values of rule="..." matchers."""
    return set(re.findall(r'\brule\s*=\s*"([^"]*)"', expr))


# --- Markdown ----------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def markdown_anchors(path: Path = README) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match:
            anchor = github_anchor(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors
