"""The findings schema, created and migrated by the auditor itself.

Numbered migrations, applied in order, each recorded in `schema_migrations(version, applied_at,
name)`. `migrate` runs them all in one transaction that holds an advisory lock, so two sinks (or
a sink and `auditor findings load`) starting together apply each migration once, and a failed
migration leaves the schema as it was. A database migrated by a newer auditor (a version this
one does not know) is refused rather than written with an older idea of the table.

Never edit a migration that has shipped: add the next number.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

# pg_advisory_xact_lock key: "compaudf" as a big-endian 64-bit integer.
LOCK_KEY = int.from_bytes(b"compaudf", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "findings table", """
CREATE TABLE findings (
    alert_id     text PRIMARY KEY,
    rule         text NOT NULL,
    kind         text NOT NULL,
    severity     text NOT NULL,
    event_time   timestamptz,
    summary      text NOT NULL,
    at_risk      numeric(18,2) NOT NULL,
    money_class  text,
    currency     text NOT NULL,
    deal_id      text,
    account_id   text,
    rep_id       text,
    team         text,
    plan_id      text,
    group_by     text,
    "group"      text,
    period       text,
    value        double precision,
    threshold    double precision,
    evidence     jsonb NOT NULL DEFAULT '{}',
    labels       jsonb NOT NULL DEFAULT '{}',
    runbook      text NOT NULL DEFAULT '',
    quarter      text,
    unrecovered  numeric(18,2) NOT NULL DEFAULT 0,
    recoverable  numeric(18,2) NOT NULL DEFAULT 0,
    exposure     numeric(18,2) NOT NULL DEFAULT 0,
    overpaid     numeric(18,2) NOT NULL DEFAULT 0,
    source       text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE findings IS
    'One row per alert_id (alert contract v1), upserted by comp-auditor; see deploy/README.md.';
COMMENT ON COLUMN findings.event_time IS 'Null for findings about a plan itself.';
COMMENT ON COLUMN findings.quarter IS
    'The aggregate''s period, else the UTC calendar quarter of event_time (YYYY-Qn).';
COMMENT ON COLUMN findings.unrecovered IS 'evidence.money.unrecovered, 0 when absent.';
COMMENT ON COLUMN findings.recoverable IS 'evidence.money.recoverable, 0 when absent.';
COMMENT ON COLUMN findings.exposure IS 'evidence.money.exposure, 0 when absent.';
COMMENT ON COLUMN findings.overpaid IS 'evidence.money.overpaid, 0 when absent.';
COMMENT ON COLUMN findings.source IS
    'Where the stored version was read: topic/partition/offset or file:line.';
COMMENT ON COLUMN findings.updated_at IS 'When the stored version last changed.';
CREATE INDEX findings_quarter_team ON findings (quarter, team);
CREATE INDEX findings_quarter_plan ON findings (quarter, plan_id);
CREATE INDEX findings_rule_quarter ON findings (rule, quarter);
CREATE INDEX findings_at_risk ON findings (at_risk DESC);
CREATE INDEX findings_money_class ON findings (money_class);
"""),
    Migration(2, "rejected records", """
CREATE TABLE findings_rejected (
    source       text PRIMARY KEY,
    reason       text NOT NULL,
    detail       text NOT NULL,
    raw_text     text NOT NULL,
    raw          bytea NOT NULL,
    record_key   bytea,
    rejected_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE findings_rejected IS
    'Records of the alerts topic or file that are not storable alerts, kept whole.';
COMMENT ON COLUMN findings_rejected.raw_text IS
    'The record as text (invalid UTF-8 and NUL as U+FFFD); raw has its exact bytes.';
"""),
)

LATEST = MIGRATIONS[-1].version


class SchemaError(Exception):
    """The database's schema cannot be used by this auditor."""


def migrate(conn: psycopg.Connection[TupleRow]) -> list[int]:
    """Brings the schema to LATEST; returns the versions applied now (empty: up to date)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    int PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now(),
                name       text NOT NULL DEFAULT ''
            )""")
        done = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        unknown = sorted(v for v in done if v > LATEST)
        if unknown:
            raise SchemaError(f"the database's findings schema is at version {max(unknown)}, "
                              f"newer than this auditor knows ({LATEST}): upgrade the auditor")
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            conn.execute(migration.sql.encode())
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration.version)
        return applied


def current_version(conn: psycopg.Connection[TupleRow]) -> int:
    """The highest applied migration, 0 for a database never migrated."""
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0
