"""A worker's commission flagged by money class, `auditor_commission_flagged_total`, counts each
(account, deal) once per class whichever findings flag it, aggregate findings included: their
money per deal goes over the claims topic to the deal's account, whose ledger keeps the largest
amount per class. Recomputed from the worker's own alerts topic, the totals agree to the cent."""

import json

from kafka_helpers import (
    caught_up,
    claims_topic,
    facts_topic,
    flagged_from_alerts,
    flagged_metric,
    offsets_report,
    simulate,
    wait_until,
)

LATENESS_DAYS = 7  # so that quarters settle well before the end of the stream


def test_flagged_totals_count_aggregate_money_once_per_deal_and_class(stack, tmp_path):
    events_file = simulate(tmp_path / "events.jsonl", accounts=2000, months=24, seed=7)
    events = events_file.read_text().splitlines()
    worker = stack.worker("w1", AUDITOR_ALLOWED_LATENESS_DAYS=str(LATENESS_DAYS)).start()
    worker.wait_ready()

    sent = stack.produce(events_file)
    assert sent == len(events)
    wait_until(lambda: worker.events_total() == sent, what=f"{sent} events counted")
    topics = ["deals.closed", "accounts.churned", facts_topic(stack), claims_topic(stack)]
    wait_until(lambda: caught_up(stack, topics), timeout=120,
               what=f"the inputs, facts and claims committed; {offsets_report(stack, topics)}")
    assert worker.proc is not None and worker.proc.poll() is None, worker.tail()

    alerts = stack.alerts()
    by_id = {a["alert_id"]: a for a in alerts}  # de-duplicated, as consumers do
    claimed = [d for a in by_id.values() if a["kind"] == "aggregate"
               for d in a["evidence"].get("money_by_deal") or ()]
    assert {"recoverable", "unrecovered"} <= {d["class"] for d in claimed}, (
        "the stream must settle aggregate findings with money of both classes")
    # Claims messages, beside the LedgerBeats that say how far each aggregate stage is.
    claims = [c for _, value in stack.read(claims_topic(stack))
              if "claims" in (c := json.loads(value))]
    assert sorted((c["account_id"], m["deal_id"]) for c in claims for m in c["claims"]) == sorted(
        (d["account_id"], d["deal_id"]) for d in claimed)

    expected = flagged_from_alerts(list(by_id.values()))
    per_deal_only = flagged_from_alerts(list(by_id.values()), aggregates=False)
    assert expected != per_deal_only, "the aggregate findings must add money of their own"

    got: dict = {}

    def agree():
        got.clear()
        got.update(flagged_metric(worker))
        return got == expected

    try:
        wait_until(agree, timeout=30, what="the flagged totals to agree with the alerts")
    except AssertionError:
        diff = {k: (got.get(k), expected.get(k)) for k in sorted({*got, *expected})
                if got.get(k) != expected.get(k)}
        raise AssertionError(f"metric vs recomputed from audit.alerts: {diff}") from None
