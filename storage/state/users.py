"""User records (the password hash is computed by the caller; storage never sees a password)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.domain import Role
from core.errors import Conflict
from storage.state.database import StateDatabase
from storage.state.models import AuditEntry, User

USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class UserStore:
    def __init__(self, db: StateDatabase) -> None:
        self._db = db

    def add(self, username: str, password_hash: str, role: Role, now: datetime, *,
            actor: str = "cli", replace: bool = False) -> User:
        """Create a user, or with `replace` reset an existing one's hash and role."""
        if USERNAME.fullmatch(username) is None:
            raise ValueError(f"invalid username {username!r}: 1-64 characters of A-Z a-z 0-9 _ . @ -")
        with self._db.session() as session:
            user = session.scalars(select(User).where(User.username == username)).one_or_none()
            if user is not None and not replace:
                raise Conflict(f"user {username!r} already exists")
            if user is None:
                user = User(username=username, created_at=now, disabled=False, display_name=username)
                session.add(user)
            user.password_hash, user.role = password_hash, role.value
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"user {username!r} already exists") from None
            session.add(AuditEntry(at=now, actor=actor, action="user.set", entity_type="user",
                                   entity_id=username, reason="", detail={"role": role.value}))
            return user

    def get(self, username: str) -> User | None:
        with self._db.session() as session:
            return session.scalars(select(User).where(User.username == username)).one_or_none()
