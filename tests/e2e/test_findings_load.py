"""`auditor findings load` into a real, throwaway PostgreSQL: one row per alert_id, every column
equal to its alert's field, loading again changes nothing, the schema migrates itself once.

The server is a cluster made with initdb in a temporary directory (tests/support/postgres.py),
or the server of AUDITOR_TEST_POSTGRES_DSN; each test gets a database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_helpers import AUDITOR, auditor

from auditor.sink import schema, store
from auditor.sink.rows import to_row
from tests.support import postgres

pytestmark = pytest.mark.skipif(
    postgres.available() is not None and not os.environ.get("CI"),
    reason=f"{postgres.available()}; `make test` installs it")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres.cluster() as dsn:
        yield dsn


@pytest.fixture
def db(server: str) -> Iterator[str]:
    with postgres.database(server) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A replay's alerts file and a plan audit's (plan findings: no event_time)."""
    tmp = tmp_path_factory.mktemp("findings-load")
    events, alerts, plans = tmp / "events.jsonl", tmp / "alerts.jsonl", tmp / "plans.jsonl"
    for args in (("simulate", "--accounts", "400", "--months", "15", "--seed", "5",
                  "--out", str(events)),
                 ("replay", str(events), "--alerts-out", str(alerts), "-q"),
                 ("plans", "audit", "--alerts-out", str(plans))):
        out = auditor(*args)
        assert out.returncode == 0, out.stderr.decode()
    return alerts, plans


def by_id(*paths: Path) -> dict[str, dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            alert = json.loads(line)
            alerts[alert["alert_id"]] = alert
    return alerts


def load(dsn: str, *files: Path | str) -> subprocess.CompletedProcess[bytes]:
    return auditor("findings", "load", *map(str, files), "--dsn", dsn)


def migrations(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version, applied_at, name FROM schema_migrations "
                            "ORDER BY version").fetchall()


def test_loading_a_replay_twice_gives_one_row_per_alert_equal_to_it(
        db: str, replayed: tuple[Path, Path]) -> None:
    alerts_file, plans_file = replayed
    alerts = by_id(alerts_file, plans_file)
    lines = len(alerts_file.read_text().splitlines()) + len(plans_file.read_text().splitlines())
    assert len(alerts) == lines > 100  # every alert_id once in a replay
    assert any(a["event_time"] is None for a in alerts.values())  # plan findings
    assert any(a["kind"] == "aggregate" for a in alerts.values())
    assert any((a["evidence"] or {}).get("money") for a in alerts.values())

    first = load(db, alerts_file, plans_file)
    assert first.returncode == 0, first.stderr.decode()
    err = first.stderr.decode()
    assert f"migrated to version {schema.LATEST}" in err
    assert f"({len(alerts) - len(by_id(plans_file)):,} new, 0 changed" in err
    rows = postgres.assert_findings_are(db, alerts)
    applied = migrations(db)
    assert [v for v, _, _ in applied] == [m.version for m in schema.MIGRATIONS]

    second = load(db, alerts_file, plans_file)
    assert second.returncode == 0, second.stderr.decode()
    err = second.stderr.decode()
    assert f"up to date (version {schema.LATEST})" in err
    assert "(0 new, 0 changed" in err
    again = postgres.assert_findings_are(db, alerts)
    # Nothing rewritten: not even the times.
    assert {k: (r["first_seen"], r["updated_at"], r["source"]) for k, r in rows.items()} == \
        {k: (r["first_seen"], r["updated_at"], r["source"]) for k, r in again.items()}
    assert migrations(db) == applied  # a second start applies nothing
    assert postgres.count(db, "findings_rejected") == 0


def test_a_changed_alert_replaces_its_row_and_keeps_first_seen(
        db: str, replayed: tuple[Path, Path], tmp_path: Path) -> None:
    alerts_file, _ = replayed
    assert load(db, alerts_file).returncode == 0
    alerts = by_id(alerts_file)
    changed_id = next(iter(alerts))
    changed = {**alerts[changed_id], "summary": "re-evaluated", "at_risk": 12.345}
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps(changed) + "\n")
    before = postgres.findings(db)[changed_id]
    out = load(db, newer)
    assert out.returncode == 0 and "(0 new, 1 changed" in out.stderr.decode()
    alerts[changed_id] = changed
    after = postgres.assert_findings_are(db, alerts)[changed_id]
    assert after["first_seen"] == before["first_seen"]
    assert after["updated_at"] > before["updated_at"]
    assert after["source"] == f"{newer}:1"


def test_lines_that_are_not_alerts_are_kept_whole_and_reported(
        db: str, replayed: tuple[Path, Path], tmp_path: Path) -> None:
    alerts_file, _ = replayed
    good = alerts_file.read_bytes().splitlines()[:3]
    one = json.loads(good[0])
    nul = json.dumps({**one, "alert_id": "nul", "team": "a\u0000b"}).encode()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([good[0], b"{not json", b'{"at_risk": NaN}', b"\xff\xfe",
                                  b"", good[1], nul, b'{"event_type": "deal_closed"}',
                                  good[2]]) + b"\n")
    for _ in range(2):
        out = load(db, mixed)
        assert out.returncode == 0, out.stderr.decode()
        err = out.stderr.decode()
        assert f"warning: {mixed}:2: not_json" in err
        assert f"warning: {mixed}:7: unstorable: team: a NUL character" in err
        assert "3 alerts" in err and "5 rejected" in err
    postgres.assert_findings_are(db, {a["alert_id"]: a for a in map(json.loads, good)})
    with psycopg.connect(db) as conn:
        rejected = {source: (reason, raw_text, bytes(raw)) for source, reason, raw_text, raw in
                    conn.execute("SELECT source, reason, raw_text, raw FROM findings_rejected")}
    assert {s.rsplit(":", 1)[1]: r[0] for s, r in rejected.items()} == {
        "2": "not_json", "3": "not_json", "4": "not_json", "7": "unstorable", "8": "not_alert"}
    assert rejected[f"{mixed}:7"][2] == nul  # the exact bytes
    assert rejected[f"{mixed}:4"][1:] == ("\ufffd\ufffd", b"\xff\xfe")


