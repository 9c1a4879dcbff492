"""The ingest process: MQTT → decode → spool → ack → rules → alarms; spool → telemetry store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from prometheus_client import CollectorRegistry

from alarms.service import AlarmService
from core.broker import BrokerAddress
from core.clock import Clock
from core.domain import Reading
from core.settings import Settings
from core.topics import subscriptions
from ingest.metrics import IngestCollector
from ingest.mqtt import MqttConsumer
from ingest.processor import IngestProcessor
from ingest.spool import Spool, encode
from ingest.writer import RejectReadings, TelemetryWriter
from rules.engine import RuleEngine
from rules.library import default_rules
from runtime.bus import AlarmBusPublisher
from storage.influx import InfluxV1Store
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore, Rejection
from storage.telemetry import TelemetryStore

log = logging.getLogger(__name__)


def open_telemetry_store(settings: Settings) -> TelemetryStore:
    if settings.influx_url:
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        return InfluxV1Store(settings.influx_url, token=token)
    return SqliteTelemetryStore(settings.telemetry_sqlite_path)


class RulePipeline:
    """Live readings through the rules into alarms. Runs after the batch is spooled and
    acknowledged, never waiting for the telemetry store."""

    def __init__(self, engine: RuleEngine, alarms: AlarmService, clock: Clock) -> None:
        self._engine, self._alarms, self._clock = engine, alarms, clock
        self._lock = threading.Lock()  # readings and timer ticks come from different threads

    def on_readings(self, readings: Sequence[Reading]) -> None:
        with self._lock:
            changes = self._engine.process(readings)
        self._alarms.apply(changes)

    def tick(self) -> None:
        with self._lock:
            changes = self._engine.tick(self._clock.now())
        self._alarms.apply(changes)


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
    tick_seconds: float

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="rule-ticks", daemon=True)

    def start(self) -> None:
        self.writer.start()
        self.publisher.start()
        self.consumer.start()
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self.consumer.stop()
        self._ticker.join(timeout=5)
        self.writer.stop()
        self.publisher.stop()
        self.spool.close()
        self.store.close()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.pipeline.tick()
            except Exception:
                log.exception("rule tick failed")


def build_ingest(settings: Settings, db: StateDatabase, clock: Clock,
                 metrics: CollectorRegistry | None = None) -> IngestProcess:
    address = BrokerAddress.parse(settings.broker_url)
    store = open_telemetry_store(settings)
    dead_letters = DeadLetterStore(db)
    spool = Spool(settings.data_dir / f"spool-{settings.ingest_identity}.db")
    writer = TelemetryWriter(spool, store, _store_rejections(dead_letters, clock),
                             batch_size=settings.ingest_batch_size)
    publisher = AlarmBusPublisher(address)
    pipeline = RulePipeline(RuleEngine(default_rules()), AlarmService(db, clock, publisher), clock)
    processor = IngestProcessor(dead_letters, spool, pipeline.on_readings, writer.notify)
    consumer = MqttConsumer(
        address, settings.ingest_identity, subscriptions(settings.site), processor, clock,
        batch_size=settings.ingest_batch_size, flush_seconds=settings.ingest_flush_seconds,
    )
    registry = metrics or CollectorRegistry()
    registry.register(IngestCollector(processor.counters, writer.counters, spool, lambda: consumer.backlog, clock))
    return IngestProcess(consumer, writer, publisher, pipeline, processor, spool, store, registry,
                         settings.rule_tick_seconds)


def _store_rejections(dead_letters: DeadLetterStore, clock: Clock) -> RejectReadings:
    """Readings the telemetry store refuses are kept as dead letters with the store's reason."""

    def reject(readings: list[Reading], reason: str) -> None:
        now = clock.now()
        dead_letters.add([
            Rejection(now, f"store:{r.device.key}", "store_rejected", reason, orjson.dumps(encode(r)), r.device.key)
            for r in readings
        ])

    return reject
