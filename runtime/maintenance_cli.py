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

from runtime.cli_support import CONFIG_OPTION, settings_from, state_database
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
@CONFIG_OPTION
@click.option("--every", type=float, default=0.0, help="Keep running, every N seconds (default: once).")
@click.option("--horizon", default="7d", show_default=True, help="Failure horizon of the model (whole days).")
def jobs_command(config_file: Path | None, every: float, horizon: str) -> None:
    """Planned work orders, failure-model retraining and daily risk scores: whatever is due now."""
    from core.clock import SystemClock
    from runtime.health_jobs import open_health_jobs, run_periodically
    from runtime.maintenance_ml_cli import parse_horizon

    with state_database(config_file) as db:
        jobs, store = open_health_jobs(settings_from(config_file), db, parse_horizon(horizon))
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
