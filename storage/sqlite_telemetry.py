"""The embedded telemetry store: one SQLite file, one row per (device, metric, ts) and one per
(device, ts, position) of an event, its attributes as JSON.

For `fmon demo` and small single-machine sites; production uses InfluxDB.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path

import orjson

from core.domain import DeviceRef, Reading, device_ref, validate_id
from core.errors import StorageError
from storage.telemetry import Bucket, Point, StoredEvent, from_epoch_ms, stored_value

SCAN_FETCH = 5000  # rows fetched per lock hold while scanning
_ScanRow = tuple[int, str, str, str, str, float | None, str | None, int]  # as selected by `scan`

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    site TEXT NOT NULL, family TEXT NOT NULL, device_id TEXT NOT NULL, metric TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, num REAL, txt TEXT, historical INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, family, device_id, metric, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    site TEXT NOT NULL, family TEXT NOT NULL, device_id TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    idx INTEGER NOT NULL, code TEXT NOT NULL, attrs TEXT NOT NULL, seq INTEGER,
    historical INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, family, device_id, ts_ms, idx)
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
        events = list(_event_rows(readings))
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO readings VALUES (?,?,?,?,?,?,?,?)", rows)
                self._db.executemany("INSERT OR REPLACE INTO events VALUES (?,?,?,?,?,?,?,?,?)", events)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise StorageError(f"SQLite telemetry write of {len(rows)} values failed: {exc}") from exc
        return len(rows)

    def events(self, device: DeviceRef, start: datetime, end: datetime) -> list[StoredEvent]:
        sql = ("SELECT ts_ms, idx, code, attrs, seq, historical FROM events WHERE site=? AND family=? "
               "AND device_id=? AND ts_ms>=? AND ts_ms<? ORDER BY ts_ms, idx")
        args = (device.site, device.family.value, device.device_id, _ms(start), _ms(end))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [StoredEvent(from_epoch_ms(ms), code, idx, orjson.loads(attrs), seq, bool(hist))
                for ms, idx, code, attrs, seq, hist in rows]

    def query(self, device: DeviceRef, metric: str, start: datetime, end: datetime) -> list[Point]:
        sql = (
            "SELECT ts_ms, num, txt FROM readings WHERE site=? AND family=? AND device_id=? "
            "AND metric=? AND ts_ms>=? AND ts_ms<? ORDER BY ts_ms"
        )
        args = (device.site, device.family.value, device.device_id, metric, _ms(start), _ms(end))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Point(datetime.fromtimestamp(ms / 1000, UTC), num if txt is None else txt) for ms, num, txt in rows]

    def history(self, device: DeviceRef, metric: str, start: datetime, end: datetime,
                step: timedelta) -> list[Bucket]:
        width = max(1, int(step.total_seconds() * 1000))
        sql = (
            "SELECT (ts_ms / ?) * ? AS bucket, AVG(num), MIN(num), MAX(num), COUNT(num) FROM readings "
            "WHERE site=? AND family=? AND device_id=? AND metric=? AND ts_ms>=? AND ts_ms<? AND num IS NOT NULL "
            "GROUP BY bucket ORDER BY bucket"
        )
        args = (width, width, device.site, device.family.value, device.device_id, metric, _ms(start), _ms(end))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Bucket(datetime.fromtimestamp(ms / 1000, UTC), mean, low, high, count)
                for ms, mean, low, high, count in rows]

    def scan(self, start: datetime, end: datetime, *, site: str | None = None) -> Iterator[Reading]:
        """Readings in [start, end), oldest first (see `TelemetryStore.scan`).

        There is no index on time alone, so SQLite reads and sorts every row of the table
        once per scan: fine for demo-sized stores, slow for years of a large site.
        """
        sql = ("SELECT ts_ms, site, family, device_id, metric, num, txt, historical FROM readings "
               "WHERE ts_ms>=? AND ts_ms<?" + (" AND site=?" if site is not None else "") +
               " ORDER BY ts_ms, site, family, device_id")
        args: tuple[object, ...] = (_ms(start), _ms(end))
        if site is not None:
            args = (*args, validate_id(site, "site id"))
        for key, rows in groupby(self._scan_rows(sql, args), key=lambda row: (row[0], row[1], row[2], row[3])):
            yield _reading(key, list(rows))

    def _scan_rows(self, sql: str, args: tuple[object, ...]) -> Iterator[_ScanRow]:
        try:
            with self._lock:
                cursor = self._db.execute(sql, args)
            try:
                while True:
                    with self._lock:
                        rows = cursor.fetchmany(SCAN_FETCH)
                    if not rows:
                        return
                    yield from rows
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite telemetry scan failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _reading(key: tuple[int, str, str, str], rows: list[_ScanRow]) -> Reading:
    ts_ms, site, family, device_id = key
    device = device_ref(site, family, device_id)
    metrics = {metric: stored_value(device.family, metric, txt if txt is not None else num or 0.0)
               for _t, _s, _f, _d, metric, num, txt, _h in rows}
    return Reading(device, from_epoch_ms(ts_ms), metrics, historical=any(row[7] for row in rows))


def _rows(readings: Sequence[Reading]) -> Iterator[tuple[object, ...]]:
    for r in readings:
        dev, ts_ms, hist = r.device, _ms(r.ts), int(r.historical)
        for metric, value in r.metrics.items():
            num, txt = (None, value) if isinstance(value, str) else (float(value), None)
            yield (dev.site, dev.family.value, dev.device_id, metric, ts_ms, num, txt, hist)


def _event_rows(readings: Sequence[Reading]) -> Iterator[tuple[object, ...]]:
    for r in readings:
        dev, ts_ms, hist = r.device, _ms(r.ts), int(r.historical)
        for index, event in enumerate(r.events):
            attrs = orjson.dumps(dict(event.attrs)).decode()
            yield (dev.site, dev.family.value, dev.device_id, ts_ms, index, event.code, attrs, r.seq, hist)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)
