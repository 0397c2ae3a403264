"""The console script end to end, as a user runs it: `auditor simulate`, then `auditor replay`
with every output, checked against the contracts of DESIGN.md (alerts, dead letters, metrics,
command line)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import auditor
from prometheus_client.parser import text_string_to_metric_families

from auditor.engine.alerts import alert_id
from auditor.engine.plan_check import RULE as PLAN_CHECK_RULE
from auditor.events.deadletter import REASONS
from auditor.rules.loader import default_rules_dir, load_rule_pack

# Small but realistic: every rule of the default pack fires on it, in well under a second.
SIM_ARGS = ("--accounts", "1500", "--months", "24", "--seed", "22")  # every kind fires

ALERT_FIELDS = {"alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk",
                "money_class", "currency", "deal_id", "account_id", "rep_id", "team", "plan_id",
                "group_by", "group", "period", "value", "threshold", "evidence", "labels",
                "runbook"}
DEAL_FIELDS = ("deal_id", "account_id", "rep_id", "team", "plan_id")
AGGREGATE_FIELDS = ("group_by", "group", "period", "value", "threshold")
DEAL_KINDS = {"deal", "churn-after-deal", "deal-after-churn", "deal-after-deal"}
SEVERITIES = {"info", "warning", "critical"}
OUTCOMES = {"processed", "late", "duplicate", "invalid"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
PERIOD = re.compile(r"^(\d{4})-Q([1-4])$")

# The metric families DESIGN.md lists, minus worker-only consumer lag (parser names: counters
# without their _total suffix). Dead letters by reason feed a dashboard panel and an alert.
FAMILIES = {
    "auditor_events": "counter",
    "auditor_alerts": "counter",
    "auditor_commission_at_risk": "counter",
    "auditor_aggregate_value": "gauge",
    "auditor_rules_loaded": "gauge",
    "auditor_rules_reload_success": "gauge",
    "auditor_rules_last_reload_timestamp_seconds": "gauge",
    "auditor_event_processing_seconds": "histogram",
    "auditor_event_lag_seconds": "histogram",
    "auditor_deadletters": "counter",
}

_BAD_CHURN = {"event_type": "account_churned", "event_id": "bad-churn", "schema_version": 1,
              "account_id": "acct-bad", "churned_at": "2026-06-01T00:00:00Z",
              "churn_type": "full", "arr_lost": 100.0, "currency": "USD"}
# (line, reason, event_type it is counted under): appended to the simulated stream.
BAD_LINES: list[tuple[bytes, str, str]] = [
    (b"{not json", "bad_json", "unknown"),
    (b"\xff\xfe not UTF-8", "bad_json", "unknown"),
    (b"[1, 2]", "not_object", "unknown"),
    (b'{"event_type": "deal_reopened", "event_id": "bad-type", "schema_version": 1}',
     "unknown_event_type", "unknown"),
    (b'{"event_type": "account_churned", "event_id": "bad-empty", "schema_version": 1}',
     "schema", "account_churned"),
    (json.dumps({**_BAD_CHURN, "arr_lost": "12"}).encode(), "schema", "account_churned"),
    (json.dumps({**_BAD_CHURN, "currency": "XTS"}).encode(), "unsupported_currency",
     "account_churned"),
    (b'{"event_type": "deal_closed", "pad": "' + b"x" * (1 << 20) + b'"}', "too_large",
     "unknown"),
]


@pytest.fixture(scope="module")
def rules() -> Any:
    return load_rule_pack(default_rules_dir())


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated stream with bad lines among the good, a blank and a whitespace-only line."""
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    done = auditor("simulate", *SIM_ARGS, "--out", str(path))
    assert done.returncode == 0, done.stderr.decode()
    with open(path, "ab") as f:
        for n, (line, _, _) in enumerate(BAD_LINES):
            f.write(line + b"\n")
            if n == 2:
                f.write(b"\n   \n")  # skipped, not dead-lettered
    return path


