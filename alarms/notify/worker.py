"""A thread that runs the notification steps — handle queued alarm events, then send what is
due — every `interval`, and at once when woken.

Sending blocks on the network (HTTP, SMTP) for up to the delivery timeout, so it runs here and
not in the ingest ticker, whose rule timers must not wait for a slow webhook.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from core.clock import Clock

log = logging.getLogger(__name__)

Step = Callable[[datetime], object]


class NotifyWorker:
    """Runs each of `steps` with `clock.now()` in a daemon thread until stopped."""

    def __init__(self, clock: Clock, steps: Sequence[Step], interval: float = 1.0,
                 wakeup: threading.Event | None = None) -> None:
        self._clock, self._steps, self._interval = clock, tuple(steps), interval
        self._wakeup, self._stop = wakeup or threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="notify-dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Something is due now: run without waiting for the interval."""
        self._wakeup.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()  # before the steps: a wake while they run makes the next wait return at once
            for step in self._steps:
                try:
                    step(self._clock.now())
                except Exception:
                    log.exception("notification step %s failed; retrying in %.0f s", step, self._interval)
            self._wakeup.wait(self._interval)
