"""Runs rule tests: fixture events through the shells' intake (the real decoder and engine, as
replay and the worker run them), alerts compared."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from auditor.engine.alerts import Alert
from auditor.engine.engine import AuditEngine
from auditor.errors import RuleError, RuleErrors
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import format_time
from auditor.intake import Intake
from auditor.metrics.counters import RunCounters
from auditor.rules.hints import did_you_mean
from auditor.rules.pack import RulePack
from auditor.rules.validation import model_keys, validate
from auditor.rules.yaml_source import YamlDocument, load_yaml
from auditor.ruletest.fixtures import (
    CHURN_DEFAULTS,
    COMMISSION_DEFAULTS,
    DEAL_DEFAULTS,
    EventFixture,
    ExpectedAlert,
    RuleTest,
    RuleTestFile,
    offset_days,
    unknown_event_fields,
)

TESTS_DIR = "tests"


@dataclass
class TestResult:
    file: str
    line: int
    name: str
    missing: list[ExpectedAlert] = field(default_factory=list)
    unexpected: list[Alert] = field(default_factory=list)
    # (rule, exception, findings expected, findings excepted) where the two differ
    excepted: list[tuple[str, str, int, int]] = field(default_factory=list)
    error: str | None = None  # a fixture event that is not a valid event
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (self.error is None and not self.missing and not self.unexpected
                and not self.excepted)

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
        for rule, exception, want, got in self.excepted:
            lines.append(f"  ~ excepted:   rule={rule}, exception={exception}: {want} "
                         f"finding(s) expected, {got} excepted")
        return "\n".join(lines)


def _who(alert: Alert) -> str:
    if alert.deal_id is not None:
        return f"deal_id={alert.deal_id}, account_id={alert.account_id}"
    return f"{alert.group_by}={alert.group}, period={alert.period}, value={alert.value}"


_TEST: TypeAdapter[RuleTest] = TypeAdapter(RuleTest)
_TEST_KEYS = model_keys(RuleTestFile)


def load_tests(rules_dir: Path, pack: RulePack | None = None) -> list[tuple[str, int, RuleTest]]:
    """(file, line, test) for every test in rules_dir/tests/*.yaml. RuleErrors with every
    problem of every file if any is invalid; with `pack`, a rule name it lacks is one too."""
    found: list[tuple[str, int, RuleTest]] = []
    errors: list[RuleError] = []
    known = None if pack is None else {*pack.by_id(), *pack.disabled_ids}
    for path in sorted((rules_dir / TESTS_DIR).glob("*.y*ml")):
        try:
            doc = load_yaml(path)
        except RuleError as exc:
            errors.append(exc)
            continue
        for index, test in _tests_of(doc, known, errors):
            found.append((str(path), doc.line_of(("tests", index)), test))
    if errors:
        errors.sort(key=lambda e: (e.source or "", e.line or 0))
        raise RuleErrors(errors)
    return found


def _tests_of(doc: YamlDocument, known: set[str] | None, errors: list[RuleError]
              ) -> list[tuple[int, RuleTest]]:
    """Each test of a file checked on its own, so one run reports every mistake in it."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list) or not data["tests"]:
        errors.append(doc.error("expected `tests:` with a list of tests at the top of the file"))
        return []
    errors.extend(doc.error(f"{key}: unknown key{did_you_mean(str(key), _TEST_KEYS)}", (key,))
                  for key in data if key != "tests")
    tests = []
    for index, raw in enumerate(data["tests"]):
        at = ("tests", index)
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"test {name!r}" if isinstance(name, str) else f"test #{index + 1}"
        before = len(errors)
        test, problems = validate(_TEST, raw, _TEST_KEYS)
        errors.extend(doc.error(f"{label}: {p.message}", (*at, *p.loc)) for p in problems)
        events = raw.get("events") if isinstance(raw, dict) else None
        for n, event in enumerate(events if isinstance(events, list) else []):
            for kind, fields in (event.items() if isinstance(event, dict) else ()):
                if kind in ("deal", "churn") and isinstance(fields, dict):
                    errors.extend(
                        doc.error(f"{label}: events.{n}.{kind}.{'.'.join(loc)}: {message}",
                                  (*at, "events", n, kind, *loc))
                        for loc, message in unknown_event_fields(kind, fields))
        if known is not None and isinstance(raw, dict):
            _check_rule_names(doc, at, label, raw, known, errors)
        if test is not None and len(errors) == before:
            tests.append((index, test))
    return tests


def _check_rule_names(doc: YamlDocument, at: tuple[str | int, ...], label: str,
                      raw: dict[str, Any], known: set[str], errors: list[RuleError]) -> None:
    """A misspelt rule name would make a test compare nothing and pass. Read from the raw test,
    so it is reported even when the test has other errors."""
    rules = raw.get("rules")
    named: list[tuple[tuple[str | int, ...], Any]] = [
        (("rules", i), rule) for i, rule in enumerate(rules if isinstance(rules, list) else ())]
    for key in ("expect", "excepted"):
        given = raw.get(key)
        named += [((key, i, "rule"), e.get("rule"))
                  for i, e in enumerate(given if isinstance(given, list) else ())
                  if isinstance(e, dict)]
    for loc, rule in named:
        if isinstance(rule, str) and rule not in known:
            path = ".".join(str(p) for p in loc)
            errors.append(doc.error(f"{label}: {path}: unknown rule {rule!r}"
                                    f"{did_you_mean(rule, known)}", (*at, *loc)))


def untested_rules(pack: RulePack, tests: list[tuple[str, int, RuleTest]]) -> list[str]:
    """Enabled rules no test names (in `rules:` or `expect`), in the order of the pack."""
    named: set[str] = set()
    for _, _, test in tests:
        named |= test.compared_rules() or set()
    return [rule_id for rule_id in pack.by_id() if rule_id not in named]


def run_test(pack: RulePack, test: RuleTest, file: str = "", line: int = 0) -> TestResult:
    result = TestResult(file, line, test.name)
    counters = RunCounters()
    engine = AuditEngine(pack, counters, lateness_days=test.allowed_lateness_days)
    intake = Intake(EventDecoder(pack.currency), counters)
    alerts: list[Alert] = []
    for n, fixture in enumerate(test.events, 1):
        raw = json.dumps(_event(test, fixture, n)).encode()
        taken = intake.take(raw, f"event {n}", engine.process)
        if isinstance(taken, DeadLetter):
            result.error = _fixture_error(n, taken)
            return result
        alerts.extend(taken)
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
    want = {(e.rule, e.exception): e.findings for e in test.excepted}
    got = {key: n for key, n in counters.excepted_findings.items()
           if scope is None or key[0] in scope}
    result.excepted = [(*key, want.get(key, 0), got.get(key, 0))
                       for key in sorted(want.keys() | got.keys())
                       if want.get(key, 0) != got.get(key, 0)]
    return result


def _fixture_error(n: int, letter: DeadLetter) -> str:
    if letter.reason == "internal_error":  # the engine failed on a valid event: a bug
        return f"event {n}: the engine failed on it: {letter.detail}"
    return f"event {n} is not a valid event ({letter.reason}): {letter.detail}"


def _event(test: RuleTest, fixture: EventFixture, n: int) -> dict[str, Any]:
    fields = dict(fixture.deal if fixture.deal is not None else fixture.churn or {})
    for name, value in fields.items():  # a time written as YAML reads as a datetime
        if isinstance(value, datetime):
            fields[name] = format_time(value.timestamp())
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


def run_all(pack: RulePack, rules_dir: Path,
            tests: list[tuple[str, int, RuleTest]] | None = None) -> list[TestResult]:
    """Every test of rules_dir/tests (or `tests`); RuleErrors on an invalid test file."""
    results = []
    for file, line, test in load_tests(rules_dir, pack) if tests is None else tests:
        started = time.perf_counter()
        result = run_test(pack, test, file, line)
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results

