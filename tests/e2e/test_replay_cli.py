"""The console script end to end, as a user runs it: simulate, then replay with every output."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditor.rules.loader import default_rules_dir

AUDITOR = str(Path(sys.executable).with_name("auditor"))
ALERT_FIELDS = {"alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk",
                "currency", "deal_id", "account_id", "rep_id", "team", "plan_id", "group_by",
                "group", "period", "value", "threshold", "evidence", "labels", "runbook"}
FAMILIES = {"auditor_events", "auditor_deadletters", "auditor_alerts",
            "auditor_commission_at_risk", "auditor_aggregate_value", "auditor_rules_loaded",
            "auditor_rules_reload_success", "auditor_rules_last_reload_timestamp_seconds",
            "auditor_event_processing_seconds", "auditor_event_lag_seconds"}
BAD_LINES = [
    (b"{not json", "bad_json"),
    (b"[1, 2]", "not_object"),
    (b'{"event_type": "deal_reopened", "event_id": "x", "schema_version": 1}',
     "unknown_event_type"),
    (b'{"event_type": "account_churned", "event_id": "x", "schema_version": 1}', "schema"),
]


def auditor(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([AUDITOR, *args], input=stdin, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    done = auditor("simulate", "--accounts", "1500", "--months", "24", "--seed", "21",
                   "--out", str(path))
    assert done.returncode == 0, done.stderr
    with open(path, "ab") as f:  # bad lines among the good, and a blank one (skipped)
        f.write(b"\n" + b"\n".join(line for line, _ in BAD_LINES) + b"\n")
    return path


def _replay(events: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    out.mkdir(exist_ok=True)
    return auditor("replay", str(events), "--alerts-out", str(out / "alerts.jsonl"),
                   "--deadletter-out", str(out / "dead.jsonl"),
                   "--metrics-out", str(out / "metrics.prom"), *extra)


def test_replay_writes_alerts_dead_letters_metrics_and_a_summary(events, tmp_path):
    done = _replay(events, tmp_path)
    assert done.returncode == 0, done.stderr

    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) > 100
    assert all(set(a) == ALERT_FIELDS for a in alerts)
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    deal_alert = next(a for a in alerts if a["rule"] == "tcv-paid-upfront")
    key = f"tcv-paid-upfront\x1f{deal_alert['deal_id']}"
    assert deal_alert["alert_id"] == hashlib.sha256(key.encode()).hexdigest()
    fired = {a["rule"] for a in alerts}
    assert {"tcv-paid-upfront", "early-churn-unrecovered", "churn-and-resell"} <= fired

    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in letters] == [reason for _, reason in BAD_LINES]
    assert letters[0]["original"] == "{not json"
    assert letters[0]["source"].startswith(f"{events}:")

    families = {f.name: f for f in text_string_to_metric_families(
        (tmp_path / "metrics.prom").read_text())}
    assert set(families) >= FAMILIES
    events_in = sum(s.value for s in families["auditor_events"].samples
                    if s.name == "auditor_events_total")
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    assert events_in == len(lines)  # each non-blank line counted once, under one outcome

    summary = done.stdout.decode()
    assert f"events: {len(lines):,} read" in summary
    for rule in fired:
        assert rule in summary
    assert "commission at risk:" in summary


def test_same_input_gives_the_same_alerts_byte_for_byte(events, tmp_path):
    assert _replay(events, tmp_path / "a", "-q").returncode == 0
    assert _replay(events, tmp_path / "b", "-q").returncode == 0
    assert (tmp_path / "a" / "alerts.jsonl").read_bytes() == (
        tmp_path / "b" / "alerts.jsonl").read_bytes()


def test_replay_reads_stdin(events, tmp_path):
    done = auditor("replay", "-", "--alerts-out", str(tmp_path / "alerts.jsonl"), "-q",
                   stdin=events.read_bytes())
    assert done.returncode == 0, done.stderr
    assert _replay(events, tmp_path / "file", "-q").returncode == 0
    assert (tmp_path / "alerts.jsonl").read_bytes() == (
        tmp_path / "file" / "alerts.jsonl").read_bytes()


def test_a_broken_rule_file_stops_start_up_with_file_and_line(events, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    retention = rules / "retention.yaml"
    text = retention.read_text()
    retention.write_text(text.replace("within_days: 365", "within_days: a year", 1))
    line = next(n for n, row in enumerate(retention.read_text().splitlines(), 1)
                if "within_days: a year" in row)
    done = auditor("replay", str(events), "--rules", str(rules), "-q")
    assert done.returncode != 0
    assert f"{retention}:{line}:" in done.stderr.decode()
    check = auditor("rules", "check", str(rules))
    assert check.returncode == 1 and f"{retention}:{line}:" in check.stderr.decode()


def test_a_missing_input_file_is_an_error_not_a_crash(tmp_path):
    done = auditor("replay", str(tmp_path / "nope.jsonl"), "-q")
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr and b"nope.jsonl" in done.stderr
