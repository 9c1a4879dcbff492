"""Broker security (DESIGN.md §9): the ACL generated from the registry, enforced by a real Mosquitto.

A registry with two sites gives one account per gateway; on a Mosquitto with a password file
and the generated ACL, a gateway's messages for its own site reach fmon, its messages for
another site and for fmon's internal bus do not, and fmon's ingest subscriber logs in with the
service account (a wrong password is refused, not retried into a loop of silence).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from ingest.broker_acl import acl_text, gateway_username
from ingest.inventory import load_inventory
from ingest.wire import WireSubscriber
from runtime.cli import main
from storage.state.database import StateDatabase
from storage.state.registry import RegistryStore
from tests.harness import MosquittoServer
from tests.harness.inbox import Inbox

INVENTORY = """\
version: 1
sites:
  - id: north
    buildings: [{id: b1}]
    gateways:
      - {id: gw-1, kind: gateway, building: b1}
      - {id: fp-1, kind: fire_panel, building: b1}
  - id: south
    gateways:
      - {id: gw-1, kind: gateway}
"""
SERVICE_PASSWORD = "service-" + uuid.uuid4().hex
GATEWAY_PASSWORD = "gateway-" + uuid.uuid4().hex
WAIT_S = 15


@pytest.fixture
def registry(state_db: StateDatabase, tmp_path: Path) -> RegistryStore:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    store = RegistryStore(state_db)
    store.apply(load_inventory(path), datetime.now(UTC))
    return store


def test_every_gateway_gets_an_account_confined_to_its_site(registry: RegistryStore) -> None:
    text = acl_text(registry.gateways())
    blocks = {block.splitlines()[1]: block.splitlines()[2:] for block in text.split("\n\n") if "\nuser " in block}
    assert blocks["user fmon"] == ["topic readwrite fmon/#", "topic readwrite spBv1.0/#", "topic read $SYS/#"]
    for site, gateway in (("north", "gw-1"), ("north", "fp-1"), ("south", "gw-1")):
        assert blocks[f"user {gateway_username(site, gateway)}"] == [
            f"topic readwrite fmon/v1/{site}/#", f"topic readwrite spBv1.0/{site}/#"]
    assert len(blocks) == 4


def test_an_account_name_that_could_break_the_file_is_refused(registry: RegistryStore) -> None:
    with pytest.raises(ValueError, match="not a valid broker account"):
        acl_text(registry.gateways(), extra_site_users=[("sim\ntopic readwrite #", "north")])


def test_the_cli_writes_the_acl_of_the_registry(registry: RegistryStore, state_db: StateDatabase,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMON_DATABASE_URL", state_db.url)
    monkeypatch.setenv("FMON_ENVIRONMENT", "development")
    out = tmp_path / "acl"
    result = CliRunner().invoke(main, ["inventory", "acl", "--out", str(out), "--site-user", "sim=north"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == acl_text(registry.gateways(), extra_site_users=[("sim", "north")])
    bad = CliRunner().invoke(main, ["inventory", "acl", "--site-user", "no-site"])
    assert bad.exit_code == 2
    assert "USER=SITE" in bad.output


@pytest.fixture
def secured(registry: RegistryStore) -> Iterator[MosquittoServer]:
    users = {"fmon": SERVICE_PASSWORD, gateway_username("north", "gw-1"): GATEWAY_PASSWORD}
    broker = MosquittoServer(users=users, acl=acl_text(registry.gateways()))
    broker.start()
    yield broker
    broker.stop()


def gateway_client(broker: MosquittoServer, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(user, password)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_mosquitto_enforces_the_generated_acl(secured: MosquittoServer) -> None:
    inbox = Inbox()
    service = BrokerAddress.parse(f"mqtt://fmon:{SERVICE_PASSWORD}@{secured.host}:{secured.port}")
    subscriber = WireSubscriber(service, "fmon-ingest-acl", ["fmon/#"], inbox, backoff=(0.1, 0.5))
    subscriber.start()
    gateway = gateway_client(secured, gateway_username("north", "gw-1"), GATEWAY_PASSWORD)
    try:
        assert subscriber.connected.wait(WAIT_S), "the service account could not log in"
        for topic in ("fmon/v1/north/env/e1/telemetry", "fmon/v1/south/env/e1/telemetry",
                      "fmon/internal/v1/alarm-events"):
            gateway.publish(topic, b'{"metrics": {"co2_ppm": 500}}', qos=1).wait_for_publish(WAIT_S)
        assert inbox.topics_within(1.5) == {"fmon/v1/north/env/e1/telemetry"}
    finally:
        gateway.disconnect()
        gateway.loop_stop()
        subscriber.stop()


def test_a_wrong_password_is_refused(secured: MosquittoServer, caplog: pytest.LogCaptureFixture) -> None:
    address = BrokerAddress.parse(f"mqtt://fmon:wrong@{secured.host}:{secured.port}")
    subscriber = WireSubscriber(address, "fmon-ingest-wrong", ["fmon/#"], Inbox(), backoff=(0.1, 0.2))
    subscriber.start()
    try:
        assert not subscriber.connected.wait(1.0)
    finally:
        subscriber.stop()
    assert any("refused the connection: not authorized" in r.getMessage()
               or "bad user name or password" in r.getMessage() for r in caplog.records)
