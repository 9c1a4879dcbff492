"""The ingest process: MQTT → decode → spool → ack → rules → alarms → playbooks; spool → telemetry store.

Playbooks run here too: the playbook stage of the alarm service starts runs as incidents open,
the scheduler (on the rule tick) sends queued device commands through the MQTT command link,
records acks and read-backs, fails late commands and escalates overdue and failed steps through
the alarm notifiers; incident events go on the internal bus after each commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from alarms import maintenance
from alarms.events import AlarmEvent, alarm_view
from alarms.incidents import IncidentGrouper
from alarms.inhibit import Inhibitor
from alarms.maintenance import MaintenanceStage
from alarms.notify.config import load_notify_config
from alarms.notify.setup import Notifications, build_notifications
from alarms.service import AlarmService, Publish
from core.broker import BrokerAddress
from core.clock import Clock
from core.domain import DeviceRef, Reading, device_ref
from core.settings import Settings
from core.sparkplug import host_subscriptions
from core.topics import subscriptions
from core.yamlfile import YamlFileError
from ingest.metrics import IngestCollector
from ingest.mqtt import MqttConsumer
from ingest.presence import PresenceEvent, PresenceTracker
from ingest.processor import IngestProcessor
from ingest.registry import DeviceDirectory
from ingest.sparkplug import SparkplugDecoder
from ingest.spool import Spool, encode
from ingest.writer import RejectReadings, TelemetryWriter
from playbooks.commands import ReadbackWatcher
from playbooks.loader import default_playbooks, select_playbook
from playbooks.model import Playbook
from playbooks.notify import PREFIXES, StepNotifier, StepSubjects
from playbooks.scheduler import PlaybookScheduler
from playbooks.stage import IncidentOutbox, PlaybookStage
from playbooks.views import IncidentEvent
from rules.engine import RuleEngine
from rules.loader import LIBRARY, load_rules, rule_files
from rules.model import ConditionChange, Offline, Rule
from runtime.broker_stats import BrokerDrops
from runtime.bus import AlarmBusPublisher
from runtime.commands import MqttCommandLink
from runtime.stores import open_telemetry_store
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore, Rejection
from storage.state.registry import RegistryStore
from storage.state.rule_state import RuleStateStore
from storage.telemetry import TelemetryStore

log = logging.getLogger(__name__)


class RulePipeline:
    """Live readings and presence through the rules into alarms. Runs after the batch is
    spooled and acknowledged, never waiting for the telemetry store. Alarm transitions are
    committed before the rule state that produced them is saved: after a crash in between, the
    rule fires again and the alarm service counts a repeat instead of losing the alarm."""

    def __init__(self, engine: RuleEngine, alarms: AlarmService, states: RuleStateStore, clock: Clock,
                 save_every: timedelta = timedelta(seconds=2), after_alarms: Callable[[], None] = lambda: None) -> None:
        self._engine, self._alarms, self._states, self._clock = engine, alarms, states, clock
        self._after_alarms = after_alarms  # e.g. publish the incident events of the committed changes
        self._lock = threading.Lock()  # readings and timer ticks come from different threads
        self._save_every, self._next_save = save_every, clock.now()
        self._unsaved: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._saved: dict[tuple[str, str], bytes] = {}  # what the store holds, as last saved here

    def on_readings(self, readings: Sequence[Reading]) -> None:
        self._run(lambda: self._engine.process(readings))

    def on_presence(self, events: Sequence[PresenceEvent]) -> None:
        _log_presence(events)
        self._run(lambda: self._engine.presence(events))

    def now(self) -> datetime:
        return self._clock.now()

    def tick(self) -> None:
        self._run(lambda: self._engine.tick(self._clock.now()), force_save=True)

    def reload(self, rules: list[Rule]) -> None:
        """Hot reload: unchanged rules keep their state; removed rules' alarms are cleared."""
        self._run(lambda: self._engine.replace_rules(rules, self._clock.now()), force_save=True)

    def _run(self, evaluate: Callable[[], list[ConditionChange]], force_save: bool = False) -> None:
        # One lock around evaluation, alarm commit and state save, so that saves never overtake
        # each other. After alarm transitions only the states behind them are saved at once; the
        # rest is saved every few seconds, and only where it differs from what was saved last
        # (many readings leave a rule's state as it was).
        with self._lock:
            changes = evaluate()
            self._note_dirty(self._engine.take_dirty())
            self._alarms.apply(changes)
            if changes:
                self._after_alarms()
            now = self._clock.now()
            if force_save and now >= self._next_save:
                self._save(self._unsaved, now)
                self._unsaved, self._next_save = {}, now + self._save_every
            elif changes:
                keys = {(c.rule.id, c.source.key) for c in changes}
                self._save({key: self._unsaved.pop(key) for key in keys if key in self._unsaved}, now)

    def _note_dirty(self, dirty: dict[tuple[str, str], dict[str, Any] | None]) -> None:
        for key, state in dirty.items():
            if self._saved.get(key) == _fingerprint(state):
                self._unsaved.pop(key, None)
            else:
                self._unsaved[key] = state

    def _save(self, states: dict[tuple[str, str], dict[str, Any] | None], now: datetime) -> None:
        if not states:
            return
        self._states.save(states, now)
        self._saved.update((key, _fingerprint(state)) for key, state in states.items())


