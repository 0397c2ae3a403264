"""A PostgreSQL server for tests and benchmarks: a throwaway cluster (initdb + pg_ctl in a
temporary directory, on a free loopback port), or an existing server named by
AUDITOR_TEST_POSTGRES_DSN (a libpq connection string whose user may create databases).

Either way each `database()` is a fresh, uniquely named database, dropped afterwards, so tests
never see each other's tables. initdb refuses to run as root: as root the cluster is made and
run as the `postgres` user (`runuser -u postgres --`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from tests.support.tansu import free_port

EXTERNAL_ENV = "AUDITOR_TEST_POSTGRES_DSN"
SUPERUSER = "postgres"


def bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian's layout), or pg_ctl on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def available() -> str | None:
    """None when tests can get a server, else why not (for pytest.skip)."""
    if os.environ.get(EXTERNAL_ENV):
        return None
    if bin_dir() is None:
        return (f"no PostgreSQL server binaries (install Debian's `postgresql`, or set "
                f"{EXTERNAL_ENV})")
    if os.geteuid() == 0 and _uid_of(SUPERUSER) is None:
        return "running as root and there is no `postgres` user to run the cluster as"
    return None


def _uid_of(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def cluster(fast: bool = True) -> Iterator[str]:
    """A DSN of a running throwaway cluster's `postgres` database (or of the external server).

    `fast` turns durability off (fsync, synchronous_commit), for tests; a benchmark that means
    to measure what a real server does keeps the defaults."""
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        yield external
        return
    pg_bin = bin_dir()
    if pg_bin is None:
        raise RuntimeError(available() or "no PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="auditor-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        import pwd

        owner = pwd.getpwnam(SUPERUSER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    port = free_port()
    log = root / "server.log"
    options = ["-c listen_addresses=127.0.0.1", f"-c port={port}",
               f"-c unix_socket_directories={root}", "-c max_connections=50"]
    if fast:
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    try:
        subprocess.run(_as_owner([str(pg_bin / "initdb"), "-D", str(data), "-U", SUPERUSER,
                                  "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_owner([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log),
                                  "-o", " ".join(options), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"cannot start PostgreSQL: {exc.stderr.decode(errors='replace')}"
                           f"\n{server_log}") from None
    try:
        dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        _wait_ready(dsn)
        yield dsn
    finally:
        subprocess.run(_as_owner([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(dsn: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def with_database(dsn: str, name: str) -> str:
    """`dsn` with its database replaced by `name` (URL or key=value form)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


@contextmanager
def database(server_dsn: str) -> Iterator[str]:
    """A fresh empty database on the server of `server_dsn`; dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"auditor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_dsn, name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


# --- The findings table, read back and compared with the alerts it came from ----------------

_FIELDS = ("alert_id", "rule", "kind", "severity", "summary", "money_class", "currency",
           "deal_id", "account_id", "rep_id", "team", "plan_id", "group_by", "group", "period",
           "value", "threshold", "evidence", "labels", "runbook")
_MONEY = ("unrecovered", "recoverable", "exposure", "overpaid")


def findings(dsn: str) -> dict[str, dict[str, Any]]:
    """Every row of `findings` by alert_id; event_time as epoch seconds (`event_epoch`)."""
    import psycopg
    from psycopg.rows import dict_row

    columns = ", ".join(f'"{c}"' for c in (*_FIELDS, "at_risk", "quarter", *_MONEY, "source",
                                          "first_seen", "updated_at"))
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        rows = conn.execute(  # type: ignore[call-overload]
            f"SELECT {columns}, extract(epoch FROM event_time)::float8 AS event_epoch "
            "FROM findings").fetchall()
    return {row["alert_id"]: row for row in rows}


def count(dsn: str, table: str = "findings") -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[call-overload]
    return int(row[0]) if row else 0


def _epoch(text: str | None) -> float | None:
    from datetime import UTC, datetime

    if text is None:
        return None
    if text.startswith("10000-01-01T00:00:00"):
        return 253402300800.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _cents(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def mismatches(row: dict[str, Any], alert: dict[str, Any]) -> list[str]:
    """The columns of `row` that differ from the alert's fields (empty: the row is the alert)."""
    from auditor.findings.read import quarter_of

    problems = []
    for name in _FIELDS:
        want = alert.get(name)
        if name not in alert:  # an older alert: what the sink stores for it
            want = {"evidence": {}, "labels": {}, "runbook": ""}.get(name)
        if row[name] != want:
            problems.append(f"{name}: {row[name]!r} != {want!r}")
    if row["at_risk"] != _cents(alert["at_risk"]):
        problems.append(f"at_risk: {row['at_risk']} != {alert['at_risk']}")
    if row["event_epoch"] != _epoch(alert.get("event_time")):
        problems.append(f"event_time: {row['event_epoch']} != {alert.get('event_time')}")
    quarter = alert.get("period") or quarter_of(alert.get("event_time"))
    if row["quarter"] != quarter:
        problems.append(f"quarter: {row['quarter']!r} != {quarter!r}")
    money = (alert.get("evidence") or {}).get("money") or {}
    for name in _MONEY:
        if row[name] != _cents(money.get(name, 0)):
            problems.append(f"{name}: {row[name]} != {money.get(name, 0)}")
    if row["first_seen"] is None or row["updated_at"] is None or not row["source"]:
        problems.append("first_seen, updated_at and source must be set")
    return problems


def assert_findings_are(dsn: str, alerts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The table holds exactly one row per alert_id of `alerts`, each equal to its alert
    field by field; returns the rows."""
    rows = findings(dsn)
    assert count(dsn) == len(rows)
    missing = sorted(set(alerts) - set(rows))
    extra = sorted(set(rows) - set(alerts))
    assert not missing and not extra, (f"{len(missing)} alerts missing (e.g. {missing[:3]}), "
                                       f"{len(extra)} rows unexpected (e.g. {extra[:3]})")
    for alert_id, alert in alerts.items():
        problems = mismatches(rows[alert_id], alert)
        assert not problems, f"row {alert_id} differs from its alert: {problems}"
    return rows
