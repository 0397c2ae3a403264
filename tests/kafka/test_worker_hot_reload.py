"""A running worker follows its rules directory: a good change applies without a restart, a bad
one is refused (the rules in force stay, the metric says so), and table state is kept."""

import json
import shutil

from kafka_helpers import deal_event, wait_until

from auditor.rules.loader import default_rules_dir


def _churn(n: int, account: str, at: str) -> dict:
    return {"event_type": "account_churned", "event_id": f"evt-{n}", "schema_version": 1,
            "account_id": account, "churned_at": at, "churn_type": "full",
            "arr_lost": 10000.0, "currency": "USD"}


def _metric(worker, name: str) -> float | None:
    values = [v for (n, _), v in worker.metrics().items() if n == name]
    return values[0] if values else None


def test_rules_reload_in_a_running_worker_keeps_state(stack, tmp_path):
    from kafka import KafkaProducer

    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    worker = stack.worker(AUDITOR_RULES=str(rules), AUDITOR_RULES_RELOAD_SECONDS="0.5").start()
    worker.wait_ready()
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap)

    def send(event: dict) -> None:
        topic = ("deals.closed" if event["event_type"] == "deal_closed" else "accounts.churned")
        producer.send(stack.topics[topic], key=event["account_id"].encode(),
                      value=json.dumps(event).encode()).get(timeout=30)

    def alerts_of(rule: str) -> list[dict]:
        return [a for a in stack.alerts() if a["rule"] == rule]

    # Under the shipped rules a churn 60 days after a new logo is critical.
    send(deal_event(1, "A1", acv=10000.0, tcv=10000.0, discount_pct=0.0))
    send(_churn(2, "A1", "2026-03-06T00:00:00Z"))
    [first] = wait_until(lambda: alerts_of("early-churn-unrecovered"), what="the first alert")
    assert first["severity"] == "critical"

    # A deal now, its churn after the change: the deal must still be in the table state.
    send(deal_event(3, "A2", acv=10000.0, tcv=10000.0, discount_pct=0.0))
    wait_until(lambda: worker.events_total() == 3, what="the second deal processed")
    retention = rules / "retention.yaml"
    good = retention.read_text()
    retention.write_text(good.replace("- {max_days: 90, severity: critical}",
                                      "- {max_days: 30, severity: critical}"))
    wait_until(lambda: "rules reloaded" in worker.log.read_text(), what="the reload")
    assert _metric(worker, "auditor_rules_reload_success") == 1
    send(_churn(4, "A2", "2026-03-06T00:00:00Z"))
    second = wait_until(lambda: [a for a in alerts_of("early-churn-unrecovered")
                                 if a["deal_id"] == "deal-3"], what="the alert under new rules")
    assert second[0]["severity"] == "warning"  # 60 days: critical only up to 30 now

    # A bad change is refused: the worker keeps the rules in force and says so.
    retention.write_text(good.replace("within_days: 180", "within_days: half a year"))
    wait_until(lambda: _metric(worker, "auditor_rules_reload_success") == 0,
               what="the refused reload in the metrics")
    assert "rules reload refused" in worker.log.read_text()
    send(deal_event(5, "A3", acv=10000.0, tcv=10000.0, discount_pct=0.0))
    send(_churn(6, "A3", "2026-03-06T00:00:00Z"))
    third = wait_until(lambda: [a for a in alerts_of("early-churn-unrecovered")
                                if a["deal_id"] == "deal-5"], what="an alert after the refusal")
    assert third[0]["severity"] == "warning"  # still the reloaded rules, not the broken ones
    assert worker.proc.poll() is None
    producer.close()
