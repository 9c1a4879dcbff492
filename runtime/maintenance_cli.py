"""`fmon maintenance …`: equipment ledger, failure prediction, maintenance schedule.

Wiring only: the work is in `maintenance/`.
"""

from __future__ import annotations

import click


@click.group()
def maintenance() -> None:
    """Equipment health: ledger, failure prediction, maintenance schedule."""
