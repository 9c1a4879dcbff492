"""What `fmon` says at start: misspelled FMON_* variables, where `fmon ingest` and `fmon api`
connect (without credentials), and a one-line error when the state database is unreachable."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.settings_check import UnknownSetting, referenced_variables, unknown_settings
from runtime import cli_support
from runtime.cli import main
from tests.harness.process import free_port

FMON = str(Path(sys.executable).parent / "fmon")
SECRETS = ("db-pass-6c1f", "broker-pass-93ab", "influx-pass-07de", "influx-token-55aa", "jwt-secret")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ambient FMON_* variables, and no memory of warnings already given in this process."""
    for name in list(os.environ):
        if name.upper().startswith("FMON_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(cli_support, "_reported", set())
    return monkeypatch


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    environ = {"FMON_INFLUXURL": "http://influx:8086/fmon", "FMON_DB_URL": "postgresql://db/fmon",
               "FMON_API_PORT": "8000", "fmon_site": "lakeside", "FMON_CONFIG": "/etc/fmon.toml",
               "FMON_MQTT_PASSWORD": "x", "FMON_SMTP_PASSWORD": "x", "FMON_QQQ": "1", "PATH": "/usr/bin"}
    found = unknown_settings(environ, ignore={"FMON_SMTP_PASSWORD"})
    assert found == [UnknownSetting("FMON_DB_URL", "FMON_DATABASE_URL"),
                     UnknownSetting("FMON_INFLUXURL", "FMON_INFLUX_URL"), UnknownSetting("FMON_QQQ", None)]
    assert found[1].message == "unknown setting FMON_INFLUXURL is ignored: did you mean FMON_INFLUX_URL?"
    assert found[2].message == "unknown setting FMON_QQQ is ignored: no fmon setting has a similar name"


def test_notification_secrets_are_referenced_variables() -> None:
    text = "password: ${FMON_SMTP_PASSWORD}\nsecret: ${GAS_SECRET}\nurl: https://x/$NOT_THIS\n"
    assert referenced_variables(text) == {"FMON_SMTP_PASSWORD", "GAS_SECRET"}


def test_the_command_warns_once_and_skips_the_notification_files_secrets(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notify = tmp_path / "notify.yaml"
    notify.write_text("channels:\n  email:\n    password: ${FMON_SMTP_PASSWORD}\n", encoding="utf-8")
    for name, value in {"FMON_ENVIRONMENT": "development", "FMON_DATA_DIR": str(tmp_path),
                        "FMON_NOTIFY_CONFIG": str(notify), "FMON_SMTP_PASSWORD": "s3cret",
                        "FMON_INFLUXURL": "http://influx:8086/fmon"}.items():
        clean_env.setenv(name, value)
    caplog.set_level(logging.WARNING, logger="fmon.settings")
    for _ in range(2):
        assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    assert [r.getMessage() for r in caplog.records if r.name == "fmon.settings"] == [
        "unknown setting FMON_INFLUXURL is ignored: did you mean FMON_INFLUX_URL?"]


def test_a_misspelling_is_named_when_the_settings_are_refused(
        clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clean_env.setenv("FMON_ENVIRONMENT", "production")
    clean_env.setenv("FMON_JWT_SECRETT", "x" * 40)  # so the real one is missing
    caplog.set_level(logging.WARNING, logger="fmon.settings")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "jwt_secret (FMON_JWT_SECRET) is required in production" in result.output
    assert "did you mean FMON_JWT_SECRET?" in caplog.text


def unreachable_env(tmp_path: Path) -> dict[str, str]:
    """Production settings whose state database refuses connections; credentials everywhere."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FMON_")}
    port = free_port()  # nothing listens there
    return {**env, "FMON_ENVIRONMENT": "production", "FMON_JWT_SECRET": "jwt-secret" * 4,
            "FMON_DATA_DIR": str(tmp_path),
            "FMON_DATABASE_URL": f"postgresql://fmon:db-pass-6c1f@127.0.0.1:{port}/fmon",
            "FMON_BROKER_URL": "mqtt://fmon:broker-pass-93ab@127.0.0.1:1883",
            "FMON_INFLUX_URL": "http://reader:influx-pass-07de@127.0.0.1:8086/fmon?p=influx-pass-07de",
            "FMON_INFLUX_TOKEN": "influx-token-55aa", "FMON_METRICS_PORT": str(free_port())}


@pytest.mark.parametrize("command", ["ingest", "api"])
def test_an_unreachable_state_database_is_one_line_and_exit_code_1(tmp_path: Path, command: str) -> None:
    env = unreachable_env(tmp_path)
    run = subprocess.run([FMON, command], env=env, capture_output=True, text=True, timeout=60, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Traceback" not in output
    [error] = [line for line in output.splitlines() if line.startswith("Error:")]
    assert "state database" in error
    assert "unreachable" in error
    # the start-up line says where the process connects, without any credentials
    port = env["FMON_DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
    assert f"fmon {command}: broker mqtt://127.0.0.1:1883, " in output
    assert f"state database postgresql+psycopg://fmon:***@127.0.0.1:{port}/fmon" in output
    assert ("telemetry store InfluxDB http://127.0.0.1:8086/fmon" in output) == (command == "ingest")
    for secret in SECRETS:
        assert secret not in output


def test_a_malformed_database_url_is_refused_without_echoing_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FMON_ENVIRONMENT", "development")
    clean_env.setenv("FMON_DATABASE_URL", "fmon:db-pass-6c1f@db-host/fmon")  # the scheme forgotten
    result = CliRunner().invoke(main, ["api"])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: state database (not a database URL) cannot be used: "
                                     "write it like postgresql://user@host/db")
