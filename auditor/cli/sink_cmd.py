"""`auditor sink postgres`: the alerts topic into PostgreSQL's `findings` table, and the DSN
option it shares with `auditor findings load`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

DSN_ENV = "AUDITOR_FINDINGS_DSN"
GROUP_ENV = "AUDITOR_SINK_GROUP_ID"
INSTALL_HINT = "psycopg is not installed: pip install 'comp-auditor[sink]'"


def add_dsn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="PostgreSQL connection string, e.g. "
                                      "postgresql://user@host:5432/db; a password is better "
                                      f"given by PGPASSWORD or ~/.pgpass [{DSN_ENV}]")


def dsn_or_none(args: argparse.Namespace) -> str | None:
    """The DSN of `--dsn` or AUDITOR_FINDINGS_DSN; None (and a message) when neither."""
    dsn: str | None = args.dsn or os.environ.get(DSN_ENV)
    if not dsn:
        print(f"error: no database: give --dsn or set {DSN_ENV}", file=sys.stderr)
        return None
    return dsn


def psycopg_missing() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return True
    return False


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sink", help="copy the alerts topic into a database")
    sinks = p.add_subparsers(dest="sink_command", required=True, metavar="DATABASE")
    pg = sinks.add_parser(
        "postgres", help="upsert every alert of the alerts topic into PostgreSQL (findings)",
        description="Consumes the alerts topic and upserts every alert by alert_id into the "
                    "table `findings` (created and migrated at start), committing offsets only "
                    "after the rows are committed. Records that are not alerts are kept in "
                    "`findings_rejected`. Stops cleanly on SIGTERM.")
    pg.add_argument("--broker", help="kafka://host:port or host:port, comma-separated "
                                     "[AUDITOR_BROKER] (default localhost:9092)")
    add_dsn_option(pg)
    pg.add_argument("--topic", help="the alerts topic [AUDITOR_TOPIC_ALERTS] "
                                    "(default audit.alerts)")
    pg.add_argument("--group-id", help=f"consumer group [{GROUP_ENV}] "
                                       "(default comp-auditor-findings-sink)")
    pg.add_argument("--batch-size", type=int, default=1000,
                    help="records per poll and per transaction (default 1000)")
    pg.add_argument("--session-timeout", type=float,
                    help="consumer-group session timeout in seconds [AUDITOR_SESSION_TIMEOUT] "
                         "(default 10)")
    pg.add_argument("--log-level", default="info",
                    choices=("debug", "info", "warning", "error", "critical"))
    pg.epilog = ("Kafka security as for `auditor worker`: AUDITOR_SECURITY_PROTOCOL, "
                 "AUDITOR_SASL_*, AUDITOR_SSL_*. Exit codes: 0 stopped, 1 failed, 2 wrong "
                 "setting or unusable database.")
    pg.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auditor.worker.health import RedactFilter
    from auditor.worker.settings import from_environment, parse_brokers

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = from_environment({
            "brokers": parse_brokers(args.broker) if args.broker else None,
            "alerts": args.topic, "session_timeout": args.session_timeout,
        })
        settings.security.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dsn = dsn_or_none(args)
    if dsn is None:
        return 2
    if psycopg_missing():
        return 2

    from auditor.sink.kafka_source import DEFAULT_GROUP, Sink, SinkConfig, StartError
    from auditor.sink.schema import SchemaError

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact = RedactFilter([*settings.security.secrets(), _password(dsn)])
    redact.install(logging.getLogger().handlers)
    # kafka-python logs every failed connection attempt; the sink says what it waits for.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("auditor.sink").info(
            "%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = SinkConfig(brokers=settings.brokers, dsn=dsn, topic=settings.topics.alerts,
                        group_id=args.group_id or os.environ.get(GROUP_ENV) or DEFAULT_GROUP,
                        security=settings.security, batch_size=args.batch_size,
                        session_timeout=settings.session_timeout)
    try:
        Sink(config, stop).run()
    except (StartError, SchemaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _password(dsn: str) -> str | None:
    """The password written in a DSN, to mask it in logs."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(dsn).get("password")
    except Exception:  # an unreadable DSN: psycopg will say so when connecting
        return None
    return str(password) if password else None


def register_load(findings_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`auditor findings load`, registered under `auditor findings`."""
    load = findings_sub.add_parser(
        "load", help="upsert alerts files into PostgreSQL's findings table",
        description="Upserts every alert of the files by alert_id into the table `findings` "
                    "(created and migrated first), each file in one transaction; loading a "
                    "file again changes nothing. Lines that are not alerts are reported and "
                    "kept in `findings_rejected`.")
    load.add_argument("files", nargs="+", metavar="ALERTS",
                      help="alerts files (JSON Lines), - for stdin")
    add_dsn_option(load)
    load.add_argument("--batch-size", type=int, default=5000, help="rows per COPY (5000)")
    load.set_defaults(run=run_load)


def run_load(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    dsn = dsn_or_none(args)
    if dsn is None or psycopg_missing():
        return 2
    import psycopg

    from auditor.sink import schema, store
    from auditor.sink.load import load_path

    shown = 0

    def warn(message: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= 20:
            print(f"warning: {message}; kept in findings_rejected", file=sys.stderr)

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                             application_name="comp-auditor-load") as conn:
            applied = schema.migrate(conn)
            print("findings schema: " + (
                f"migrated to version {schema.LATEST} (applied {', '.join(map(str, applied))})"
                if applied else f"up to date (version {schema.LATEST})"), file=sys.stderr)
            store.prepare(conn)
            for path in args.files:
                try:
                    written = load_path(conn, path, args.batch_size, warn)
                except OSError as exc:
                    print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
                    return 2
                print(f"{path}: {written}", file=sys.stderr)
    except schema.SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"error: PostgreSQL: {str(exc).strip() or exc!r}", file=sys.stderr)
        return 1
    if shown > 20:
        print(f"... and {shown - 20} more rejected lines", file=sys.stderr)
    return 0
