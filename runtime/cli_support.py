"""What the `fmon` subcommands share: the `--config` option, settings, and the state database,
with fmon's errors turned into click's (usage errors exit 2, others 1, no traceback), and the
start-up log lines (unknown FMON_* variables, where a process connects)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click

from core.broker import BrokerAddress
from core.errors import ConfigError, FmonError
from core.settings_check import referenced_variables, unknown_settings

if TYPE_CHECKING:  # keep `fmon --help` fast: SQLAlchemy and Alembic load when a command needs them
    from core.settings import Settings
    from storage.state.database import StateDatabase

CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (also FMON_CONFIG); FMON_* environment variables override it.",
)


log = logging.getLogger("fmon.settings")
_reported: set[str] = set()  # unknown variables already warned about in this process


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """Settings from the file, FMON_* variables and `overrides`; a bad setting is a usage error.
    Unknown FMON_* variables are warned about first: a misspelled one may be why settings fail."""
    from core.settings import load_settings

    try:
        settings = load_settings(config_file, **overrides)
    except ConfigError as exc:
        warn_unknown_settings(None)
        raise click.UsageError(str(exc)) from None
    warn_unknown_settings(settings.notify_config)
    return settings


def warn_unknown_settings(notify_config: Path | None) -> None:
    """Log a warning per FMON_* variable that is no setting, naming the closest one. Variables the
    notification file references (`${FMON_SMTP_PASSWORD}`) are its secrets, not settings."""
    referenced: set[str] = set()
    # An unreadable file is reported by the notification loader, with its own error.
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if notify_config is not None:
            referenced = referenced_variables(notify_config.read_text(encoding="utf-8"))
    for unknown in unknown_settings(os.environ, ignore=referenced):
        if unknown.name not in _reported:
            _reported.add(unknown.name)
            log.warning("%s", unknown.message)


def describe_connections(settings: Settings, *, telemetry: bool = True) -> str:
    """Where a process connects, for its start-up log line; user names and passwords, query
    strings and tokens are left out."""
    try:
        broker = BrokerAddress.parse(settings.broker_url).url
    except ConfigError:  # the process itself reports it
        broker = _without_credentials(settings.broker_url)
    parts = [f"broker {broker}"]
    if telemetry:
        store = f"InfluxDB {_without_credentials(settings.influx_url)}" if settings.influx_url else (
            f"SQLite {settings.telemetry_sqlite_path}")
        parts.append(f"telemetry store {store}")
    parts.append(f"state database {_database_shown(settings.state_database_url)}")
    return ", ".join(parts)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # InfluxDB 1.x takes ?u=&p=


def _database_shown(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"  # and never the text itself, which may hold a password


@contextmanager
def open_state_database(settings: Settings) -> Iterator[StateDatabase]:
    """The settings' state database, migrated; fmon errors inside, an unreachable database
    included, become click errors (one line, exit code 1)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from storage.state.database import StateDatabase

    shown = _database_shown(settings.state_database_url)
    try:
        db = StateDatabase(settings.state_database_url)
    except (ArgumentError, ImportError) as exc:  # a malformed URL, an unknown scheme, a missing driver
        # SQLAlchemy's parse error quotes the whole URL, password included: never show it
        why = str(exc) if isinstance(exc, NoSuchModuleError | ImportError) else "write it like postgresql://user@host/db"
        raise click.ClickException(f"state database {shown} cannot be used: {why}") from None
    try:
        db.upgrade()
        yield db
    except FmonError as exc:
        raise click.ClickException(" ".join(str(exc).split())) from None  # one line, for logs too
    finally:
        db.dispose()


@contextmanager
def state_database(config_file: Path | None) -> Iterator[StateDatabase]:
    """The configured state database, migrated; fmon errors inside become click errors."""
    with open_state_database(settings_from(config_file)) as db:
        yield db
