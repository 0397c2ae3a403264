"""`auditor worker`: the streaming service (faust-streaming on Kafka)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker", help="audit events from Kafka, continuously",
        description="Every option can also be set by an AUDITOR_* environment variable (shown "
                    "in brackets); a flag wins over the environment.")
    p.add_argument("--broker", help="kafka://host:port or host:port, comma-separated "
                                    "[AUDITOR_BROKER] (default localhost:9092)")
    p.add_argument("--rules", help="rules directory [AUDITOR_RULES] (default: the repo's rules/)")
    p.add_argument("--group-id", help="consumer group, and prefix of the internal topics "
                                      "[AUDITOR_GROUP_ID] (default comp-auditor)")
    p.add_argument("--web-port", type=int, help="port of /metrics, /healthz and /readyz "
                                                "[AUDITOR_WEB_PORT] (default 6066)")
    p.add_argument("--web-host", help="address to serve on [AUDITOR_WEB_HOST] (default 0.0.0.0)")
    p.add_argument("--data-dir", help="table state directory [AUDITOR_DATA_DIR] "
                                      "(default var/worker-<web port>)")
    p.add_argument("--partitions", type=int,
                   help="partitions of topics it creates [AUDITOR_TOPIC_PARTITIONS] (default 4)")
    p.add_argument("--replication-factor", type=int,
                   help="replication of topics it creates [AUDITOR_REPLICATION_FACTOR] (1)")
    p.add_argument("--allowed-lateness-days", type=float,
                   help="[AUDITOR_ALLOWED_LATENESS_DAYS] (default 30)")
    p.add_argument("--reload-seconds", type=float,
                   help="how often to look for changed rule files and hot-reload them; 0: never "
                        "[AUDITOR_RULES_RELOAD_SECONDS] (default 2)")
    p.add_argument("--session-timeout", type=float,
                   help="consumer-group session timeout in seconds: how fast a dead worker's "
                        "partitions move [AUDITOR_SESSION_TIMEOUT] (default 10)")
    p.add_argument("--broker-grace-seconds", type=float,
                   help="how long the broker may not answer before /readyz fails "
                        "[AUDITOR_BROKER_GRACE_SECONDS] (default 30)")
    p.add_argument("--state-snapshot-min-bytes", type=int,
                   help="a partition's state log takes a snapshot once twice its size, and at "
                        "least this many bytes, were logged since the last one "
                        "[AUDITOR_STATE_SNAPSHOT_MIN_BYTES] (default 1048576)")
    p.add_argument("--log-level", help="debug, info, warning, error or critical "
                                       "[AUDITOR_LOG_LEVEL] (default info)")
    p.epilog = ("Topics: AUDITOR_TOPIC_DEALS, AUDITOR_TOPIC_CHURNS, AUDITOR_TOPIC_ALERTS, "
                "AUDITOR_TOPIC_DEADLETTER. Security: AUDITOR_SECURITY_PROTOCOL (PLAINTEXT, SSL, "
                "SASL_PLAINTEXT, SASL_SSL; default PLAINTEXT), AUDITOR_SASL_MECHANISM (PLAIN, "
                "SCRAM-SHA-256, SCRAM-SHA-512), AUDITOR_SASL_USERNAME, AUDITOR_SASL_PASSWORD, "
                "AUDITOR_SSL_CAFILE (default: the system's CAs); for mutual TLS "
                "AUDITOR_SSL_CERTFILE, AUDITOR_SSL_KEYFILE and AUDITOR_SSL_KEY_PASSWORD. A wrong "
                "setting stops the worker at start with exit code 2.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auditor.worker.settings import from_environment

    # Settings first, before the slow imports: a wrong one stops the worker at once.
    try:
        settings = from_environment({
            "brokers": args.broker or None,
            "rules_dir": Path(args.rules) if args.rules else None,
            "group_id": args.group_id, "web_port": args.web_port, "web_host": args.web_host,
            "data_dir": Path(args.data_dir) if args.data_dir else None,
            "partitions": args.partitions, "replication_factor": args.replication_factor,
            "lateness_days": args.allowed_lateness_days, "reload_seconds": args.reload_seconds,
            "session_timeout": args.session_timeout, "log_level": args.log_level,
            "broker_grace_seconds": args.broker_grace_seconds,
            "snapshot_min_bytes": args.state_snapshot_min_bytes,
        })
        settings.security.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from faust.worker import Worker as FaustWorker

    from auditor.cli.common import load_rules_or_exit, rules_dir
    from auditor.worker.app import AuditorWorker
    from auditor.worker.health import RedactFilter, RepeatFilter
    from auditor.worker.topics import PartitionCountError, ensure_topics

    # Secrets are masked in every log line (kafka-python logs its configuration at debug
    # level). The Kafka clients log every failed attempt while the broker is away: one line
    # per logger and kind of message per interval goes through, with a count of the rest.
    filters = (RedactFilter(settings.security.secrets()), RepeatFilter())

    def install_filters(handlers: list[logging.Handler]) -> None:
        for log_filter in filters:
            log_filter.install(handlers)

    class Worker(FaustWorker):  # the name faust logs
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            install_filters(logger.handlers)  # faust replaced the handlers: filter them too

    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_filters(logging.getLogger().handlers)
    rules = load_rules_or_exit(str(settings.rules_dir) if settings.rules_dir else None)
    if settings.rules_dir is None:
        settings = settings.model_copy(update={"rules_dir": rules_dir(None)})
    try:
        ensure_topics(settings)
    except PartitionCountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker = AuditorWorker(settings, rules)
    # The worker keeps months of state, millions of objects that live long: with the default
    # thresholds the collector walked all of them again and again (a quarter of the engine's
    # time). Young collections run 14x less often and full ones 10x less; cyclic garbage (the
    # clients' futures and tasks) is still collected, only in fewer, larger passes. Unlike
    # replay, nothing is frozen: a service must not keep the cycles alive at a freeze.
    gc.set_threshold(10_000, 10, 100)
    logging.getLogger("auditor.worker").info(
        "starting: group %s, brokers %s, %d rules, web on %s:%d", settings.group_id,
        ",".join(settings.brokers), rules.rule_count, settings.web_host, settings.web_port)
    Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0
