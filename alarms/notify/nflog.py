"""The notification log (nflog): what was, is being, and will be sent to whom about which alarm.

One row of the `notifications` table per (alarm, receiver, reason). The unique key makes each
notification happen once — across restarts, and across ingest workers that compute the same
decision at the same time (inserts are `ON CONFLICT DO NOTHING`). Rows are written `pending` (or
`muted`, when quiet hours hold them back) and end `sent`, `failed` or `cancelled`.

A sender claims a row before sending (compare-and-set on `attempts`, pushing `next_attempt_at`
out by a lease), so two dispatchers never send the same row at once, and a dispatcher that dies
mid-send leaves a row that becomes due again when the lease runs out: at-least-once delivery.
Not for deciding what is due (`alarms.escalation`) or sending (`alarms.notify.dispatcher`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from storage.state.database import StateDatabase
from storage.state.models import Notification

_CHUNK = 500  # ids per IN (…) query


class Status(StrEnum):
    PENDING = "pending"  # to be sent at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # gave up: attempts exhausted or a permanent error; `error` says why
    MUTED = "muted"  # held back by the receiver's quiet hours (grades 3–4 only); never sent
    CANCELLED = "cancelled"  # no longer true when its turn came (e.g. escalation of an acknowledged alarm)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A notification decided on, not yet in the log."""

    alarm_id: int
    receiver: str
    channel: str
    reason: str
    muted: bool = False

    @property
    def key(self) -> tuple[int, str, str]:
        return self.alarm_id, self.receiver, self.reason


@dataclass(frozen=True, slots=True)
class Entry:
    """A row of the log, as read."""

    id: int
    alarm_id: int
    receiver: str
    channel: str
    reason: str
    status: Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, row: Notification) -> Entry:
        return cls(row.id, row.alarm_id, row.receiver, row.channel, row.reason, Status(row.status), row.attempts,
                   row.created_at, row.next_attempt_at, row.sent_at, row.error)


class NotificationLog:
    """The log in the state database."""

    def __init__(self, db: StateDatabase) -> None:
        self._db = db

    def record(self, entries: Sequence[NewEntry], now: datetime) -> list[NewEntry]:
        """Insert the entries not yet in the log; return those this call inserted."""
        inserted: list[NewEntry] = []
        if not entries:
            return inserted
        with self._db.session() as session:
            for entry in entries:
                # RETURNING, not rowcount: the ORM-enabled insert reports no rowcount on every driver
                if session.execute(_insert_once(session, entry, now)).first() is not None:
                    inserted.append(entry)
        return inserted

    def of_alarms(self, alarm_ids: Iterable[int]) -> dict[int, list[Entry]]:
        """Every entry of the given alarms, by alarm id."""
        ids = sorted(set(alarm_ids))
        found: dict[int, list[Entry]] = {alarm_id: [] for alarm_id in ids}
        with self._db.session() as session:
            for start in range(0, len(ids), _CHUNK):
                query = select(Notification).where(Notification.alarm_id.in_(ids[start:start + _CHUNK]))
                for row in session.scalars(query.order_by(Notification.id)):
                    found[row.alarm_id].append(Entry.of(row))
        return found

    def entries(self, alarm_id: int | None = None) -> list[Entry]:
        """The whole log (or one alarm's), oldest first."""
        query = select(Notification).order_by(Notification.id)
        if alarm_id is not None:
            query = query.where(Notification.alarm_id == alarm_id)
        with self._db.session() as session:
            return [Entry.of(row) for row in session.scalars(query)]

    def due(self, now: datetime, limit: int = 100) -> list[Entry]:
        """Pending entries whose time has come, oldest first."""
        query = (select(Notification)
                 .where(Notification.status == Status.PENDING.value, Notification.next_attempt_at <= now)
                 .order_by(Notification.next_attempt_at, Notification.id).limit(limit))
        with self._db.session() as session:
            return [Entry.of(row) for row in session.scalars(query)]

    def claim(self, entry: Entry, now: datetime, lease_until: datetime) -> Entry | None:
        """Take `entry` for one attempt: count the attempt and hold it until `lease_until`.
        None if someone else took or settled it first."""
        statement = (update(Notification)
                     .where(Notification.id == entry.id, Notification.status == Status.PENDING.value,
                            Notification.attempts == entry.attempts, Notification.next_attempt_at <= now)
                     .values(attempts=entry.attempts + 1, next_attempt_at=lease_until)
                     .returning(Notification))
        with self._db.session() as session:
            row = session.scalars(statement).one_or_none()
            return Entry.of(row) if row is not None else None

    def mark_sent(self, entry_id: int, now: datetime) -> None:
        self._settle(entry_id, status=Status.SENT.value, sent_at=now, next_attempt_at=None, error=None)

    def mark_retry(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        self._settle(entry_id, status=Status.PENDING.value, next_attempt_at=next_attempt_at, error=error)

    def mark_failed(self, entry_id: int, error: str) -> None:
        self._settle(entry_id, status=Status.FAILED.value, next_attempt_at=None, error=error)

    def mark_cancelled(self, entry_id: int, why: str) -> None:
        self._settle(entry_id, status=Status.CANCELLED.value, next_attempt_at=None, error=why)

    def _settle(self, entry_id: int, **values: object) -> None:
        with self._db.session() as session:
            session.execute(update(Notification).where(Notification.id == entry_id).values(**values))


def _insert_once(session: Session, entry: NewEntry, now: datetime) -> ReturningInsert[tuple[int]]:
    values = {
        "alarm_id": entry.alarm_id, "receiver": entry.receiver, "channel": entry.channel, "reason": entry.reason,
        "status": (Status.MUTED if entry.muted else Status.PENDING).value, "attempts": 0, "created_at": now,
        "next_attempt_at": None if entry.muted else now,
    }
    keys = ["alarm_id", "receiver", "reason"]
    statement: Insert
    if session.get_bind().dialect.name == "postgresql":
        statement = postgresql_insert(Notification).values(**values).on_conflict_do_nothing(index_elements=keys)
    else:
        statement = sqlite_insert(Notification).values(**values).on_conflict_do_nothing(index_elements=keys)
    return statement.returning(Notification.id)
