"""`fmon maintenance …`: equipment ledger, failure prediction, maintenance schedule.

Wiring only: the work is in `maintenance/`. The failure-prediction commands (evaluate, train,
score) live in runtime/maintenance_ml_cli.py, the ledger, plan, work-order and schedule commands in
runtime/ledger_cli.py; both are registered at the end of this file.
"""

from __future__ import annotations

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
