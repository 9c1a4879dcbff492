"""The demo's accounts `admin`, `operator` and `engineer`: created when missing, never silently reset.

`fmon demo` may run against a state database that people already use (`--database
postgresql://…`, or a restart on the same data dir), so an existing account is left alone:

- a missing demo user is created with `--password`, or with a generated password that is printed;
- an existing demo user keeps its password, except when `--password` is given *and* only the demo
  has ever set that account (its latest `user.set` audit entry is by the actor `demo`): then it
  gets the new password, so that restarting a demo with another `--password` works;
- an account created or changed by anyone else (`fmon users add`, the API) is never touched.

Not for real accounts: those are made with `fmon users add`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from api.security import hash_password
from core.domain import Role
from storage.state.database import StateDatabase
from storage.state.models import AuditEntry
from storage.state.users import UserStore

DEMO_USERS = (("admin", Role.ADMIN), ("operator", Role.OPERATOR), ("engineer", Role.ENGINEER))
DEMO_ACTOR = "demo"


@dataclass(frozen=True)
class SeedReport:
    """What seeding did to each demo account, and the password of those it set."""

    created: tuple[str, ...] = ()
    reset: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    password: str | None = None  # of the created and reset accounts
    generated: bool = False  # the password was made up here (so it must be shown)
    explicit: bool = False  # a --password was given


def seed_demo_users(db: StateDatabase, password: str | None, now: datetime) -> SeedReport:
    """Create the missing demo users; reset demo-owned ones only to an explicit `password`."""
    users = UserStore(db)
    missing = [name for name, _ in DEMO_USERS if users.get(name) is None]
    resettable = [name for name, _ in DEMO_USERS
                  if name not in missing and password is not None and _only_demo_set(db, name)]
    kept = tuple(name for name, _ in DEMO_USERS if name not in missing and name not in resettable)
    explicit = password is not None
    if not missing and not resettable:
        return SeedReport(kept=kept, explicit=explicit)
    chosen = password or secrets.token_urlsafe(12)  # generated only when an account is created
    hashed = hash_password(chosen)
    for name, role in DEMO_USERS:
        if name in missing or name in resettable:
            users.add(name, hashed, role, now, actor=DEMO_ACTOR, replace=name in resettable)
    return SeedReport(tuple(missing), tuple(resettable), kept, chosen, not explicit, explicit)


def _only_demo_set(db: StateDatabase, username: str) -> bool:
    """Whether the latest change to this account's password and role was the demo's own."""
    query = (select(AuditEntry.actor)
             .where(AuditEntry.entity_type == "user", AuditEntry.entity_id == username,
                    AuditEntry.action == "user.set")
             .order_by(AuditEntry.id.desc()).limit(1))
    with db.session() as session:
        return session.scalar(query) == DEMO_ACTOR


def describe(report: SeedReport) -> list[str]:
    """The lines `fmon demo` prints about its accounts (never a password that does not work)."""
    lines = []
    shown = report.password if report.generated else "as given with --password"
    if report.created:
        lines.append(f"users {', '.join(report.created)} created; password {shown}.")
    if report.reset:
        lines.append(f"users {', '.join(report.reset)} (made by an earlier demo): password reset to the one "
                     "given with --password.")
    if report.kept:
        hint = ("accounts changed outside the demo are never reset: use `fmon users add NAME --replace`"
                if report.explicit else
                "sign in with their existing password, restart with --password to reset the ones an "
                "earlier demo made, or use `fmon users add NAME --replace`")
        lines.append(f"users {', '.join(report.kept)} already exist: password unchanged ({hint}).")
    return lines
