"""Upserting rows into `findings` (and refused records into `findings_rejected`), in batches.

A batch is COPYed into a temporary table and merged with one `INSERT ... SELECT ... ON CONFLICT
(alert_id) DO UPDATE`: a row whose alert_id is new is inserted (first_seen = updated_at = now);
one that differs from the stored version replaces it (first_seen kept, updated_at = now); one
equal to it is left alone, so a re-delivered alert changes nothing, not even updated_at. The
last of several versions of an alert in one batch wins, as it would one batch at a time.

The caller holds the transaction (`with conn.transaction():`); the batch runs in a savepoint
of it. Should PostgreSQL refuse the batch for its data (a value it cannot read), the savepoint
is rolled back and the rows are written one by one, each in its own savepoint, and a row it
still refuses is kept in `findings_rejected` with reason `database_refused`: one bad record
never stops the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from auditor.sink.rows import COLUMNS, Rejected, Row, raw_text

Conn = psycopg.Connection[TupleRow]
STAGING = "findings_incoming"
# Compared to tell a changed alert from a re-delivered one (not `source`: where it was read).
_COMPARED = tuple(c for c in COLUMNS if c not in ("alert_id", "source"))


@dataclass
class Written:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0

    @property
    def upserted(self) -> int:
        return self.new + self.changed + self.unchanged

    def add(self, other: Written) -> None:
        self.new += other.new
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.rejected += other.rejected

    def __str__(self) -> str:
        return (f"{self.upserted:,} alerts ({self.new:,} new, {self.changed:,} changed, "
                f"{self.unchanged:,} unchanged), {self.rejected:,} rejected")


def _ident_list(names: Iterable[str], prefix: str = "") -> sql.Composed:
    if prefix:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(prefix),
                                                          sql.Identifier(n)) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


_CREATE_STAGING = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
    "SELECT {columns} FROM findings WITH NO DATA").format(
        staging=sql.Identifier(STAGING), columns=_ident_list(COLUMNS))
_COPY = sql.SQL("COPY {staging} ({columns}) FROM STDIN").format(
    staging=sql.Identifier(STAGING), columns=_ident_list(COLUMNS))
_MERGE = sql.SQL(
    "INSERT INTO findings AS f ({columns}, first_seen, updated_at) "
    "SELECT {columns}, now(), now() FROM {staging} "
    "ON CONFLICT (alert_id) DO UPDATE SET {updates}, updated_at = now() "
    "WHERE ({old}) IS DISTINCT FROM ({new}) "
    "RETURNING (xmax = 0) AS inserted").format(
        columns=_ident_list(COLUMNS), staging=sql.Identifier(STAGING),
        updates=sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
            for c in COLUMNS if c != "alert_id"),
        old=_ident_list(_COMPARED, "f"), new=_ident_list(_COMPARED, "excluded"))
_REJECT = sql.SQL(
    "INSERT INTO findings_rejected (source, reason, detail, raw_text, raw, record_key) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (source) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, "
    "raw_text = excluded.raw_text, raw = excluded.raw, record_key = excluded.record_key, "
    "rejected_at = now()")


def prepare(conn: Conn) -> None:
    """Creates this session's staging table; once per connection, after `migrate`."""
    with conn.transaction():
        conn.execute(_CREATE_STAGING)


def write(conn: Conn, rows: Sequence[Row], rejected: Sequence[Rejected] = ()) -> Written:
    """Upserts `rows` and keeps `rejected`, inside the caller's transaction."""
    latest: dict[str, Row] = {}
    for row in rows:
        latest.pop(row.alert_id, None)  # the last version wins, in its own place
        latest[row.alert_id] = row
    written = Written()
    refused = list(rejected)
    try:
        with conn.transaction():
            written = _merge(conn, list(latest.values()))
    except (psycopg.DataError, psycopg.IntegrityError):
        for row in latest.values():
            try:
                with conn.transaction():
                    written.add(_merge(conn, [row]))
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                refused.append(Rejected(row.source, "database_refused",
                                        str(exc).strip().splitlines()[0], row.raw))
    written.unchanged += len(rows) - len(latest)  # the earlier versions of a batch: superseded
    if refused:
        with conn.cursor() as cur:
            cur.executemany(_REJECT, [(r.source, r.reason, r.detail, raw_text(r.raw), r.raw,
                                       r.key) for r in refused])
        written.rejected += len(refused)
    return written


def _merge(conn: Conn, rows: Sequence[Row]) -> Written:
    if not rows:
        return Written()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(STAGING)))
        with cur.copy(_COPY) as copy:
            for row in rows:
                values = list(row.values())
                values[COLUMNS.index("evidence")] = Jsonb(row.evidence)
                values[COLUMNS.index("labels")] = Jsonb(row.labels)
                copy.write_row(values)
        cur.execute(_MERGE)
        inserted = [bool(flag) for (flag,) in cur.fetchall()]
    new = sum(inserted)
    changed = len(inserted) - new
    return Written(new=new, changed=changed, unchanged=len(rows) - len(inserted))
