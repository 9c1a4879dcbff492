"""What the `fmon` subcommands share: the `--config` option, settings, and the state database,
with fmon's errors turned into click's (usage errors exit 2, others 1, no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.errors import ConfigError, FmonError

if TYPE_CHECKING:  # keep `fmon --help` fast: SQLAlchemy and Alembic load when a command needs them
    from core.settings import Settings
    from storage.state.database import StateDatabase

CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (also FMON_CONFIG); FMON_* environment variables override it.",
)


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """Settings from the file, FMON_* variables and `overrides`; a bad setting is a usage error."""
    from core.settings import load_settings

    try:
        return load_settings(config_file, **overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def state_database(config_file: Path | None) -> Iterator[StateDatabase]:
    """The configured state database, migrated; fmon errors inside become click errors."""
    from storage.state.database import StateDatabase

    db = StateDatabase(settings_from(config_file).state_database_url)
    try:
        db.upgrade()
        yield db
    except FmonError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
