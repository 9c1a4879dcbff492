"""The embedded telemetry store: one SQLite file, one row per (device, metric, ts).

For `fmon demo` and small single-machine sites; production uses InfluxDB.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from core.domain import DeviceRef, Reading
from core.errors import StorageError
from storage.telemetry import Point

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    site TEXT NOT NULL, family TEXT NOT NULL, device_id TEXT NOT NULL, metric TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, num REAL, txt TEXT, historical INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, family, device_id, metric, ts_ms)
) WITHOUT ROWID;
"""


class SqliteTelemetryStore:
    """Telemetry in a SQLite file (WAL mode); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def write(self, readings: Sequence[Reading]) -> int:
        rows = list(_rows(readings))
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO readings VALUES (?,?,?,?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite telemetry write of {len(rows)} values failed: {exc}") from exc
        return len(rows)

    def query(self, device: DeviceRef, metric: str, start: datetime, end: datetime) -> list[Point]:
        sql = (
            "SELECT ts_ms, num, txt FROM readings WHERE site=? AND family=? AND device_id=? "
            "AND metric=? AND ts_ms>=? AND ts_ms<? ORDER BY ts_ms"
        )
        args = (device.site, device.family.value, device.device_id, metric, _ms(start), _ms(end))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Point(datetime.fromtimestamp(ms / 1000, UTC), num if txt is None else txt) for ms, num, txt in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _rows(readings: Sequence[Reading]) -> Iterator[tuple[object, ...]]:
    for r in readings:
        dev, ts_ms, hist = r.device, _ms(r.ts), int(r.historical)
        for metric, value in r.metrics.items():
            num, txt = (None, value) if isinstance(value, str) else (float(value), None)
            yield (dev.site, dev.family.value, dev.device_id, metric, ts_ms, num, txt, hist)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)
