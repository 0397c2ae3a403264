"""A serving replay follows its rules directory: `auditor replay - --metrics-port` on a live pipe
applies a good change from the next event, refuses a bad one (metrics say so) and keeps going."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from auditor.rules.loader import default_rules_dir

AUDITOR = str(Path(sys.executable).with_name("auditor"))
DEADLINE = 60.0


def _tcv_deal(n: int) -> bytes:
    event = {
        "event_type": "deal_closed", "event_id": f"evt-{n}", "schema_version": 1,
        "deal_id": f"deal-{n}", "account_id": f"acct-{n}", "rep_id": "rep-1", "team": "team-a",
        "plan_id": "plan-a", "deal_type": "new_logo", "closed_at": f"2026-01-{n:02d}T00:00:00Z",
        "term_months": 36, "acv": 10000.0, "tcv": 30000.0, "discount_pct": 0.0,
        "currency": "USD",
        "commission": {"amount": 3000.0, "paid_upfront": 3000.0, "basis": "tcv", "rate": 0.1,
                       "clawback_days": 0},
    }
    return json.dumps(event).encode() + b"\n"


class _Lines:
    """Collects a stream's lines on a thread, so the test can wait for one."""

    def __init__(self, stream):
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in iter(stream.readline, b""):
            self.lines.append(line.decode())

    def wait_for(self, pattern: str, occurrence: int = 1) -> re.Match:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            found = [m for line in list(self.lines) if (m := re.search(pattern, line))]
            if len(found) >= occurrence:
                return found[occurrence - 1]
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in stderr:\n{''.join(self.lines)}")


def _wait_alerts(path: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if path.exists():
            alerts = [json.loads(line) for line in path.read_text().splitlines()]
            if len(alerts) >= count:
                return alerts
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} alerts in {path}")


@pytest.fixture
def rules_copy(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def test_serving_replay_reloads_good_rules_and_refuses_bad_ones(tmp_path, rules_copy):
    alerts_path = tmp_path / "alerts.jsonl"
    proc = subprocess.Popen(
        [AUDITOR, "replay", "-", "--rules", str(rules_copy), "--alerts-out", str(alerts_path),
         "--metrics-port", "0", "--reload-seconds", "0.2", "-q"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stderr = _Lines(proc.stderr)
    try:
        proc.stdin.write(_tcv_deal(1))
        proc.stdin.flush()
        [first] = _wait_alerts(alerts_path, 1)
        assert (first["rule"], first["severity"]) == ("tcv-paid-upfront", "warning")

        payout = rules_copy / "payout.yaml"
        good = payout.read_text()
        tcv_rule = good.index("id: tcv-paid-upfront")
        at = good.index("severity: warning", tcv_rule)
        payout.write_text(good[:at] + "severity: critical" + good[at + len("severity: warning"):])
        stderr.wait_for(r"rules reloaded: 10 rules")
        proc.stdin.write(_tcv_deal(2))
        proc.stdin.flush()
        second = _wait_alerts(alerts_path, 2)[1]
        assert (second["deal_id"], second["severity"]) == ("deal-2", "critical")

        payout.write_text(payout.read_text().replace("min_upfront_share: 0.9",
                                                     "min_upfront_share: most"))
        refused = stderr.wait_for(r"rules reload refused: (\S+):(\d+):")
        assert refused.group(1).endswith("payout.yaml") and int(refused.group(2)) > 0
        proc.stdin.write(_tcv_deal(3))
        proc.stdin.close()
        third = _wait_alerts(alerts_path, 3)[2]
        assert (third["deal_id"], third["severity"]) == ("deal-3", "critical")  # still in force

        url = stderr.wait_for(r"serving metrics on (http://\S+/metrics)").group(1)
        metrics = urllib.request.urlopen(url, timeout=10).read().decode()
        assert re.search(r"^auditor_rules_reload_success 0\.0$", metrics, re.M)
        assert re.search(r"^auditor_rules_loaded 10\.0$", metrics, re.M)

        payout.write_text(good)  # fixed: the serving replay takes it and says so
        stderr.wait_for(r"rules reloaded: 10 rules", occurrence=2)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
