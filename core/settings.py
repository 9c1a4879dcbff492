"""Settings: `FMON_*` environment variables over an optional TOML file over defaults.

Settings are built at start-up by `load_settings()` (the `fmon` command calls it), never at
import time. Outside the demo, fmon refuses to start without a real JWT secret.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.errors import ConfigError

CONFIG_FILE_ENV = "FMON_CONFIG"
_config_file: ContextVar[Path | None] = ContextVar("fmon_config_file", default=None)


class Settings(BaseSettings):
    """Everything a fmon process can be configured with. Field `x` is env var `FMON_X`."""

    model_config = SettingsConfigDict(env_prefix="FMON_", extra="forbid", frozen=True)

    environment: Literal["demo", "development", "production"] = "production"
    data_dir: Path = Path("fmon-data")
    broker_url: str = "mqtt://127.0.0.1:1883"
    influx_url: str | None = Field(
        default=None, description="http(s)://host:port/db; unset = SQLite telemetry in data_dir"
    )
    influx_token: SecretStr | None = None
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the state database; unset = SQLite in data_dir"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    jwt_secret: SecretStr | None = None
    jwt_ttl_minutes: int = Field(default=15, ge=1, le=24 * 60)
    site: str = Field(default="+", description="site id this worker ingests, or + for all")
    ingest_batch_size: int = Field(default=5000, ge=1, le=100_000)
    ingest_flush_seconds: float = Field(default=0.5, gt=0, le=60)
    rule_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    ingest_client_id: str | None = Field(
        default=None, description="MQTT client id of the ingest worker (its persistent session); "
        "default fmon-ingest-<site>. Give each worker its own.")
    rules_path: list[Path] = Field(
        default_factory=list, description="rule files or directories; empty = the shipped library. "
        "Edits are picked up while running (hot reload).")
    notify_config: Path | None = Field(
        default=None, description="notification routing and receivers (docs/notifications.md); unset = none")
    console_url: str | None = Field(default=None, description="base URL of the web console, for links in messages")
    alarm_max_shelve_hours: float = Field(default=8, gt=0, le=7 * 24,
                                          description="the longest an operator may shelve an alarm, in hours")
    metrics_port: int | None = Field(default=9108, ge=1, le=65535,
                                     description="Prometheus /metrics port of `fmon ingest`; unset to disable")

    @property
    def ingest_identity(self) -> str:
        site = "all" if self.site == "+" else self.site
        return self.ingest_client_id or f"fmon-ingest-{site}"

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker_url {value!r} must start with mqtt:// or mqtts://")
        return value

    @field_validator("influx_url")
    @classmethod
    def _influx_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.path.strip("/"):
            raise ValueError(f"influx_url {value!r} must look like http://host:port/database")
        return value

    @model_validator(mode="after")
    def _secret_outside_demo(self) -> Settings:
        if self.environment == "production" and self.jwt_secret is None:
            raise ValueError("jwt_secret (FMON_JWT_SECRET) is required in production")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("jwt_secret must be at least 32 characters")
        return self

    @property
    def state_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'state.db'}"

    @property
    def telemetry_sqlite_path(self) -> Path:
        return self.data_dir / "telemetry.db"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - fmon reads no .env or secret files
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file.get() or os.environ.get(CONFIG_FILE_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings: explicit overrides > `FMON_*` env > TOML file > defaults.

    The TOML file is `config_file`, or the file named by `FMON_CONFIG`.

    Raises `ConfigError` naming each bad field.
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    finally:
        _config_file.reset(token)