def _fingerprint(state: dict[str, Any] | None) -> bytes:
    # Bytes, not the dict: the engine mutates its condition state in place after handing it over.
    return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)


@dataclass
class IngestProcess:
    consumer: MqttConsumer
    writer: TelemetryWriter
    publisher: AlarmBusPublisher
    pipeline: RulePipeline
    processor: IngestProcessor
    spool: Spool
    store: TelemetryStore
    metrics: CollectorRegistry
    presence: PresenceTracker
    registry_sync: RegistrySync
    rule_reloader: RuleReloader
    tick_seconds: float
    notifications: Notifications | None = None
    maintenance_expiry: MaintenanceExpiry | None = None
    playbooks: PlaybookScheduler | None = None
    command_link: MqttCommandLink | None = None
    broker_drops: BrokerDrops | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="rule-ticks", daemon=True)

    def start(self) -> None:
        self.writer.start()
        self.publisher.start()
        if self.broker_drops is not None:
            self.broker_drops.start()
        if self.command_link is not None:
            self.command_link.start()
        self.consumer.start()
        if self.notifications is not None:
            self.notifications.start()
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self.consumer.stop()
        self.processor.abandon()  # a batch still failing now will not be offered again
        self._ticker.join(timeout=5)
        if self.command_link is not None:
            self.command_link.stop()
        if self.notifications is not None:
            self.notifications.stop()
        self.writer.stop()
        self.publisher.stop()
        if self.broker_drops is not None:
            self.broker_drops.stop()
        self.spool.close()
        self.store.close()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.pipeline.tick()
                self.pipeline.on_presence(self.presence.sweep(self.pipeline.now()))
                self.registry_sync()
                self.rule_reloader()
                if self.maintenance_expiry is not None:
                    self.maintenance_expiry()
            except Exception:
                log.exception("rule tick failed")
            if self.playbooks is not None:
                try:  # on its own: a playbook failure must not skip rule work or alarm escalation
                    self.playbooks.run(self.pipeline.now())
                except Exception:
                    log.exception("playbook scheduler run failed")
            if self.notifications is not None:
                try:  # on its own: a notification failure must not skip rule work
                    self.notifications.scheduler.run(self.pipeline.now())
                except Exception:
                    log.exception("escalation run failed")


