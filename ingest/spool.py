"""The durable spool: accepted readings, on local disk, until the telemetry store has them.

Ingest appends each decoded batch here (one SQLite transaction, fsynced) before it
acknowledges the MQTT messages, so a reading the broker considers delivered is never only in
memory. The writer drains the spool in order and deletes what the store has confirmed; after
a crash or restart it simply continues from what is left.

The batches appended by this process are also kept in memory (up to `memory_readings`), so the
writer takes them without decoding them again from disk; the disk copy is what survives a crash,
and batches past the bound, or left from an earlier run, are decoded from it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from core.domain import Event, Reading, device_ref
from core.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    readings INTEGER NOT NULL,
    appended_ms INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """Readings taken from the spool; `upto` is the last row they came from."""

    upto: int
    readings: list[Reading]


class Spool:
    def __init__(self, path: Path, *, memory_readings: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged message must survive power loss
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._depth = self._count()
        self._memory: dict[int, list[Reading]] = {}  # row id -> the readings appended in it
        self._memory_readings, self._memory_limit = 0, memory_readings

    def append(self, readings: Sequence[Reading], now: datetime) -> None:
        """Persist one batch (a single row, a single fsync)."""
        if not readings:
            return
        body = orjson.dumps([encode(r) for r in readings])
        try:
            with self._lock:
                cursor = self._db.execute("INSERT INTO spool (readings, appended_ms, body) VALUES (?, ?, ?)",
                                          (len(readings), int(now.timestamp() * 1000), body))
                self._depth += len(readings)
                if cursor.lastrowid is not None and self._memory_readings + len(readings) <= self._memory_limit:
                    self._memory[cursor.lastrowid] = list(readings)
                    self._memory_readings += len(readings)
        except sqlite3.Error as exc:
            raise StorageError(f"spool append of {len(readings)} readings failed: {exc}") from exc

    def take(self, max_readings: int) -> SpooledBatch | None:
        """The oldest rows, up to about `max_readings` readings (at least one row)."""
        with self._lock:
            rows = self._db.execute("SELECT id, readings FROM spool ORDER BY id LIMIT 1000").fetchall()
        if not rows:
            return None
        chosen: list[int] = []
        total = 0
        for row_id, count in rows:
            if chosen and total + count > max_readings:
                break
            chosen.append(row_id)
            total += count
        kept = self._from_memory(chosen)
        readings: list[Reading] = []
        for row_id in chosen:
            readings.extend(kept[row_id])
        return SpooledBatch(chosen[-1], readings)

    def _from_memory(self, row_ids: list[int]) -> dict[int, list[Reading]]:
        """The readings of each row: kept in memory by this process, or decoded from disk in one query."""
        with self._lock:
            kept = {row_id: self._memory[row_id] for row_id in row_ids if row_id in self._memory}
            missing = [row_id for row_id in row_ids if row_id not in kept]
            bodies = self._db.execute(
                "SELECT id, body FROM spool WHERE id BETWEEN ? AND ?", (missing[0], missing[-1])
            ).fetchall() if missing else []
        wanted = set(missing)
        kept.update((row_id, [decode(item) for item in orjson.loads(body)]) for row_id, body in bodies
                    if row_id in wanted)
        return kept

    def release(self, batch: SpooledBatch) -> None:
        """The store has these readings: forget them."""
        with self._lock:
            self._db.execute("DELETE FROM spool WHERE id <= ?", (batch.upto,))
            self._depth = max(0, self._depth - len(batch.readings))
            for row_id in [r for r in self._memory if r <= batch.upto]:
                self._memory_readings -= len(self._memory.pop(row_id))

    @property
    def depth(self) -> int:
        """Readings waiting for the store."""
        return self._depth

    def oldest_appended(self) -> datetime | None:
        """When the oldest waiting batch was spooled (for the lag metric)."""
        with self._lock:
            row = self._db.execute("SELECT appended_ms FROM spool ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return datetime.fromtimestamp(row[0] / 1000, UTC)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(readings), 0) FROM spool").fetchone()[0])


def encode(r: Reading) -> list[Any]:
    """A compact, lossless JSON form of a reading."""
    events = [[e.code, dict(e.attrs)] for e in r.events]
    dev = r.device
    return [dev.site, dev.family.value, dev.device_id, int(r.ts.timestamp() * 1_000_000), r.seq,
            dict(r.metrics), r.historical, events]


def decode(item: list[Any]) -> Reading:
    site, family, device_id, ts_us, seq, metrics, historical, events = item
    return Reading(
        device=device_ref(site, family, device_id),
        ts=datetime.fromtimestamp(ts_us / 1_000_000, UTC),
        metrics=metrics, seq=seq, historical=historical,
        events=tuple(Event(code, attrs) for code, attrs in events),
    )