def test_two_loads_starting_together_migrate_once(db: str, replayed: tuple[Path, Path]) -> None:
    alerts_file, _ = replayed
    results: list[subprocess.CompletedProcess[bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(load(db, alerts_file)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert sum(b"migrated to version" in r.stderr for r in results) == 1
    assert [v for v, _, _ in migrations(db)] == [m.version for m in schema.MIGRATIONS]
    postgres.assert_findings_are(db, by_id(alerts_file))


def test_a_schema_newer_than_the_auditor_is_refused(db: str,
                                                    replayed: tuple[Path, Path]) -> None:
    alerts_file, _ = replayed
    assert load(db, alerts_file).returncode == 0
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, 'future')",
                     (schema.LATEST + 1,))
    out = load(db, alerts_file)
    assert out.returncode == 2
    assert f"version {schema.LATEST + 1}, newer than this auditor knows" in out.stderr.decode()


def test_a_row_postgresql_refuses_is_kept_and_the_batch_goes_on(db: str) -> None:
    alert = {"alert_id": "a1", "rule": "r", "kind": "deal", "severity": "warning",
             "event_time": "2026-01-05T00:00:00Z", "summary": "s", "at_risk": 1.5,
             "money_class": "exposure", "currency": "USD", "evidence": {"money": {}}}
    good = to_row(alert, "f:1")
    bad = to_row({**alert, "alert_id": "a2"}, "f:2")
    bad.event_time = "2026-13-45T00:00:00Z"  # past the checks, as a future field might be
    bad.raw = b'{"alert_id": "a2"}'
    with psycopg.connect(db, autocommit=True) as conn:
        schema.migrate(conn)
        store.prepare(conn)
        with conn.transaction():
            written = store.write(conn, [good, bad, to_row({**alert, "alert_id": "a3"}, "f:3")])
        assert (written.new, written.rejected) == (2, 1)
        assert conn.execute("SELECT alert_id FROM findings ORDER BY 1").fetchall() == [
            ("a1",), ("a3",)]
        assert conn.execute("SELECT source, reason, raw FROM findings_rejected").fetchall() == [
            ("f:2", "database_refused", b'{"alert_id": "a2"}')]


def test_without_a_database_it_says_how_to_give_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUDITOR_FINDINGS_DSN"}
    out = subprocess.run([AUDITOR, "findings", "load", "x.jsonl"],
                         capture_output=True, env=env)
    assert out.returncode == 2
    assert b"give --dsn or set AUDITOR_FINDINGS_DSN" in out.stderr


# What the dashboards' SQL is written against: names and types may not drift.
PROMISED_COLUMNS = [
    ("alert_id", "text"), ("rule", "text"), ("kind", "text"), ("severity", "text"),
    ("event_time", "timestamp with time zone"), ("summary", "text"),
    ("at_risk", "numeric(18,2)"), ("money_class", "text"), ("currency", "text"),
    ("deal_id", "text"), ("account_id", "text"), ("rep_id", "text"), ("team", "text"),
    ("plan_id", "text"), ("group_by", "text"), ("group", "text"), ("period", "text"),
    ("value", "double precision"), ("threshold", "double precision"), ("evidence", "jsonb"),
    ("labels", "jsonb"), ("runbook", "text"), ("quarter", "text"),
    ("unrecovered", "numeric(18,2)"), ("recoverable", "numeric(18,2)"),
    ("exposure", "numeric(18,2)"), ("overpaid", "numeric(18,2)"), ("source", "text"),
    ("first_seen", "timestamp with time zone"), ("updated_at", "timestamp with time zone"),
]
PROMISED_INDEXES = {"(quarter, team)", "(quarter, plan_id)", "(rule, quarter)",
                    "(at_risk DESC)", "(money_class)", "(alert_id)"}


def test_the_table_has_the_promised_columns_and_indexes(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        assert schema.migrate(conn) == [m.version for m in schema.MIGRATIONS]
        assert schema.migrate(conn) == []
        assert schema.current_version(conn) == schema.LATEST
        columns = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'findings'::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum").fetchall()
        indexes = {d.split(" USING btree ")[1] for (d,) in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'findings'")}
        key = conn.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                           "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                           "WHERE i.indrelid = 'findings'::regclass AND i.indisprimary"
                           ).fetchall()
        versions = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                "WHERE attrelid = 'schema_migrations'::regclass "
                                "AND attname IN ('version', 'applied_at') ORDER BY attnum"
                                ).fetchall()
    assert columns == PROMISED_COLUMNS
    assert indexes == PROMISED_INDEXES
    assert key == [("alert_id",)]
    assert versions == [("integer",), ("timestamp with time zone",)]
