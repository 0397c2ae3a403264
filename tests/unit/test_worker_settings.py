"""Worker settings: AUDITOR_* variables and flags, refusals that name the variable and what is
allowed, secrets that never show, and mutual TLS."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from auditor.worker.settings import Security, WorkerSettings, from_environment

PASSWORD = "pw-7f3a9c-never-shown"
KEY_PASSWORD = "keypw-51bd0e-never-shown"


def test_defaults_and_environment() -> None:
    s = from_environment(env={})
    assert s == WorkerSettings()
    assert s.brokers == ("localhost:9092",) and s.broker_grace_seconds == 30.0
    assert s.security.protocol == "PLAINTEXT" and s.security.kafka_python() == {
        "security_protocol": "PLAINTEXT"}
    s = from_environment(env={"AUDITOR_BROKER": "kafka://a:1, b", "AUDITOR_TOPIC_PARTITIONS": "8",
                              "AUDITOR_BROKER_GRACE_SECONDS": "12.5", "AUDITOR_LOG_LEVEL": "DEBUG",
                              "AUDITOR_TOPIC_DEALS": "d", "AUDITOR_DATA_DIR": "/data",
                              "AUDITOR_SECURITY_PROTOCOL": "ssl"})
    assert s.brokers == ("a:1", "b:9092") and s.partitions == 8
    assert s.broker_grace_seconds == 12.5 and s.log_level == "debug"
    assert s.topics.deals == "d" and s.topics.churns == "accounts.churned"
    assert s.data_dir == Path("/data") and s.security.protocol == "SSL"


def test_flags_win_over_the_environment() -> None:
    s = from_environment({"web_port": 7000, "broker_grace_seconds": 5.0, "brokers": "x:1",
                          "partitions": None},
                         env={"AUDITOR_WEB_PORT": "6000", "AUDITOR_TOPIC_PARTITIONS": "2",
                              "AUDITOR_BROKER_GRACE_SECONDS": "60"})
    assert (s.web_port, s.broker_grace_seconds, s.brokers, s.partitions) == (
        7000, 5.0, ("x:1",), 2)


def test_settings_are_frozen() -> None:
    s = WorkerSettings()
    with pytest.raises(ValidationError):
        s.partitions = 3  # type: ignore[misc]
    assert s.model_copy(update={"rules_dir": Path("r")}).rules_dir == Path("r")


@pytest.mark.parametrize(("env", "expected"), [
    ({"AUDITOR_SECURITY_PROTOCOL": "SSL_SASL"},
     "AUDITOR_SECURITY_PROTOCOL='SSL_SASL': must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
     "SASL_SSL"),
    ({"AUDITOR_SECURITY_PROTOCOL": "SASL_SSL", "AUDITOR_SASL_MECHANISM": "GSSAPI",
      "AUDITOR_SASL_USERNAME": "u", "AUDITOR_SASL_PASSWORD": PASSWORD},
     "AUDITOR_SASL_MECHANISM='GSSAPI': must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"AUDITOR_SECURITY_PROTOCOL": "SASL_SSL", "AUDITOR_SASL_PASSWORD": PASSWORD},
     "AUDITOR_SECURITY_PROTOCOL=SASL_SSL needs AUDITOR_SASL_USERNAME and AUDITOR_SASL_PASSWORD"),
    ({"AUDITOR_SSL_CERTFILE": "client.pem"},
     "AUDITOR_SSL_CERTFILE given but AUDITOR_SECURITY_PROTOCOL=PLAINTEXT does not use SSL"),
    ({"AUDITOR_SECURITY_PROTOCOL": "SSL", "AUDITOR_SSL_KEYFILE": "k.pem",
      "AUDITOR_SSL_KEY_PASSWORD": KEY_PASSWORD},
     "AUDITOR_SSL_KEYFILE and AUDITOR_SSL_KEY_PASSWORD need AUDITOR_SSL_CERTFILE"),
    ({"AUDITOR_TOPIC_PARTITIONS": "four"}, "AUDITOR_TOPIC_PARTITIONS='four': "),
    ({"AUDITOR_BROKER_GRACE_SECONDS": "0"}, "AUDITOR_BROKER_GRACE_SECONDS='0': "),
    ({"AUDITOR_LOG_LEVEL": "loud"},
     "AUDITOR_LOG_LEVEL='loud': must be one of debug, info, warning, error, critical"),
])
def test_wrong_settings_are_refused_with_the_variable_and_what_is_allowed(
        env: dict[str, str], expected: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        from_environment(env=env)
    assert expected in str(caught.value)
    assert PASSWORD not in str(caught.value) and KEY_PASSWORD not in str(caught.value)


def test_a_wrong_flag_is_named() -> None:
    with pytest.raises(ValueError, match=r"--web-port='70000': "):
        from_environment({"web_port": 70000}, env={})
    with pytest.raises(ValueError, match="unknown settings"):
        from_environment({"colour": "blue"}, env={})


def test_passwords_never_show() -> None:
    env = {"AUDITOR_SECURITY_PROTOCOL": "SASL_SSL", "AUDITOR_SASL_MECHANISM": "scram-sha-512",
           "AUDITOR_SASL_USERNAME": "auditor", "AUDITOR_SASL_PASSWORD": PASSWORD,
           "AUDITOR_SSL_CERTFILE": "c.pem", "AUDITOR_SSL_KEY_PASSWORD": KEY_PASSWORD}
    s = from_environment(env=env)
    shown = [repr(s), str(s), repr(s.security), str(s.security), str(s.model_dump()),
             s.model_dump_json()]
    for text in shown:
        assert PASSWORD not in text and KEY_PASSWORD not in text
    # Handed to the client libraries, which need them in the clear.
    options = s.security.kafka_python()
    assert options["sasl_plain_password"] == PASSWORD and options["ssl_password"] == KEY_PASSWORD
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_validation_errors_never_echo_a_password() -> None:
    with pytest.raises(ValidationError) as caught:
        Security(protocol="SASL_SSL", sasl_password=PASSWORD)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as nested:
        WorkerSettings(security={"protocol": "TLS", "sasl_password": PASSWORD,  # type: ignore[arg-type]
                                 "ssl_key_password": KEY_PASSWORD})
    for exc in (caught.value, nested.value):
        for text in (str(exc), repr(exc), str(exc.errors(include_input=False))):
            assert PASSWORD not in text and KEY_PASSWORD not in text


def test_logs_of_a_sasl_worker_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """What the worker logs about its settings and its clients, in process."""
    caplog.set_level(logging.DEBUG)
    s = from_environment(env={"AUDITOR_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                              "AUDITOR_SASL_USERNAME": "u", "AUDITOR_SASL_PASSWORD": PASSWORD})
    logging.getLogger("auditor.test").info("settings %s %r", s, s.security)
    logging.getLogger("auditor.test").info("credentials %r", s.security.faust())
    assert caplog.records and PASSWORD not in caplog.text


# --- mutual TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and its key, encrypted with
    KEY_PASSWORD, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "client.pem", d / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert), "-passout", f"pass:{KEY_PASSWORD}"],
                   check=True, capture_output=True)
    return cert, key


def _mtls(cert: Path, key: Path, password: str = KEY_PASSWORD) -> Security:
    return from_environment(env={
        "AUDITOR_SECURITY_PROTOCOL": "SSL", "AUDITOR_SSL_CAFILE": str(cert),
        "AUDITOR_SSL_CERTFILE": str(cert), "AUDITOR_SSL_KEYFILE": str(key),
        "AUDITOR_SSL_KEY_PASSWORD": password}).security


def test_mtls_context_presents_the_client_certificate(cert: tuple[Path, Path]) -> None:
    """A TLS server that requires a client certificate accepts the worker's context."""
    certfile, keyfile = cert
    security = _mtls(certfile, keyfile)
    security.check()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certfile, keyfile, password=KEY_PASSWORD)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(cafile=certfile)
    server_sock, client_sock = socket.socketpair()
    seen: dict[str, object] = {}

    def serve() -> None:
        with server_context.wrap_socket(server_sock, server_side=True) as tls:
            seen["peer"] = tls.getpeercert()

    thread = threading.Thread(target=serve)
    thread.start()
    with security.ssl_context().wrap_socket(client_sock, server_hostname="localhost") as tls:
        assert tls.version()
    thread.join(10)
    assert seen["peer"], "the server saw no client certificate"
    assert ((("commonName", "localhost"),) in seen["peer"]["subject"])  # type: ignore[index]


