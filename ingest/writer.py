"""The batching telemetry writer: drains readings to the store, retrying through outages.

Readings are handed over with `submit()` and written by one thread in batches of up to
`batch_size`. When the store is unavailable the batch is kept and retried with capped
exponential backoff, so nothing is dropped while the process lives.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from core.domain import Reading
from core.errors import StorageError, StoreUnavailable
from storage.telemetry import TelemetryStore

log = logging.getLogger(__name__)


class TelemetryWriter:
    def __init__(self, store: TelemetryStore, *, batch_size: int = 5000,
                 max_backoff: float = 30.0) -> None:
        self._store, self._batch_size, self._max_backoff = store, batch_size, max_backoff
        self._pending: deque[Reading] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self.stored = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="telemetry-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, readings: Sequence[Reading]) -> None:
        with self._wake:
            self._pending.extend(readings)
            self._wake.notify()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is pending (within `timeout`), then stop."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    _busy = False

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._write_with_retry(batch)
            with self._wake:
                self._busy = False
                self._wake.notify_all()

    def _take(self) -> list[Reading] | None:
        with self._wake:
            self._wake.wait_for(lambda: self._pending or self._stopping)
            if not self._pending:
                return None
            count = min(self._batch_size, len(self._pending))
            self._busy = True
            return [self._pending.popleft() for _ in range(count)]

    def _write_with_retry(self, batch: list[Reading]) -> None:
        delay = 0.5
        while True:
            try:
                self.stored += self._store.write(batch)
                return
            except StoreUnavailable as exc:
                if self._stopping:
                    log.error("telemetry store unavailable at shutdown; %d readings not written", len(batch))
                    self.failed += len(batch)
                    return
                log.warning("telemetry store unavailable (%s); retrying in %.1f s", exc, delay)
                with self._wake:
                    self._wake.wait(delay)
                delay = min(delay * 2, self._max_backoff)
            except StorageError:
                log.exception("telemetry store refused a batch of %d readings", len(batch))
                self.failed += len(batch)
                return
