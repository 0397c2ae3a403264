"""`auditor produce` + `auditor worker` give exactly the per-deal alerts of `auditor replay`."""

from kafka_helpers import per_deal, replay_alerts, simulate, wait_until


def test_worker_alerts_equal_replay_alerts(stack, tmp_path):
    events = simulate(tmp_path / "events.jsonl", accounts=1500)
    expected = per_deal(replay_alerts(events, tmp_path / "replay-alerts.jsonl"))
    assert len(expected) > 300

    worker = stack.worker().start()
    worker.wait_ready()
    sent = stack.produce(events)
    wait_until(lambda: worker.events_total() == sent, what=f"{sent} events processed")
    got = wait_until(lambda: (a := per_deal(stack.alerts())).keys() >= expected.keys() and a,
                     what="every replay alert on the alerts topic")
    assert got.keys() == expected.keys()
    for alert_id, alert in expected.items():
        assert got[alert_id] == alert  # the same alert, field for field

    outcomes: dict[str, float] = {}
    for (name, labels), value in worker.metrics().items():
        if name == "auditor_events_total":
            outcome = dict(labels)["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + value
    assert outcomes.get("invalid", 0) == 0 and outcomes.get("late", 0) == 0
    assert outcomes["processed"] + outcomes.get("duplicate", 0) == sent
