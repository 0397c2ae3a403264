"""Whatever lands on the input topics, the worker keeps going and loses nothing: every bad
message ends in the dead-letter topic with its reason, and events in = the sum of outcomes."""

import json
import subprocess

from kafka_helpers import AUDITOR, deal_event, wait_until

from tests.support import tansu


def _deal(**overrides):
    return deal_event("good-1", **{"deal_id": "deal-1", **overrides})


def _raw(event) -> bytes:
    return json.dumps(event).encode()


BAD = [  # (key, value, reason)
    (b"acct-1", b"{not json", "bad_json"),
    (b"acct-1", b"[1, 2, 3]", "not_object"),
    (b"acct-1", _raw(_deal(event_type="deal_reopened", event_id="e2")), "unknown_event_type"),
    (b"acct-1", _raw({k: v for k, v in _deal(event_id="e3").items() if k != "rep_id"}), "schema"),
    (b"acct-1", _raw(_deal(event_id="e4", acv="1000")), "schema"),
    (b"acct-1", _raw(_deal(event_id="e5", acv=-5.0)), "schema"),
    (b"acct-1", _raw(_deal(event_id="e6", closed_at="2026-01-05T00:00:00")), "schema"),
    (b"acct-1", _raw(_deal(event_id="e7", currency="XYZ")), "unsupported_currency"),
    (b"acct-1", b'{"event_type": "deal_closed", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}',
     "too_large"),
    (b"acct-1", b"", "empty"),
    (None, _raw(_deal(event_id="e8", deal_id="deal-8")), "null_key"),
    (b"acct-2", _raw(_deal(event_id="e9", deal_id="deal-9")), "key_mismatch"),
]


def test_every_bad_message_is_dead_lettered_with_its_reason(stack):
    from kafka import KafkaProducer

    worker = stack.worker().start()
    worker.wait_ready()
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, max_request_size=4 * 1024 * 1024)
    deals = stack.topics["deals.closed"]
    good = [_raw(_deal()), _raw(_deal())]  # the second is a duplicate
    sent = 0
    for key, value in [(b"acct-1", good[0]), *[(k, v) for k, v, _ in BAD], (b"acct-1", good[1])]:
        try:
            producer.send(deals, key=key, value=value).get(timeout=30)
            sent += 1
        except Exception as exc:  # a broker may refuse the 2 MiB message outright
            assert len(value) > 1024 * 1024, exc
    producer.close()

    expected = sorted(r for k, v, r in BAD if len(v) <= 1024 * 1024 or sent == len(BAD) + 2)
    def dead_letters():
        found = [json.loads(v) for _, v in stack.read("audit.deadletter")]
        return found if len(found) >= len(expected) else None

    letters = wait_until(dead_letters, what="the dead letters")
    assert sorted(d["reason"] for d in letters) == expected
    for letter in letters:
        assert letter["source"].startswith(deals + "/")  # topic/partition/offset
        assert letter["detail"]
    by_reason = {d["reason"]: d for d in letters}
    assert by_reason["bad_json"]["original"] == "{not json"
    assert by_reason["empty"]["original"] == ""

    def outcomes():
        counts: dict[str, float] = {}
        for (name, labels), value in worker.metrics().items():
            if name == "auditor_events_total":
                counts[dict(labels)["outcome"]] = counts.get(dict(labels)["outcome"], 0) + value
        return counts if sum(counts.values()) == sent else None

    counts = wait_until(outcomes, what=f"{sent} events counted")
    # Every outcome is exported from the start, at 0 until counted.
    assert counts == {"processed": 1, "duplicate": 1, "invalid": len(expected), "late": 0}
    reasons = {dict(labels)["reason"]: value for (name, labels), value in worker.metrics().items()
               if name == "auditor_deadletters_total"}
    assert sum(reasons.values()) == len(expected)


def test_worker_waits_for_a_broker_that_is_not_there_yet(tmp_path):
    port = tansu.free_port()
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [AUDITOR, "worker", "--broker", f"127.0.0.1:{port}", "--web-port",
             str(tansu.free_port()), "--web-host", "127.0.0.1", "--session-timeout", "4",
             "--data-dir", str(tmp_path / "data")],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    broker = None
    try:
        wait_until(lambda: "retrying in" in log.read_text(), timeout=60,
                   what="the worker saying it retries")
        assert proc.poll() is None
        broker = tansu.start_tansu(port, tmp_path / "tansu.log")
        wait_until(lambda: "created topics" in log.read_text() or "Worker ready" in
                   log.read_text(), timeout=120, what="the worker starting once the broker is up")
    finally:
        proc.kill()
        proc.wait(10)
        if broker is not None:
            tansu.stop(broker)
