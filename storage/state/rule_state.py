"""Saving and loading the rules engine's per-(rule, source) state, so timers survive restarts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, tuple_

from storage.state.database import StateDatabase
from storage.state.models import RuleState

Key = tuple[str, str]


class RuleStateStore:
    def __init__(self, db: StateDatabase) -> None:
        self._db = db

    def load(self) -> dict[Key, dict[str, Any]]:
        with self._db.session() as session:
            return {(row.rule_id, row.source): row.state for row in session.scalars(select(RuleState))}

    def save(self, changes: Mapping[Key, dict[str, Any] | None], now: datetime) -> None:
        """Replace changed states and delete forgotten ones, in one transaction (two statements
        per chunk, whatever the number of keys)."""
        if not changes:
            return
        keys = list(changes)
        with self._db.session() as session:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                session.execute(delete(RuleState).where(tuple_(RuleState.rule_id, RuleState.source).in_(chunk)))
            rows = [{"rule_id": rule_id, "source": source, "state": state, "updated_at": now}
                    for (rule_id, source), state in changes.items() if state is not None]
            if rows:
                session.execute(insert(RuleState), rows)
