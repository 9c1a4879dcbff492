"""The telemetry writer: drains the spool to the store in batches, through outages.

One thread takes about `batch_size` readings (InfluxDB lines) at a time from the spool, writes
them, and releases them from the spool only once the store confirmed. An unreachable store is
retried with capped exponential backoff, forever: the spool is on disk, so waiting loses
nothing. A batch the store refuses (4xx, e.g. a field-type conflict) is bisected to find the
readings it refuses; those go to the dead-letter store with the store's reason, the rest are
written. Nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.domain import Reading
from core.errors import StorageError, StoreUnavailable
from ingest.spool import Spool, SpooledBatch
from storage.telemetry import TelemetryStore

log = logging.getLogger(__name__)

RejectReadings = Callable[[list[Reading], str], None]


@dataclass
class WriterCounters:
    stored_values: int = 0
    stored_readings: int = 0
    rejected_readings: int = 0
    retries: int = 0


class TelemetryWriter:
    def __init__(self, spool: Spool, store: TelemetryStore, reject: RejectReadings, *,
                 batch_size: int = 5000, max_backoff: float = 30.0) -> None:
        self._spool, self._store, self._reject = spool, store, reject
        self._batch_size, self._max_backoff = batch_size, max_backoff
        self._wake = threading.Condition()
        self._stopping = False
        self._idle = threading.Event()
        self.counters = WriterCounters()
        self._thread = threading.Thread(target=self._run, name="telemetry-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New readings are in the spool."""
        with self._wake:
            self._idle.clear()
            self._wake.notify()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the spool is empty; False on timeout."""
        self.notify()
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in hand; whatever is left stays in the spool for next time."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping:
            batch = self._spool.take(self._batch_size)
            if batch is None:
                self._idle.set()
                with self._wake:
                    self._wake.wait_for(lambda: self._stopping or not self._idle.is_set(), timeout=1.0)
                continue
            if self._write_until_done(batch):
                self._spool.release(batch)

    def _write_until_done(self, batch: SpooledBatch) -> bool:
        delay = 0.5
        while not self._stopping:
            try:
                self._write_or_bisect(batch.readings)
                return True
            except StoreUnavailable as exc:
                self.counters.retries += 1
                log.warning("telemetry store unavailable (%s); %d readings wait in the spool, retry in %.1f s",
                            exc, self._spool.depth, delay)
                with self._wake:
                    self._wake.wait_for(lambda: self._stopping, timeout=delay)
                delay = min(delay * 2, self._max_backoff)
        return False

    def _write_or_bisect(self, readings: list[Reading]) -> None:
        try:
            self.counters.stored_values += self._store.write(readings)
            self.counters.stored_readings += len(readings)
        except StoreUnavailable:
            raise
        except StorageError as exc:
            if len(readings) == 1:
                log.error("telemetry store refused a reading of %s: %s", readings[0].device.key, exc)
                self._reject(readings, str(exc))
                self.counters.rejected_readings += 1
                return
            middle = len(readings) // 2
            self._write_or_bisect(readings[:middle])
            self._write_or_bisect(readings[middle:])