def test_mtls_options_for_every_client(cert: tuple[Path, Path]) -> None:
    certfile, keyfile = cert
    security = _mtls(certfile, keyfile)
    assert security.kafka_python() == {
        "security_protocol": "SSL", "ssl_cafile": str(certfile), "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile), "ssl_password": KEY_PASSWORD}
    assert isinstance(security.aiokafka()["ssl_context"], ssl.SSLContext)
    assert isinstance(security.faust().context, ssl.SSLContext)


def test_a_wrong_key_password_is_refused_without_showing_it(cert: tuple[Path, Path]) -> None:
    certfile, keyfile = cert
    with pytest.raises(ValueError, match="cannot load the SSL files") as caught:
        _mtls(certfile, keyfile, password="wrong-" + KEY_PASSWORD).check()
    assert KEY_PASSWORD not in str(caught.value)
    assert str(certfile) in str(caught.value)
    with pytest.raises(ValueError, match="No such file"):
        _mtls(certfile.with_name("missing.pem"), keyfile).check()


def test_auditor_produce_passes_the_client_certificate(cert: tuple[Path, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.produce import publisher

    seen: dict[str, object] = {}

    class Producer:
        def __init__(self, **options: object) -> None:
            seen.update(options)

    monkeypatch.setattr(publisher, "KafkaProducer", Producer)
    certfile, keyfile = cert
    publisher.Publisher(["b:9093"], security=_mtls(certfile, keyfile))
    assert seen["security_protocol"] == "SSL" and seen["ssl_certfile"] == str(certfile)
    assert seen["ssl_keyfile"] == str(keyfile) and seen["ssl_password"] == KEY_PASSWORD
