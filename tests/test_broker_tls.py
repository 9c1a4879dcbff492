"""MQTT over TLS (DESIGN.md §9): fmon's clients against a real Mosquitto TLS listener.

A throw-away CA signs the broker's certificate (for 127.0.0.1); `mqtts://…?cafile=CA` makes
fmon's ingest subscriber and its paho clients trust it. Without the CA the certificate is
refused: fmon never falls back to an unchecked connection.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.broker import BrokerAddress
from core.errors import ConfigError
from ingest.mqtt import make_client
from ingest.wire import WireSubscriber
from simulators.load import LoadSpec, run_load
from tests.harness import MosquittoServer
from tests.harness.inbox import Inbox

WAIT_S = 15


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it: (ca.crt, server.crt, server.key)."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
            "-days", "2", "-subj", "/CN=fmon test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "2", "-extfile", str(ext))
    return ca_crt, crt, key


class TlsMosquitto(MosquittoServer):
    """Mosquitto whose only listener speaks TLS with the given certificate."""

    def __init__(self, certificate: Path, key: Path) -> None:
        super().__init__()
        self._certificate, self._key = certificate, key

    def _config_text(self) -> str:
        lines = super()._config_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("listener "))
        lines[at + 1:at + 1] = [f"certfile {self._certificate}", f"keyfile {self._key}", "tls_version tlsv1.2"]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsMosquitto, Path]]:
    ca, certificate, key = make_certificates(tmp_path_factory.mktemp("certs"))
    broker = TlsMosquitto(certificate, key)
    broker.start()
    yield broker, ca
    broker.stop()


def test_ingest_and_paho_clients_talk_tls_with_a_private_ca(tls_broker: tuple[TlsMosquitto, Path]) -> None:
    broker, ca = tls_broker
    address = BrokerAddress.parse(f"mqtts://127.0.0.1:{broker.port}?cafile={ca}")
    inbox = Inbox()
    subscriber = WireSubscriber(address, f"tls-{uuid.uuid4().hex[:8]}", ["fmon/v1/tls/#"], inbox, backoff=(0.1, 0.5))
    subscriber.start()
    publisher = make_client(address, f"tls-pub-{uuid.uuid4().hex[:8]}")
    try:
        assert subscriber.connected.wait(WAIT_S), "the ingest subscriber did not connect over TLS"
        publisher.connect(address.host, address.port)
        publisher.loop_start()
        publisher.publish("fmon/v1/tls/env/e1/telemetry", b"{}", qos=1).wait_for_publish(WAIT_S)
        (got, _connection), = inbox.take(1)
        assert (got.topic, got.payload) == ("fmon/v1/tls/env/e1/telemetry", b"{}")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        subscriber.stop()


def test_a_certificate_from_an_unknown_ca_is_refused(tls_broker: tuple[TlsMosquitto, Path],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    broker, _ca = tls_broker
    address = BrokerAddress.parse(f"mqtts://127.0.0.1:{broker.port}")  # system CAs only
    subscriber = WireSubscriber(address, f"tls-{uuid.uuid4().hex[:8]}", ["fmon/#"], Inbox(), backoff=(0.1, 0.2))
    subscriber.start()
    try:
        assert not subscriber.connected.wait(1.0)
    finally:
        subscriber.stop()
    assert any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records)


def test_broker_url_options_are_checked() -> None:
    assert BrokerAddress.parse("mqtts://gw:pw@b.example?cafile=/etc/ca.pem").ca_file == "/etc/ca.pem"
    with pytest.raises(ConfigError, match="cafile needs mqtts"):
        BrokerAddress.parse("mqtt://b.example?cafile=/etc/ca.pem")
    with pytest.raises(ConfigError, match="unknown option 'ca'") as refused:
        BrokerAddress.parse("mqtts://gw:secret@b.example?ca=/etc/ca.pem")
    assert "secret" not in str(refused.value)
    with pytest.raises(ConfigError, match="bad port") as bad_port:
        BrokerAddress.parse("mqtt://gw:secret@b.example:99999")
    assert "secret" not in str(bad_port.value)


def test_the_simulators_publish_over_tls(tls_broker: tuple[TlsMosquitto, Path]) -> None:
    broker, ca = tls_broker
    address = BrokerAddress.parse(f"mqtts://127.0.0.1:{broker.port}?cafile={ca}")
    inbox = Inbox()
    subscriber = WireSubscriber(address, f"tls-{uuid.uuid4().hex[:8]}", ["fmon/v1/tls-load/#"], inbox,
                                backoff=(0.1, 0.5))
    subscriber.start()
    try:
        assert subscriber.connected.wait(WAIT_S)
        result = run_load(address, LoadSpec(devices=5, rate=50, duration_s=0.5, site="tls-load"))
        assert result.acked_messages == result.messages > 0
        received = [p for p, _connection in inbox.take(result.messages)]
        assert {p.topic.split("/")[2] for p in received} == {"tls-load"}
    finally:
        subscriber.stop()
