"""Runs rule tests: fixture events through the real decoder and engine, alerts compared."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from auditor.engine.alerts import Alert
from auditor.engine.engine import AuditEngine
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import format_time
from auditor.rules.compiled import RulePack
from auditor.rules.loader import validate_document
from auditor.rules.yaml_source import load_yaml
from auditor.ruletest.fixtures import (
    CHURN_DEFAULTS,
    COMMISSION_DEFAULTS,
    DEAL_DEFAULTS,
    EventFixture,
    ExpectedAlert,
    RuleTest,
    RuleTestFile,
    offset_days,
)

TESTS_DIR = "tests"


@dataclass
class TestResult:
    file: str
    line: int
    name: str
    missing: list[ExpectedAlert] = field(default_factory=list)
    unexpected: list[Alert] = field(default_factory=list)
    error: str | None = None  # a fixture event that is not a valid event
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and not self.missing and not self.unexpected

    def diff(self) -> str:
        """What went wrong, readably."""
        if self.error is not None:
            return f"  error: {self.error}"
        lines = []
        for expected in self.missing:
            given = expected.model_dump(exclude_none=True)
            lines.append("  - missing:    " + ", ".join(f"{k}={v}" for k, v in given.items()))
        for alert in self.unexpected:
            lines.append(f"  + unexpected: rule={alert.rule}, severity={alert.severity}, "
                         f"{_who(alert)}, at_risk={alert.at_risk}")
            lines.append(f"                {alert.summary}")
        return "\n".join(lines)


def _who(alert: Alert) -> str:
    if alert.deal_id is not None:
        return f"deal_id={alert.deal_id}, account_id={alert.account_id}"
    return f"{alert.group_by}={alert.group}, period={alert.period}, value={alert.value}"


def load_tests(rules_dir: Path) -> list[tuple[str, int, RuleTest]]:
    """(file, line, test) for every test in rules_dir/tests/*.yaml; RuleError if invalid."""
    found = []
    for path in sorted((rules_dir / TESTS_DIR).glob("*.y*ml")):
        doc = load_yaml(path)
        test_file = validate_document(doc, RuleTestFile)
        for index, test in enumerate(test_file.tests):
            found.append((str(path), doc.line_of(("tests", index)), test))
    return found


def run_test(pack: RulePack, test: RuleTest, file: str = "", line: int = 0) -> TestResult:
    result = TestResult(file, line, test.name)
    decoder = EventDecoder(pack.currency)
    engine = AuditEngine(pack, lateness_days=test.allowed_lateness_days)
    alerts: list[Alert] = []
    for n, fixture in enumerate(test.events, 1):
        raw = json.dumps(_event(test, fixture, n)).encode()
        event = decoder.decode(raw, f"event {n}")
        if isinstance(event, DeadLetter):
            result.error = f"event {n} is not a valid event ({event.reason}): {event.detail}"
            return result
        alerts.extend(engine.process(event))
    alerts.extend(engine.flush())
    scope = test.compared_rules()
    actual = [a for a in alerts if scope is None or a.rule in scope]
    for expected in test.expect:
        match = next((a for a in actual if _matches(expected, a)), None)
        if match is None:
            result.missing.append(expected)
        else:
            actual.remove(match)
    result.unexpected = actual
    return result


def _event(test: RuleTest, fixture: EventFixture, n: int) -> dict[str, Any]:
    fields = dict(fixture.deal if fixture.deal is not None else fixture.churn or {})
    at = test.base + timedelta(days=offset_days(fields.pop("at", 0)))
    if fixture.deal is not None:
        event = {**DEAL_DEFAULTS, "event_id": f"test-event-{n}", "deal_id": f"deal-{n}",
                 "closed_at": format_time(at.timestamp())}
        commission = {**COMMISSION_DEFAULTS, **fields.pop("commission", {})}
        event.update(fields)
        event.setdefault("tcv", round(event["acv"] * event["term_months"] / 12, 2))
        event["commission"] = commission
    else:
        event = {**CHURN_DEFAULTS, "event_id": f"test-event-{n}",
                 "churned_at": format_time(at.timestamp())}
        event.update(fields)
    return event


def _matches(expected: ExpectedAlert, alert: Alert) -> bool:
    for name, want in expected.model_dump(exclude_none=True).items():
        if name == "at_risk":
            if round(alert.at_risk, 2) != round(want, 2):
                return False
        elif name == "value":
            if alert.value is None or abs(alert.value - want) > 1e-6:
                return False
        elif name == "summary_contains":
            if want not in alert.summary:
                return False
        elif getattr(alert, name) != want:
            return False
    return True


def run_all(pack: RulePack, rules_dir: Path) -> list[TestResult]:
    """Every test of rules_dir/tests; raises RuleError on an invalid test file."""
    results = []
    for file, line, test in load_tests(rules_dir):
        started = time.perf_counter()
        result = run_test(pack, test, file, line)
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results

