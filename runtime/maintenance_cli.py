"""`fmon maintenance …`: equipment ledger, failure prediction, maintenance schedule.

Wiring only: the work is in `maintenance/`. The failure-prediction commands (evaluate, train,
score) live in runtime/maintenance_ml_cli.py, the ledger, plan, work-order and schedule commands in
runtime/ledger_cli.py; both are registered at the end of this file.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from runtime.ledger_cli import COMMANDS as LEDGER_COMMANDS
from runtime.maintenance_ml_cli import COMMANDS as ML_COMMANDS


@click.group()
def maintenance() -> None:
    """Equipment health: ledger, failure prediction, maintenance schedule."""


for _command in ML_COMMANDS:
    maintenance.add_command(_command)
for _command in LEDGER_COMMANDS:
    maintenance.add_command(_command)


@maintenance.command("jobs")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML settings file (also FMON_CONFIG); FMON_* environment variables override it.")
@click.option("--every", type=float, default=0.0, help="Keep running, every N seconds (default: once).")
@click.option("--horizon", default="7d", show_default=True, help="Failure horizon of the model (whole days).")
def jobs_command(config_file: Path | None, every: float, horizon: str) -> None:
    """Planned work orders, failure-model retraining and daily risk scores: whatever is due now."""
    from core.clock import SystemClock
    from core.errors import ConfigError, FmonError
    from core.settings import load_settings
    from runtime.health_jobs import open_health_jobs, run_periodically
    from runtime.maintenance_ml_cli import parse_horizon
    from storage.state.database import StateDatabase

    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    db = StateDatabase(settings.state_database_url)
    try:
        db.upgrade()
        jobs, store = open_health_jobs(settings, db, parse_horizon(horizon))
        try:
            if every <= 0:
                for line in jobs.run(SystemClock().now()):
                    click.echo(line)
                return

            async def forever() -> None:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await run_periodically(jobs, SystemClock(), stop, every)

            asyncio.run(forever())
        finally:
            store.close()
    except FmonError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
