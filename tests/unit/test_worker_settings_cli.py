"""`auditor worker` refuses wrong settings at start, as a user runs it: exit code 2 and a
message naming the variable and what is allowed, in seconds, never a password."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

AUDITOR = str(Path(sys.executable).with_name("auditor"))
PASSWORD = "pw-2c81d4-never-shown"


def _run(env: dict[str, str], *args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    out = subprocess.run([AUDITOR, "worker", *args], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr, time.monotonic() - started


def test_an_unknown_security_protocol_stops_the_worker_at_once() -> None:
    code, output, seconds = _run({"AUDITOR_SECURITY_PROTOCOL": "SSL_SASL",
                                  "AUDITOR_SASL_PASSWORD": PASSWORD})
    assert code == 2, output
    assert ("AUDITOR_SECURITY_PROTOCOL='SSL_SASL': must be one of PLAINTEXT, SSL, "
            "SASL_PLAINTEXT, SASL_SSL") in output
    assert seconds < 15, f"took {seconds:.1f} s"
    assert PASSWORD not in output


def test_an_unknown_sasl_mechanism_stops_the_worker_at_once() -> None:
    code, output, _ = _run({"AUDITOR_SECURITY_PROTOCOL": "SASL_SSL",
                            "AUDITOR_SASL_MECHANISM": "OAUTH", "AUDITOR_SASL_USERNAME": "u",
                            "AUDITOR_SASL_PASSWORD": PASSWORD})
    assert code == 2, output
    assert "AUDITOR_SASL_MECHANISM='OAUTH': must be one of PLAIN, SCRAM-SHA-256" in output
    assert PASSWORD not in output


def test_missing_ssl_files_stop_the_worker_at_once(tmp_path: Path) -> None:
    code, output, _ = _run({"AUDITOR_SECURITY_PROTOCOL": "SSL",
                            "AUDITOR_SSL_CERTFILE": str(tmp_path / "client.pem")})
    assert code == 2, output
    assert "cannot load the SSL files" in output and "client.pem" in output


def test_a_sasl_worker_waiting_for_its_broker_never_logs_the_password(tmp_path: Path) -> None:
    """Started against a port nobody listens on, at debug level, its Kafka client logs its
    failed connections; no password."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    log = tmp_path / "worker.log"
    env = {**os.environ, "AUDITOR_BROKER": f"127.0.0.1:{port}",
           "AUDITOR_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "AUDITOR_SASL_MECHANISM": "PLAIN",
           "AUDITOR_SASL_USERNAME": "auditor", "AUDITOR_SASL_PASSWORD": PASSWORD,
           "AUDITOR_DATA_DIR": str(tmp_path / "data"), "AUDITOR_LOG_LEVEL": "debug",
           "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        # It never gets as far as serving: the web port is not opened.
        proc = subprocess.Popen([AUDITOR, "worker", "--web-port", "16066"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "ECONNREFUSED" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # a few more attempts
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    text = log.read_text()
    assert "ECONNREFUSED" in text and "sasl" in text.lower(), text[-2000:]
    assert PASSWORD not in text
