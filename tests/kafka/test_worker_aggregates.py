"""Two workers in one group give, for every period settled by the end of the stream, exactly
the aggregate alerts of `auditor replay`: a period is evaluated only once the watermark -- the
smallest over the source partitions that feed it -- has passed its end + the rule's settle
time + the allowed lateness, so no partition still filling it is left out."""

import json
from datetime import datetime

from kafka_helpers import (
    DAY_SECONDS,
    caught_up,
    event_time,
    facts_topic,
    murmur2_partition,
    offsets_report,
    replay_alerts_args,
    simulate,
    topic_partitions,
    wait_until,
)

from auditor.rules.loader import default_rules_dir, load_rule_pack

LATENESS_DAYS = 7
# Facts carry the watermark of the event that sent them, so the last facts a partition sends
# may carry a little less than its newest event time: only periods settled this long before
# the final watermark are compared.
MARGIN_DAYS = 14


def _aggregates(alerts):
    """Aggregate alerts by id; a re-delivered alert must be the same alert."""
    by_id = {}
    for alert in alerts:
        if alert["kind"] != "aggregate":
            continue
        seen = by_id.setdefault(alert["alert_id"], alert)
        assert seen == alert, f"two different alerts share the id {alert['alert_id']}"
    return by_id


def _final_watermark(events, partitions):
    """The smallest, over every partition of both input topics, of its newest event time:
    the watermark of the slowest source once the whole stream is read."""
    newest = {}
    for event in events:
        tp = (event["event_type"], murmur2_partition(event["account_id"].encode(), partitions))
        newest[tp] = max(newest.get(tp, 0.0), event_time(event))
    assert len(newest) == 2 * partitions, "every partition of both topics must have events"
    return min(newest.values())


def _settled(alert, watermark, rules):
    """Whether `alert`'s period (its event_time is the period's exclusive end) is settled: past
    the rule's settle time (days, or months for commission retention) + lateness."""
    end = datetime.fromisoformat(alert["event_time"].replace("Z", "+00:00")).timestamp()
    settles = rules[alert["rule"]].settles_after(end)
    return settles + (LATENESS_DAYS + MARGIN_DAYS) * DAY_SECONDS <= watermark


def test_two_workers_settled_aggregates_equal_replay(stack, tmp_path):
    events_file = simulate(tmp_path / "events.jsonl", accounts=300, months=18, seed=3)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    rules = {r.meta.id: r for r in load_rule_pack(default_rules_dir()).aggregate_rules}
    lateness = ["--allowed-lateness-days", str(LATENESS_DAYS)]
    replayed = _aggregates(replay_alerts_args(events_file, tmp_path / "replay.jsonl", *lateness))

    env = {"AUDITOR_ALLOWED_LATENESS_DAYS": str(LATENESS_DAYS)}
    first, second = stack.worker("w1", **env).start(), stack.worker("w2", **env).start()
    first.wait_ready()
    second.wait_ready()
    partitions = topic_partitions(stack, "deals.closed")

    def split():
        a, b = first.assigned_inputs(), second.assigned_inputs()
        return (a, b) if a and b and not a & b and len(a | b) == 2 * partitions else None

    wait_until(split, what="the input partitions split between two workers")

    watermark = _final_watermark(events, partitions)
    expected = {a: alert for a, alert in replayed.items()
                if _settled(alert, watermark, rules)}
    periods = {(alert["rule"], alert["period"]) for alert in expected.values()}
    assert len(expected) >= 10 and len({p for _, p in periods}) >= 3, periods

    sent = stack.produce(events_file)
    assert sent == len(events)
    wait_until(lambda: first.events_total() + second.events_total() == sent,
               what=f"{sent} events counted by the two workers")
    topics = ["deals.closed", "accounts.churned", facts_topic(stack)]
    wait_until(lambda: caught_up(stack, topics), timeout=120,
               what=f"the inputs and the aggregate facts committed; "
                    f"{offsets_report(stack, topics)}")
    for worker in (first, second):
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()

    got = {a: alert for a, alert in _aggregates(stack.alerts()).items()
           if _settled(alert, watermark, rules)}
    problems = []
    for alert_id in sorted(expected.keys() - got.keys()):
        alert = expected[alert_id]
        problems.append(f"missing: {alert['rule']} {alert['group']} {alert['period']} "
                        f"value {alert['value']} evidence {alert['evidence']}")
    for alert_id in sorted(got.keys() - expected.keys()):
        alert = got[alert_id]
        problems.append(f"unexpected: {alert['rule']} {alert['group']} {alert['period']} "
                        f"value {alert['value']} evidence {alert['evidence']}")
    for alert_id in sorted(expected.keys() & got.keys()):
        want, have = expected[alert_id], got[alert_id]
        if have != want:
            fields = sorted(k for k in {*want, *have} if want.get(k) != have.get(k))
            problems.append(f"differs from replay in {fields}: {want['rule']} {want['group']} "
                            f"{want['period']}: value {have['value']} (replay {want['value']}), "
                            f"evidence {have['evidence']} (replay {want['evidence']})")
    assert not problems, (f"{len(problems)} differences from replay's {len(expected)} "
                          f"aggregate alerts of settled periods:\n" + "\n".join(problems))
