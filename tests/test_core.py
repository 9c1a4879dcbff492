"""core: ids, topics, domain values, clock and settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.broker import BrokerAddress
from core.clock import FakeClock
from core.domain import AlarmState, DeviceRef, Family, Grade, Reading, Role
from core.errors import ConfigError, TopicError
from core.settings import load_settings
from core.topics import (
    TopicKind,
    command_ack_topic,
    gateway_batch_topic,
    gateway_status_topic,
    parse_topic,
    status_topic,
    telemetry_topic,
)

DEVICE = DeviceRef("site-a", Family.GAS, "gas_01")
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("build", "kind"),
    [(telemetry_topic, TopicKind.TELEMETRY), (status_topic, TopicKind.STATUS),
     (command_ack_topic, TopicKind.COMMAND_ACK)],
)
def test_device_topics_round_trip(build: object, kind: TopicKind) -> None:
    parsed = parse_topic(build(DEVICE))  # type: ignore[operator]
    assert (parsed.kind, parsed.device, parsed.site) == (kind, DEVICE, "site-a")


def test_gateway_topics_round_trip() -> None:
    assert parse_topic(gateway_batch_topic("s1", "gw-1")).kind is TopicKind.BATCH
    status = parse_topic(gateway_status_topic("s1", "gw-1"))
    assert (status.kind, status.gateway_id, status.device) == (TopicKind.GATEWAY_STATUS, "gw-1", None)


@pytest.mark.parametrize(
    ("topic", "reason", "words"),
    [
        ("fmon/v2/s/env/d/telemetry", "bad_topic", "not under fmon/v1"),
        ("fmon/v1/s/kitchen/d/telemetry", "unknown_family", "kitchen"),
        ("fmon/v1/s/env/bad id/telemetry", "bad_id", "device id"),
        ("fmon/v1/s/env/" + "x" * 65 + "/telemetry", "bad_id", "device id"),
        ("fmon/v1/s.1/env/d/telemetry", "bad_id", "site id"),
        ("fmon/v1/s/env/d/telemetry/extra", "bad_topic", "telemetry/extra"),
        ("fmon/v1/s/gateway/g/reboot", "bad_topic", "reboot"),
    ],
)
def test_parse_topic_names_what_is_wrong(topic: str, reason: str, words: str) -> None:
    with pytest.raises(TopicError, match=words) as info:
        parse_topic(topic)
    assert info.value.reason == reason


def test_builders_refuse_invalid_ids() -> None:
    with pytest.raises(ValueError, match="gateway id"):
        gateway_batch_topic("site", "gw/1")
    with pytest.raises(ValueError, match="device id"):
        DeviceRef("site", Family.ENV, "+")


def test_reading_is_validated_and_frozen() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading(DEVICE, datetime(2026, 1, 1), {"lel_pct": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        Reading(DEVICE, NOW, {"lel_pct": float("nan")})
    reading = Reading(DEVICE, NOW, {"lel_pct": 1.0})
    with pytest.raises(TypeError):
        reading.metrics["lel_pct"] = 2.0  # type: ignore[index]


def test_device_key_round_trip() -> None:
    assert DeviceRef.from_key(DEVICE.key) == DEVICE
    assert DeviceRef("s", "env", "d").family is Family.ENV  # type: ignore[arg-type]


def test_grades_carry_labels_and_clocks() -> None:
    assert Grade(1).label_zh == "一级 特别重大"
    assert Grade(4).colour == "blue"
    assert Grade(2).is_emergency
    assert not Grade(3).is_emergency
    assert Grade(1).default_response == timedelta(minutes=5)
    assert Grade(4).default_handling == timedelta(hours=4)


def test_alarm_states_and_roles() -> None:
    assert AlarmState.UNACK.is_active
    assert not AlarmState.RTN_UNACK.is_active
    assert AlarmState.RTN_UNACK.is_open
    assert not AlarmState.NORMAL.is_open
    assert Role.ADMIN.allows(Role.OPERATOR)
    assert not Role.VIEWER.allows(Role.OPERATOR)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(NOW)
    assert clock.now() == NOW
    assert clock.advance(61) == NOW + timedelta(seconds=61)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 1, 1))


def test_settings_precedence_env_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fmon.toml"
    config.write_text('environment = "demo"\napi_port = 9001\nsite = "from-toml"\n')
    monkeypatch.setenv("FMON_SITE", "from-env")
    settings = load_settings(config)
    assert (settings.api_port, settings.site, settings.environment) == (9001, "from-env", "demo")
    assert load_settings(config, api_port=9100).api_port == 9100


def test_settings_read_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fmon.toml"
    config.write_text('environment = "demo"\nbroker_url = "mqtts://gw:pw@broker:8883"\n')
    monkeypatch.setenv("FMON_CONFIG", str(config))
    assert load_settings().broker_url == "mqtts://gw:pw@broker:8883"


def test_settings_refuse_production_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMON_JWT_SECRET", raising=False)
    with pytest.raises(ConfigError, match="jwt_secret"):
        load_settings()
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings(jwt_secret="short")
    assert load_settings(jwt_secret="x" * 32).environment == "production"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("broker_url", "http://x", "mqtt://"), ("influx_url", "http://x:8086", "database"),
     ("api_port", 0, "api_port"), ("colour", "red", "colour")],
)
def test_settings_errors_name_the_field(field: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(environment="demo", **{field: value})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_broker_address_parses_credentials_and_tls() -> None:
    address = BrokerAddress.parse("mqtts://gw%401:p%3Aw@broker.example:8884")
    assert address == BrokerAddress("broker.example", 8884, True, "gw@1", "p:w")
    assert BrokerAddress.parse("mqtt://h").port == 1883
    assert address.url == "mqtts://broker.example:8884"
    with pytest.raises(ConfigError, match="mqtt://host"):
        BrokerAddress.parse("tcp://h:1")