def build_ingest(settings: Settings, db: StateDatabase, clock: Clock,
                 metrics: CollectorRegistry | None = None) -> IngestProcess:
    address = BrokerAddress.parse(settings.broker_url)
    store = open_telemetry_store(settings)
    dead_letters = DeadLetterStore(db)
    spool = Spool(settings.data_dir / f"spool-{settings.ingest_identity}.db")
    writer = TelemetryWriter(spool, store, _store_rejections(dead_letters, clock),
                             batch_size=settings.ingest_batch_size)
    publisher = AlarmBusPublisher(address)
    registry = RegistryStore(db)
    directory = DeviceDirectory(registry)
    engine = RuleEngine(load_rules(settings.rules_path or [LIBRARY]), directory.zone_of, directory.kind_of)
    states = RuleStateStore(db)
    saved = states.load()
    engine.restore(saved)
    notifications = None
    if settings.notify_config is not None:  # a bad file is a ConfigError naming file:line
        notifications = build_notifications(load_notify_config(settings.notify_config), db, clock,
                                            console_url=settings.console_url, site=settings.site)
    publish = publisher if notifications is None else _tee(publisher, notifications.notifier)
    library = default_playbooks()
    incidents = IncidentOutbox()
    alarms = AlarmService(db, clock, publish, lambda source: directory.location(source.site, source.family,
                                                                              source.id),
                          stages=(MaintenanceStage(), Inhibitor(), IncidentGrouper(),
                                  PlaybookStage(_selector(library), incidents)))
    pipeline = RulePipeline(engine, alarms, states, clock,
                            after_alarms=lambda: _publish_all(incidents.drain(db, clock.now()), publisher.incident))
    scheduler, link = _playbook_scheduler(settings, db, address, notifications, publisher)
    presence = seeded_presence(directory, saved, engine.rules, settings.site, clock.now())
    outbox: list[MqttConsumer] = []  # the consumer publishes Sparkplug rebirth requests

    def on_readings(readings: list[Reading]) -> None:
        scheduler.watcher.on_readings(readings)  # read-backs of device commands: a dict lookup
        pipeline.on_readings(readings)

    processor = IngestProcessor(
        dead_letters, spool, on_readings, writer.notify, presence, pipeline.on_presence,
        SparkplugDecoder(), lambda topic, payload: outbox[0].publish(topic, payload), directory.check,
    )
    topics = (*subscriptions(settings.site), *host_subscriptions(settings.site))
    consumer = MqttConsumer(
        address, settings.ingest_identity, topics, processor, clock,
        batch_size=settings.ingest_batch_size, flush_seconds=settings.ingest_flush_seconds,
    )
    outbox.append(consumer)
    collectors = metrics or CollectorRegistry()
    collectors.register(IngestCollector(processor.counters, writer.counters, spool, lambda: consumer.backlog,
                                        clock, presence))
    broker_drops = BrokerDrops(address, f"{settings.ingest_identity}-broker-stats")
    collectors.register(broker_drops)
    reloader = RuleReloader(settings.rules_path, pipeline)
    sync = RegistrySync(registry, directory, clock, presence, settings.site)
    return IngestProcess(consumer, writer, publisher, pipeline, processor, spool, store, collectors,
                         presence, sync, reloader, settings.rule_tick_seconds, notifications,
                         MaintenanceExpiry(db, clock, publish), scheduler, link, broker_drops)


def _selector(library: list[Playbook]) -> Callable[[str, int, str | None], Playbook | None]:
    def select(category: str, grade: int, rule_playbook: str | None) -> Playbook | None:
        return select_playbook(library, category, grade, rule_playbook)

    return select


def _playbook_scheduler(settings: Settings, db: StateDatabase, address: BrokerAddress,
                        notifications: Notifications | None,
                        publisher: AlarmBusPublisher) -> tuple[PlaybookScheduler, MqttCommandLink]:
    """The playbook scheduler with its MQTT command link; overdue and failed steps go through
    the alarm notifiers (their dispatcher learns to render them)."""
    notifier = None
    if notifications is not None:
        notifier = StepNotifier(notifications.router, notifications.log)
        subjects = StepSubjects(db, notifications.router, settings.console_url)
        for prefix in PREFIXES:
            notifications.dispatcher.subjects[prefix] = subjects
    acks: list[PlaybookScheduler] = []
    link = MqttCommandLink(address, f"{settings.ingest_identity}-commands", lambda ack: acks[0].on_ack(ack),
                           settings.site)
    scheduler = PlaybookScheduler(db, sender=link, watcher=ReadbackWatcher(), notifier=notifier,
                                  publish=publisher.incident, site=settings.site)
    acks.append(scheduler)
    return scheduler, link


def _publish_all(events: list[IncidentEvent], publish: Callable[[IncidentEvent], None]) -> None:
    for event in events:
        try:
            publish(event)
        except Exception:  # the transactions are committed; a lost event is re-read by the console
            log.exception("publishing an incident event failed")


def _tee(*targets: Publish) -> Publish:
    def publish(event: AlarmEvent) -> None:
        for target in targets:
            target(event)

    return publish


