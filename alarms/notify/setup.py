"""Building the notification subsystem from a config file: one call for `runtime/` to make.

    notifications = build_notifications(load_notify_config(path), db, clock, console_url=…)
    alarm service publish → notifications.notifier     (tee it with the bus publisher)
    ingest ticker         → notifications.scheduler.run(now)
    process start/stop    → notifications.start() / notifications.stop()
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import httpx

from alarms.escalation import DEFAULT_LOOKBACK, EscalationScheduler
from alarms.notify.channels import SmtpConnect, build_channels
from alarms.notify.config import NotifyConfig
from alarms.notify.dispatcher import Dispatcher
from alarms.notify.nflog import NotificationLog
from alarms.notify.notifier import AlarmNotifier
from alarms.notify.worker import NotifyWorker
from alarms.routing import Router
from core.clock import Clock
from storage.state.database import StateDatabase


@dataclass
class Notifications:
    """The parts, wired: the notifier queues events, the scheduler records on ticks, the worker
    handles the queued events and sends."""

    router: Router
    log: NotificationLog
    scheduler: EscalationScheduler
    notifier: AlarmNotifier
    dispatcher: Dispatcher
    worker: NotifyWorker
    client: httpx.Client

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self.client.close()


def build_notifications(config: NotifyConfig, db: StateDatabase, clock: Clock, *, console_url: str | None = None,
                        site: str | None = None, client: httpx.Client | None = None,
                        connect_smtp: SmtpConnect | None = None, interval: float = 1.0,
                        lookback: timedelta = DEFAULT_LOOKBACK) -> Notifications:
    """Everything from one config. `site`: the ingest worker's site (None or "+" = all);
    `client`/`connect_smtp`: transports to use instead of the real ones."""
    router, nflog, wakeup = Router(config), NotificationLog(db), threading.Event()
    http = client or httpx.Client(follow_redirects=False, headers={"User-Agent": "fmon-notify/1"})
    channels = build_channels(config, http, clock, connect_smtp)
    dispatcher = Dispatcher(db, nflog, router, channels, console_url=console_url)
    scheduler = EscalationScheduler(db, router, nflog, site=site, lookback=lookback, wake=wakeup.set)
    notifier = AlarmNotifier(scheduler, nflog, clock, wake=wakeup.set)
    worker = NotifyWorker(clock, (notifier.drain, dispatcher.run), interval, wakeup)
    return Notifications(router, nflog, scheduler, notifier, dispatcher, worker, http)
