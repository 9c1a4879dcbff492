"""The dead-letter store: rejected messages with topic, payload excerpt, reason and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from storage.state.database import StateDatabase
from storage.state.models import DeadLetter

EXCERPT_BYTES = 512


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message fmon refused, and why."""

    received_at: datetime
    topic: str
    reason: str
    detail: str
    payload: bytes
    device_key: str | None = None

    @property
    def excerpt(self) -> str:
        text = self.payload[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        return text + ("…" if len(self.payload) > EXCERPT_BYTES else "")


class DeadLetterStore:
    """Keeps rejections in the state database."""

    def __init__(self, db: StateDatabase) -> None:
        self._db = db

    def add(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        with self._db.session() as session:
            session.add_all(_row(r) for r in rejections)

    def recent(self, limit: int = 100, reason: str | None = None,
               device_key: str | None = None) -> list[DeadLetter]:
        query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
        if reason:
            query = query.where(DeadLetter.reason == reason)
        if device_key:
            query = query.where(DeadLetter.device_key == device_key)
        with self._db.session() as session:
            return list(session.scalars(query))

    def counts_by_device(self, limit: int = 20) -> dict[str, int]:
        """The devices (or topics, when no device could be named) with the most rejections."""
        key = func.coalesce(DeadLetter.device_key, DeadLetter.topic)
        query = select(key, func.count()).group_by(key).order_by(func.count().desc()).limit(limit)
        with self._db.session() as session:
            return dict(session.execute(query).tuples().all())

    def counts_by_reason(self) -> dict[str, int]:
        query = select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason)
        with self._db.session() as session:
            return dict(session.execute(query).tuples().all())


def _row(r: Rejection) -> DeadLetter:
    return DeadLetter(
        received_at=r.received_at, topic=r.topic[:1000], device_key=r.device_key,
        reason=r.reason, detail=r.detail[:2000], payload_excerpt=r.excerpt,
    )