class RuleReloader:
    """Watches the rule files and reloads them when they change; a broken edit is logged and
    the rules in force stay."""

    def __init__(self, paths: list[Path], pipeline: RulePipeline) -> None:
        self._paths, self._pipeline = paths or [LIBRARY], pipeline
        self._seen = self._stamp()

    def __call__(self) -> None:
        stamp = self._stamp()
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            rules = load_rules(self._paths)
        except YamlFileError as exc:
            log.error("rule files changed but are invalid; keeping the rules in force:\n%s", exc)
            return
        self._pipeline.reload(rules)
        log.info("reloaded %d rules", len(rules))

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        try:
            return tuple((str(p), p.stat().st_mtime) for p in rule_files(self._paths))
        except (OSError, YamlFileError):
            return ()


class MaintenanceExpiry:
    """Ends maintenance windows whose time ran out and publishes the alarms shown again."""

    def __init__(self, db: StateDatabase, clock: Clock, publish: Publish,
                 every: timedelta = timedelta(seconds=15)) -> None:
        self._db, self._clock, self._publish, self._every = db, clock, publish, every
        self._next = clock.now()

    def __call__(self) -> None:
        now = self._clock.now()
        if now < self._next:
            return
        self._next = now + self._every
        with self._db.session() as session:
            views = [alarm_view(a) for a in maintenance.expire(session, now)]
        for view in views:
            self._publish(AlarmEvent("updated", view))


class RegistrySync:
    """Persists auto-registered devices and picks up inventory imports, from the timer thread;
    devices an import adds are expected from then on (presence), so one that never reports
    goes offline after its interval."""

    def __init__(self, store: RegistryStore, directory: DeviceDirectory, clock: Clock,
                 presence: PresenceTracker | None = None, site: str = "+",
                 every: timedelta = timedelta(seconds=5)) -> None:
        self._store, self._directory, self._clock, self._every = store, directory, clock, every
        self._presence, self._site = presence, site
        self._next = clock.now()

    def __call__(self, force: bool = False) -> None:
        now = self._clock.now()
        if now < self._next and not force:
            return
        self._next = now + self._every
        new = self._directory.drain_auto_registered()
        if new:
            count = self._store.auto_register_many(new, now)
            log.info("auto-registered %d devices", count)
        if self._directory.refresh_if_changed() and self._presence is not None:
            self._presence.seed(self._directory.devices(self._site), now)


def seeded_presence(directory: DeviceDirectory, saved: dict[tuple[str, str], dict[str, Any]],
                    rules: Sequence[Rule], site: str, now: datetime) -> PresenceTracker:
    """A worker's presence tracker at start: registry devices expected from `now`, devices the
    restored rule state holds offline starting offline (see `PresenceTracker.seed`)."""
    presence = PresenceTracker(directory.report_interval, behind=directory.devices_behind)
    presence.seed(directory.devices(site), now, held_offline(saved, rules, site))
    return presence


def held_offline(saved: dict[tuple[str, str], dict[str, Any]], rules: Sequence[Rule],
                 site: str = "+") -> list[DeviceRef]:
    """Devices the restored rule state holds offline (an offline rule's condition is true:
    pending or alarmed), for seeding a new worker's presence tracker: the tracker is in memory,
    and without this a device that reports again after a restart would never clear the alarm."""
    offline_rules = {r.id for r in rules if isinstance(r.condition, Offline) and not r.condition.gateway}
    devices = []
    for (rule_id, _source), state in saved.items():
        if rule_id in offline_rules and state["timing"].get("condition"):
            source_site, family, device_id, _group = state["source"]
            if site in ("+", source_site):
                devices.append(device_ref(source_site, family, device_id))
    return devices


def _log_presence(events: Sequence[PresenceEvent]) -> None:
    for event in events:
        what = event.device.key if event.device else f"{event.site}/gateway/{event.gateway_id}"
        log.info("%s is %s (%s)", what, "online" if event.online else "offline, values stale", event.cause.value)


def _store_rejections(dead_letters: DeadLetterStore, clock: Clock) -> RejectReadings:
    """Readings the telemetry store refuses are kept as dead letters with the store's reason."""

    def reject(readings: list[Reading], reason: str) -> None:
        now = clock.now()
        dead_letters.add([
            Rejection(now, f"store:{r.device.key}", "store_rejected", reason, orjson.dumps(encode(r)), r.device.key)
            for r in readings
        ])

    return reject
