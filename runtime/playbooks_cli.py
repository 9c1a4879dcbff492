"""`fmon playbooks …`: check and show emergency playbooks. Wiring only: the work is in `playbooks/`."""

from __future__ import annotations

import click


@click.group()
def playbooks() -> None:
    """Emergency playbooks (YAML, bilingual): check and show them."""
