"""`auditor backtest`: a candidate rule set compared with the baseline on the same history."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.backtest.compare import compare, replay_alerts
from auditor.rules.loader import default_rules_dir, load_rule_pack
from auditor.simulate.generator import Simulator

AUDITOR = str(Path(sys.executable).with_name("auditor"))


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("history") / "events.jsonl"
    path.write_text("".join(line + "\n" for line in Simulator(accounts=1200, seed=3).lines()))
    return path


@pytest.fixture
def candidate(tmp_path) -> Path:
    target = tmp_path / "candidate"
    shutil.copytree(default_rules_dir(), target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_identical_rules_make_no_difference(history):
    pack = load_rule_pack(default_rules_dir())
    alerts = replay_alerts(pack, [str(history)])
    changes = compare(alerts, replay_alerts(pack, [str(history)]))
    assert not any(c.differs for c in changes)
    assert sum(c.kept for c in changes) == len(alerts) > 0


def test_a_loosened_threshold_adds_alerts_to_that_rule_only(history, candidate, tmp_path):
    _edit(candidate / "retention.yaml", "discount_pct: {gte: 0.25}", "discount_pct: {gte: 0.15}")
    report = tmp_path / "report.json"
    done = subprocess.run([AUDITOR, "backtest", "--baseline", str(default_rules_dir()),
                           "--candidate", str(candidate), str(history), "--json", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rules = {r["rule"]: r for r in json.loads(report.read_text())["rules"]}
    loosened = rules["discount-then-churn"]
    assert loosened["added"] > 0 and loosened["removed"] == 0
    assert loosened["at_risk_change"] > 0
    assert all(0.15 <= a["evidence"]["discount_pct"] < 0.25
               for a in loosened["examples"]["added"])
    others = [r for name, r in rules.items() if name != "discount-then-churn"]
    assert all(r["added"] == r["removed"] == r["changed"] == 0 for r in others)
    assert f"discount-then-churn: +{loosened['added']:,} added" in done.stdout


def test_a_disabled_rule_loses_all_its_alerts(history, candidate):
    _edit(candidate / "payout.yaml", "  - id: tcv-paid-upfront\n",
          "  - id: tcv-paid-upfront\n    enabled: false\n")
    before = replay_alerts(load_rule_pack(default_rules_dir()), [str(history)])
    after = replay_alerts(load_rule_pack(candidate), [str(history)])
    [tcv] = [c for c in compare(before, after) if c.rule == "tcv-paid-upfront"]
    assert len(tcv.removed) == sum(1 for a in before.values() if a.rule == "tcv-paid-upfront")
    assert tcv.added == [] and tcv.at_risk_candidate == 0


def test_a_changed_severity_is_a_change_not_an_add_and_a_remove(history, candidate):
    _edit(candidate / "retention.yaml", "- {max_days: 90, severity: critical}",
          "- {max_days: 60, severity: critical}")
    before = replay_alerts(load_rule_pack(default_rules_dir()), [str(history)])
    after = replay_alerts(load_rule_pack(candidate), [str(history)])
    [early] = [c for c in compare(before, after) if c.rule == "early-churn-unrecovered"]
    assert early.changed and not early.added and not early.removed
    assert all((b.severity, a.severity) == ("critical", "warning") for b, a in early.changed)