def _replay(source: str, out: Path, *extra: str,
            stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    return auditor("replay", source, "--alerts-out", str(out / "alerts.jsonl"),
                   "--deadletter-out", str(out / "dead.jsonl"),
                   "--metrics-out", str(out / "metrics.prom"), *extra, stdin=stdin)


@pytest.fixture(scope="module")
def replayed(events: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, subprocess.CompletedProcess[bytes]]:
    """One replay of the stream with every output: (output folder, the finished process)."""
    out = tmp_path_factory.mktemp("replay")
    done = _replay(str(events), out)
    assert done.returncode == 0, done.stderr.decode()  # dead letters do not fail the run
    return out, done


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _input_lines(events: Path) -> list[bytes]:
    """The file's lines as the replay numbers them (1-based, by newline)."""
    return events.read_bytes().split(b"\n")[:-1]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _period_end(period: str) -> str:
    year, quarter = (int(x) for x in PERIOD.match(period).groups())  # type: ignore[union-attr]
    return f"{year + quarter // 4}-{(quarter % 4) * 3 + 1:02d}-01T00:00:00Z"


def test_alerts_follow_the_alert_contract(replayed, rules):
    alerts = _jsonl(replayed[0] / "alerts.jsonl")
    assert len(alerts) > 100
    # The pack's rules, and the deal-level check against rules/plans.yaml.
    rule_ids = {*rules.by_id(), PLAN_CHECK_RULE}
    reporting = rules.currency.reporting
    for a in alerts:
        assert set(a) == ALERT_FIELDS, a
        assert a["severity"] in SEVERITIES, a
        assert a["rule"] in rule_ids, a
        assert a["currency"] == reporting, a
        assert RFC3339_UTC.match(a["event_time"]), a
        assert isinstance(a["at_risk"], int | float) and a["at_risk"] >= 0, a
        assert a["at_risk"] == round(a["at_risk"], 2), a  # money in cents
        assert isinstance(a["summary"], str) and a["summary"], a
        assert isinstance(a["evidence"], dict) and a["evidence"], a
        assert isinstance(a["labels"], dict) and isinstance(a["runbook"], str), a
        if a["kind"] in DEAL_KINDS:
            assert all(isinstance(a[f], str) and a[f] for f in DEAL_FIELDS), a
            assert all(a[f] is None for f in AGGREGATE_FIELDS), a
            ev = a["evidence"]
            # event_time: the later of the joined events; the deal's for deal rules.
            joined = [ev[k] for k in ("closed_at", "churned_at", "first_closed_at",
                                      "second_closed_at") if ev.get(k)]
            later = max(joined, key=_time)
            assert a["event_time"] == later, a
        else:
            assert a["kind"] == "aggregate", a
            assert all(a[f] is None for f in DEAL_FIELDS), a  # a by-team group is in `group`
            assert a["group_by"] in {"team", "plan_id", "rep_id"}, a
            assert isinstance(a["group"], str) and a["group"], a
            assert PERIOD.match(a["period"]), a
            assert a["event_time"] == _period_end(a["period"]), a  # the period's exclusive end
            assert all(isinstance(a[f], int | float) for f in ("value", "threshold")), a
            assert math.isfinite(a["value"]), a

    kinds = {a["kind"] for a in alerts}
    assert kinds == DEAL_KINDS | {"aggregate"}, "the stream exercises every kind of rule"


def test_alert_ids_are_unique_and_the_sha256_of_rule_and_key(replayed):
    alerts = _jsonl(replayed[0] / "alerts.jsonl")
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    for a in alerts:
        assert re.fullmatch(r"[0-9a-f]{64}", a["alert_id"]), a  # a sha256 hex digest
        # The key of a finding: per (rule, deal, churn event) for churn-after-deal, per (rule,
        # deal) for deal and deal-after-churn, per (rule, group, period) for aggregates; a deal
        # is (account, deal id), since deal ids are unique per account only.
        if a["kind"] == "churn-after-deal":
            key = (a["account_id"], a["deal_id"], a["evidence"]["churn_event_id"])
        elif a["kind"] == "deal-after-deal":
            key = (a["account_id"], a["deal_id"], a["evidence"]["first_deal_id"])
        elif a["kind"] in DEAL_KINDS:
            key = (a["account_id"], a["deal_id"])
        else:
            key = (a["group"], a["period"])
        assert a["alert_id"] == alert_id(a["rule"], *key), a
    # And the digest is sha256 over the rule id and the key, computed here independently.
    deal = next(a for a in alerts if a["kind"] == "deal")
    digest = hashlib.sha256(
        f"{deal['rule']}\x1f{deal['account_id']}\x1f{deal['deal_id']}".encode()).hexdigest()
    assert deal["alert_id"] == digest


def test_each_bad_line_is_one_dead_letter_with_its_reason(replayed, events):
    letters = _jsonl(replayed[0] / "dead.jsonl")
    assert [d["reason"] for d in letters] == [reason for _, reason, _ in BAD_LINES]
    numbered = {line: n for n, line in enumerate(_input_lines(events), 1)}
    for letter, (line, _, _) in zip(letters, BAD_LINES, strict=True):
        assert letter["source"] == f"{events}:{numbered[line]}"
        assert letter["detail"]
        if letter["reason"] == "too_large":  # only the head is kept, and it says so
            assert letter["truncated"] is True and letter["original_bytes"] == len(line)
            assert len(letter["original"]) < len(line)
            assert line.decode().startswith(letter["original"])
        else:
            assert set(letter) == {"reason", "detail", "source", "original"}, letter
            assert letter["original"] == line.decode("utf-8", errors="replace")
    # The detail names the field (or the currency) at fault.
    details = {line: letter["detail"] for letter, (line, _, _) in zip(letters, BAD_LINES,
                                                                      strict=True)}
    assert "arr_lost" in details[BAD_LINES[5][0]]
    assert "XTS" in details[BAD_LINES[6][0]]


def test_metrics_file_has_every_family_and_counts_each_line_once(replayed, events, rules):
    out = replayed[0]
    alerts = _jsonl(out / "alerts.jsonl")
    families = {f.name: f for f in text_string_to_metric_families(
        (out / "metrics.prom").read_text(encoding="utf-8"))}
    for name, kind in FAMILIES.items():
        assert name in families, f"{name} missing from the replay's metrics"
        assert families[name].type == kind, name
    samples = {name: [s for s in f.samples if not s.name.endswith("_created")]
               for name, f in families.items()}

    non_blank = [line for line in _input_lines(events) if line.strip()]
    by_outcome: Counter[str] = Counter()
    invalid_by_type: Counter[str] = Counter()
    for s in samples["auditor_events"]:
        assert s.labels["outcome"] in OUTCOMES, s
        by_outcome[s.labels["outcome"]] += int(s.value)
        if s.labels["outcome"] == "invalid":
            invalid_by_type[s.labels["event_type"]] += int(s.value)
    assert sum(by_outcome.values()) == len(non_blank)  # each non-blank line counted once
    assert by_outcome["invalid"] == len(BAD_LINES)
    assert by_outcome["processed"] > 0 and by_outcome["duplicate"] > 0  # the simulator retries
    assert invalid_by_type == Counter(event_type for _, _, event_type in BAD_LINES)
    dead = {s.labels["reason"]: int(s.value) for s in samples["auditor_deadletters"]}
    assert {r: n for r, n in dead.items() if n} == Counter(reason for _, reason, _ in BAD_LINES)
    assert set(dead) == set(REASONS)  # every reason exported, at 0 until counted

    # Valid events are timed; dead letters are not events.
    processing = {s.name: s.value for s in samples["auditor_event_processing_seconds"]
                  if s.name.endswith("_count")}
    assert processing == {"auditor_event_processing_seconds_count":
                          len(non_blank) - len(BAD_LINES)}
    lag_count = next(s.value for s in samples["auditor_event_lag_seconds"]
                     if s.name.endswith("_count"))
    assert lag_count == len(non_blank) - len(BAD_LINES)

    # Findings: the counter agrees with the alerts file, per rule and severity; at risk per rule.
    counted: Counter[tuple[str, str]] = Counter()
    for s in samples["auditor_alerts"]:
        counted[s.labels["rule"], s.labels["severity"]] += int(s.value)
    assert counted == Counter((a["rule"], a["severity"]) for a in alerts)
    at_risk: defaultdict[str, float] = defaultdict(float)
    for s in samples["auditor_commission_at_risk"]:
        assert s.labels["currency"] == rules.currency.reporting
        at_risk[s.labels["rule"]] += s.value
    expected: defaultdict[str, float] = defaultdict(float)
    for a in alerts:
        if a["at_risk"]:
            expected[a["rule"]] += a["at_risk"]
    assert {rule for rule, amount in at_risk.items() if amount} == set(expected)
    for rule, amount in expected.items():
        assert at_risk[rule] == pytest.approx(amount, abs=0.05), rule

    assert [s.value for s in samples["auditor_rules_loaded"]] == [rules.rule_count]
    assert [s.value for s in samples["auditor_rules_reload_success"]] == [1.0]
    assert samples["auditor_rules_last_reload_timestamp_seconds"][0].value > 0
    live = samples["auditor_aggregate_value"]
    assert live, "the stream's last quarter has live aggregate values"
    assert {s.labels["group_by"] for s in live} <= {"team", "plan_id"}  # never rep_id

    # Bounded labels: no deal, account or rep id is ever a label value.
    ids = {a[f] for a in alerts for f in ("deal_id", "account_id", "rep_id") if a[f]}
    ids |= {a["group"] for a in alerts if a["group_by"] == "rep_id"}
    label_values = {v for f in samples.values() for s in f for v in s.labels.values()}
    assert not ids & label_values


def test_summary_names_the_rules_that_fired(replayed, events):
    out, done = replayed
    alerts = _jsonl(out / "alerts.jsonl")
    summary = done.stdout.decode()
    non_blank = [line for line in _input_lines(events) if line.strip()]
    assert f"events: {len(non_blank):,} read" in summary
    assert f"{len(BAD_LINES):,} invalid" in summary
    fired = Counter((a["rule"], a["severity"]) for a in alerts)
    assert len({rule for rule, _ in fired}) >= 6, "most rules of the pack fire on this stream"
    for (rule, severity), n in fired.items():
        assert re.search(rf"^\s*{severity}\s+{re.escape(rule)}\s+{n:,}\b", summary, re.M), (
            rule, severity, n, summary)


def test_summary_totals_count_each_deal_once_per_class(replayed, events):
    """The classes' totals, recomputed here from the alerts: per (account, deal, class), the
    largest amount any finding gives it; none above commission paid."""
    out, done = replayed
    summary = done.stdout.decode()
    largest: dict[tuple[str, str, str], float] = {}
    per_rule: Counter[str] = Counter()
    for a in _jsonl(out / "alerts.jsonl"):
        if a["kind"] == "aggregate":
            items = [((d["account_id"], d["deal_id"], d["class"]), d["amount"])
                     for d in a["evidence"].get("money_by_deal", [])]
        else:
            items = [((a["account_id"], a["deal_id"], c), amount)
                     for c, amount in a["evidence"].get("money", {}).items()]
        for key, amount in items:
            largest[key] = max(largest.get(key, 0.0), amount)
            per_rule[key[2]] += amount
    totals: Counter[str] = Counter()
    for (_, _, money_class), amount in largest.items():
        totals[money_class] += amount
    paid = float(re.search(r"^commission paid: ([\d,.]+) ", summary, re.M)[1].replace(",", ""))
    assert {"unrecovered", "recoverable", "exposure", "overpaid"} <= set(totals)
    for money_class, amount in totals.items():
        shown = re.search(rf"^  {money_class}\s+([\d,.]+) USD\s+([\d.]+)%$", summary, re.M)
        assert shown, (money_class, summary)
        assert float(shown[1].replace(",", "")) == pytest.approx(amount, abs=0.01)
        assert float(shown[2]) == pytest.approx(100 * amount / paid, abs=0.05)
    assert sum(totals.values()) <= paid
    # A deal flagged by two rules in one class is counted once: less than the per-rule sums.
    assert sum(totals.values()) < sum(per_rule.values())


def test_same_seed_gives_the_same_events_and_the_same_alerts(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        done = auditor("simulate", *SIM_ARGS, "--out", str(tmp_path / run / "events.jsonl"))
        assert done.returncode == 0, done.stderr.decode()
        done = _replay(str(tmp_path / run / "events.jsonl"), tmp_path / run, "-q")
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout == b""  # -q: no summary
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "events.jsonl").read_bytes() == (b / "events.jsonl").read_bytes()
    alerts = (a / "alerts.jsonl").read_bytes()
    assert alerts and alerts == (b / "alerts.jsonl").read_bytes()


def test_replay_reads_stdin_like_a_file(replayed, events, tmp_path):
    done = _replay("-", tmp_path, "-q", stdin=events.read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "alerts.jsonl").read_bytes() == (
        replayed[0] / "alerts.jsonl").read_bytes()
    from_file = _jsonl(replayed[0] / "dead.jsonl")
    from_stdin = _jsonl(tmp_path / "dead.jsonl")
    assert [d["source"] for d in from_stdin] == [
        d["source"].replace(str(events), "<stdin>") for d in from_file]
    assert [d["reason"] for d in from_stdin] == [d["reason"] for d in from_file]


def _break_a_number(path: Path) -> int:
    """Replaces the first numeric parameter of a rule file by a word; returns its line."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for n, line in enumerate(lines):
        match = re.match(r"^(\s+[a-z_]+:\s*)\d+(\.\d+)?(\s*(#.*)?)$", line)
        if match:
            lines[n] = f"{match.group(1)}not-a-number{match.group(3)}"
            path.write_text("".join(lines), encoding="utf-8")
            return n + 1
    raise AssertionError(f"no numeric parameter in {path}")


def test_a_broken_rule_file_stops_start_up_with_file_and_line(events, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    retention = rules / "retention.yaml"
    line = _break_a_number(retention)
    done = auditor("replay", str(events), "--rules", str(rules), "-q",
                   "--alerts-out", str(tmp_path / "alerts.jsonl"))
    assert done.returncode != 0
    stderr = done.stderr.decode()
    assert f"{retention}:{line}:" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "alerts.jsonl").exists()  # refused before reading any input
    check = auditor("rules", "check", str(rules))
    assert check.returncode != 0 and f"{retention}:{line}:" in check.stderr.decode()


def test_a_missing_input_file_is_an_error_not_a_crash(tmp_path):
    done = auditor("replay", str(tmp_path / "nope.jsonl"), "-q")
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr and b"nope.jsonl" in done.stderr
